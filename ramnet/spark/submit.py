"""``python -m ramnet.spark.submit``: print the path of the file ``spark-submit`` runs as a RAMNET
driver (``ramnet/__main__.py``), so that a cluster run is one line::

    spark-submit --master spark://HOST:7077 "$(python -m ramnet.spark.submit)" \\
        run --mode spark --a /shared/A.zarr --b /shared/B.zarr --out /shared/C.zarr

Without ``--master``, ``run --mode spark`` then uses the master and settings spark-submit was
given (``session.default_master``).
"""

from __future__ import annotations

from pathlib import Path


def driver_path() -> Path:
    """The driver file: ``ramnet/__main__.py``, which runs the ``ramnet`` command."""
    return Path(__file__).resolve().parent.parent / "__main__.py"


if __name__ == "__main__":
    print(driver_path())
