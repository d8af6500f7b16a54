"""Running the engine's tasks as Spark stages: one Spark job per stage, progress from Spark's
status tracker, and work handed out again when an excluded executor declines it.

The only module of the engine that calls Spark: everything it sends and receives is message bytes
(``ramnet.spark.messages``), counted as they arrive so that a report can show what the driver
received.
"""

from __future__ import annotations

import functools
import secrets
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ramnet._errors import KernelError, RamnetError
from ramnet.spark.messages import TaskError, decode
from ramnet.spark.tasks import run_each

__all__ = ["Progress", "StageRunner"]

#: ``progress(stage, tasks done, tasks in the stage)``.
Progress = Callable[[str, int, int], None]

# Rounds of handing declined work out again before the exclusion is lifted (a cluster whose
# every executor is excluded must still finish; the report says so).
_ROUNDS = 4


class StageRunner:
    """Runs message-in, message-out tasks on a SparkContext.

    Attributes:
        received: Bytes of task results the driver has received so far.
        parallelism: The cluster's task slots (``defaultParallelism``).
        lifted: Whether some work ran on an excluded executor because no other would take it.
    """

    def __init__(self, sc: Any, progress: Progress | None = None) -> None:
        """Args:
        sc: The SparkContext.
        progress: Called as tasks finish (from a watcher thread).
        """
        self.sc = sc
        self.progress = progress
        self.received = 0
        self.parallelism = max(1, int(sc.defaultParallelism))
        self.lifted = False
        self._prefix = f"ramnet-{secrets.token_hex(4)}"
        self._count = 0

    def run(
        self, stage: str, task: str, messages: Sequence[bytes], *, barrier: bool = False
    ) -> list[bytes]:
        """Run ``task`` on every message, one Spark task per message.

        Args:
            stage: The stage's name in progress reports.
            task: The task's name (``tasks.run_each``).
            messages: One message per task.
            barrier: Launch all tasks at once (Spark's barrier mode), so that each runs on its
                own task slot; only where the cluster has a slot for each.

        Returns:
            The results, in the order of ``messages``.
        """
        if not messages:
            return []
        self._count += 1
        group = f"{self._prefix}-{self._count}"
        rdd = self.sc.parallelize(list(messages), len(messages))
        if barrier:
            rdd = rdd.barrier()
        rdd = rdd.mapPartitions(functools.partial(run_each, task))
        self.sc.setJobGroup(group, f"ramnet {stage}", interruptOnCancel=True)
        done = threading.Event()
        watcher = None
        if self.progress is not None:
            watcher = threading.Thread(
                target=self._watch, args=(group, stage, len(messages), done), daemon=True
            )
            watcher.start()
        try:
            tagged: list[bytes] = rdd.collect()
        except Exception as exc:  # Py4J's and pyspark's errors: one line, not the worker's trace
            raise KernelError(f"a Spark task of stage {stage!r} failed: {_summary(exc)}") from exc
        finally:
            done.set()
            if watcher is not None:
                watcher.join()
            self.sc.setLocalProperty("spark.jobGroup.id", None)
        self.received += sum(len(x) for x in tagged)
        results = []
        for item in tagged:
            if item[:1] == b"\x01":
                error = decode(item[1:], TaskError)
                raise _error_class(error.kind)(error.message)
            results.append(item[1:])
        if self.progress is not None:
            self.progress(stage, len(messages), len(messages))
        return results

    def run_excluding(
        self,
        stage: str,
        task: str,
        build: Callable[[Any, list[str]], bytes],
        keys: Sequence[Any],
        excluded: set[str],
        declined: Callable[[bytes], bool],
    ) -> dict[Any, bytes]:
        """Run one task per key, away from ``excluded`` executors.

        A task that lands on an excluded executor declines; its work goes out again, as one copy
        per task slot so that it reaches a slot of another executor, for a few rounds; then the
        exclusion is lifted for it (``lifted``) rather than leave the job unfinished.

        Args:
            stage: The stage's name.
            task: The task's name.
            build: ``build(key, excluded)`` -> the message for ``key``.
            keys: The work.
            excluded: Executors that must not do it.
            declined: Whether a result is a refusal.

        Returns:
            key -> its result.
        """
        out: dict[Any, bytes] = {}
        pending = list(keys)
        for attempt in range(_ROUNDS + 1):
            if not pending:
                break
            avoid = sorted(excluded) if attempt < _ROUNDS else []
            if attempt == _ROUNDS:
                self.lifted = True
            copies = 1 if attempt == 0 else max(1, min(self.parallelism, 4))
            work = [key for key in pending for _ in range(copies)]
            results = self.run(stage, task, [build(key, avoid) for key in work])
            for key, result in zip(work, results, strict=True):
                if key not in out and not declined(result):
                    out[key] = result
            pending = [key for key in pending if key not in out]
        return out

    def _watch(self, group: str, stage: str, total: int, done: threading.Event) -> None:
        tracker = self.sc.statusTracker()
        last = -1
        while not done.wait(0.25):
            completed = 0
            try:
                for job in tracker.getJobIdsForGroup(group):
                    info = tracker.getJobInfo(job)
                    for stage_id in info.stageIds if info else ():
                        stage_info = tracker.getStageInfo(stage_id)
                        if stage_info is not None:
                            completed += stage_info.numCompletedTasks
            except Exception:  # the tracker is advisory: a failed poll only skips an update
                continue
            if completed != last and self.progress is not None:
                last = completed
                self.progress(stage, min(completed, total), total)


def _error_class(name: str) -> type[RamnetError]:
    """The RamnetError subclass called ``name`` (a task's error, raised again here)."""
    pending: list[type[RamnetError]] = [RamnetError]
    while pending:
        cls = pending.pop()
        if cls.__name__ == name:
            return cls
        pending.extend(cls.__subclasses__())
    return RamnetError


def _summary(exc: BaseException) -> str:
    """The last ``Error: message`` line of a failed Spark job's text, or its first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception")) and " " not in head and ":" in line:
            return line[:300]
    return lines[0][:300] if lines else type(exc).__name__
