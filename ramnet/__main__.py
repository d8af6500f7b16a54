"""``python -m ramnet``: the ``ramnet`` command; also the driver file ``spark-submit`` runs.

``spark-submit --master URL "$(python -m ramnet.spark.submit)" run --mode spark ...`` (the inner
command prints this file's path): ``run --mode spark`` without ``--master`` then joins the master
and settings spark-submit was given.
"""

from ramnet.cli import main

if __name__ == "__main__":
    main()
