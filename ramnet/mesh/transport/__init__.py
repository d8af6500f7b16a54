"""Bytes over HTTP: the nodes' HTTP/1.1 client and the server side's body reading and runner. Knows
no message or wire format.
"""
