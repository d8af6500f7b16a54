"""The coordinator's API, written once: the route table, the wire format of arrays, and
request signing."""
