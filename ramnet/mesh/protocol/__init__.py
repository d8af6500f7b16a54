"""The coordinator's API, written once: the route table and its typed messages, the wire format
of arrays, and request signing."""
