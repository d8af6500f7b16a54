"""The mesh's pure rules: plan, shard checks, settlement, disputes, tile commitments, simulation.

No I/O, no clock, no threads: the coordinator, the simulator and any other engine call the same
code.
"""
