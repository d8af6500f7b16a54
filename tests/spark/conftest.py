"""The Spark engine's tests need zarr 3, which needs Python 3.11 (the ``test`` extra installs it
there only): on an older Python they are not collected."""

import importlib.util

collect_ignore_glob = [] if importlib.util.find_spec("zarr") else ["test_*.py"]
