"""REST API of the sync engine: the admin's automation API and the signed node-to-node API."""
