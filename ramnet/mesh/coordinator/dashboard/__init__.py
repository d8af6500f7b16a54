"""The coordinator's dashboard at ``/dashboard``: public, read-only pages for people.

Nodes (validator, bond, balance, banned, last seen, shards done, payout address), jobs (state,
per-shard progress and timings, reason), disputes (the validator drawn, the outcome, the fraud
proofs' entries), the ledger (movements, conserved totals) and plots over time, updated live.
Server-rendered HTML (Jinja2, autoescaping on) with htmx swapping the fragments that server-sent
events carry, uPlot for the plots; every file is served by the coordinator itself
(``ramnet._static``), so a page makes no request to another host.

Modules: ``view`` reads the state (``mesh.state.dashboard_queries``, the ledger, verdict blobs),
``plots`` turns events into the plots' columns, ``render`` the templates, ``feed`` the one
poller every open dashboard shares and each one's event stream, ``web`` the Starlette routes of
``protocol.routes.PAGES``. Nothing here writes to the state, and no page shows a key, a salt, an
audit choice not yet revealed, or a tile.
"""
