"""The coordinator's clients: the signed HTTP client and the roles (worker, validator, auditor,
consumer).
"""
