"""A mesh job run from the page on a real mesh (a coordinator and three workers, processes on
127.0.0.1): the consumer's statuses arrive as progress, the job settles, C is exact and the
result links each shard's node on the coordinator's dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.mesh_procs import Mesh, wait_for
from tests.ui.conftest import HTMX, started_task_id, wait_task


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    folder = tmp_path / "mesh"
    folder.mkdir()
    mesh = Mesh(folder)
    try:
        mesh.start_coordinator()
        for w in range(3):
            mesh.start(f"w{w}", "worker", "start", "--key-file", f"w{w}.key", "--bond", "20")
        for w in range(3):
            wait_for(folder / f"w{w}.log", "registered", 90)
        yield mesh
    finally:
        mesh.stop()


def test_a_mesh_job_from_the_page_settles_with_an_exact_c(
    app: Any, client: Any, mesh: Mesh
) -> None:
    from ramnet.orchid._io import random_operands

    client.cookies.set("ramnet_mode", "mesh")
    form = {"coordinator": mesh.url, "nodes": "3", "redundancy": "none", "source": "random",
            "shape": "96x64x80", "dtype": "int8", "seed": "7"}  # fmt: skip
    task = wait_task(app, started_task_id(client.post("/run", data=form, headers=HTMX).text), 240)
    assert task.state == "done", task.error
    result = task.result
    assert result["state"] == "settled" and result["nodes"] == 3
    assert task.progress["job_id"] == result["job_id"]
    a, b = random_operands(96, 64, 80, "int8", 7)
    np.testing.assert_array_equal(np.load(task.files["c"]), a.astype(np.int32) @ b)
    page = client.get(f"/tasks/{task.task_id}").text
    assert f"{mesh.url}/dashboard/jobs/{result['job_id']}" in page
    assert "settled" in page and "Freivalds (this machine)" in page
    # Each shard with its state and node, as the coordinator's job status lists them.
    shards = result["last_status"]["shard_list"]
    assert sorted(x["slot"] for x in shards if x["attempt"] == 0) == [0, 1, 2]
    nodes = {x["node"] for x in shards}
    assert len(nodes) == 3 and None not in nodes
    for x in shards:
        assert f"slot {x['slot']}" in page and x["node"][:16] in page
