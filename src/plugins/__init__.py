"""Channel connector plugins shipped with Brandloop; each imports only `brandloop.connectors`."""
