"""Orders from every channel, their lines, and money in the tenant's reporting currency."""
