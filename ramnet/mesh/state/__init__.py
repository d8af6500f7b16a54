"""The coordinator's durable state: the SQLite store, the ledger, the content-addressed blob
store."""
