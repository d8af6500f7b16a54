"""The coordinator's durable state: the SQLite store, the ledger, the content-addressed blob
store.

``store.Store`` is the store's API; its typed records are in ``records``, the errors it raises in
``errors``. Behind it: ``connection`` (per-thread SQLite connections and transactions),
``schema`` (tables and upgrades), ``rows`` (a row and its JSON columns as records),
``shard_queries`` and ``dispute_queries`` (a shard's and a dispute's life in SQL) and ``checks``
(argument checks)."""
