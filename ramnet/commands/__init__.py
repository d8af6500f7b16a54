"""The ``ramnet`` commands, one module per command group, each beside the runner code it calls.

``ramnet.cli`` assembles the command modules into one Typer app. A command module imports only
Typer, Rich's console and the shared pieces (``_common``, ``_options``, ``_node``, ``_shards``)
when it loads; its runner (``_sovereign``, ``_mesh_run``, ``_operands``, ``_benchmarks``,
``_doctor``), numpy, the kernels, VALKYRIE and the mesh load inside the command that needs them,
so that ``ramnet --help`` and the parsing of any command stay fast.
"""
