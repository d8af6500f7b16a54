"""The ``ramnet`` commands, one module per command group, each with the runner code it calls.

``ramnet.cli`` assembles them into one Typer app. Every module here imports only Typer, Rich's
console and the shared pieces in ``_common``, ``_options`` and ``_node`` at load time; numpy, the
kernels, VALKYRIE and the mesh load inside the command that needs them, so that ``ramnet --help``
and the parsing of any command stay fast.
"""
