"""The GraphQL API: the schema assembled from the domains, and its shared conventions."""
