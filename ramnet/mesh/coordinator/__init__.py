"""The coordinator service: its collaborators, the Starlette app built from the route table, the
server.
"""
