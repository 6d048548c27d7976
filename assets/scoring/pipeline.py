"""Batch scoring on Ray Data: read_parquet -> map_batches (a pool of scorer actors) -> ordered parts.

The pool is sized from the cluster's free CPUs when the job starts (``pool_plan``; deployments'
replicas and other jobs hold some): one actor per CPU up to ``MAX_SCORING_ACTORS``,
each asking for at most one CPU and together leaving ``IO_RESERVE_CPUS`` free, and Ray Data's read
tasks ask for ``IO_TASK_CPUS`` each. Actors that took every CPU would leave the read tasks
unschedulable and the job would hang (ray-project/ray#44687): on the 2-CPU machine that is 2
actors of 0.75 CPU and reads of 0.25, so both cores predict while reads still get scheduled.
The OS shares the cores; Ray's CPU figures are only the scheduler's tokens. The pool starts with one
actor and grows to the plan's size (a pool whose every actor is asked for up front hangs on the
2-CPU machine: Ray Data's resource budget then leaves the read operator nothing).

Blocks: Ray Data reads a parquet row group into one block and hands a block to one actor, so a
file of one row group (pandas and pyarrow write up to 1M rows per group) would be scored by one
actor. The job caps the block size (``block_bytes``: the input's uncompressed size over
``BLOCKS_PER_ACTOR`` x actors, between 1 MiB and 32 MiB) so that the read tasks slice the input
into at least that many blocks and every actor gets work. An actor takes a whole block at a time
(``batch_size=None``): the checks and conversions run once a block, and the job's ``batch_size``
is the rows per model call inside it (``predict_in_calls``), so that a batch size of 1,000 costs
the model's per-call overhead and not Ray Data's per-batch one.

Order is preserved (``DataContext.execution_options.preserve_order``): the output files, in name
order, hold the input's valid rows in the input's order (input files in name order). The job
writes the ordered stream itself (``iter_batches`` -> ``PartWriter``, a file every 500,000
rows) rather than with ``Dataset.write_parquet``: on Ray 2.60 the write tasks combine blocks into
files out of order even with ``preserve_order`` (checked: one file of 2,500 rows from two inputs,
rows out of order, while ``to_pandas`` of the same dataset was ordered), and a retry must write
the same files. Writing parquet is a small part of scoring's cost; the driver does it while the
actors score the next blocks.

Progress: every actor adds its block's counts to a small counter actor; a thread of the driver
reads it every ``progress_every_s`` and hands (rows done, rows rejected) to ``progress``. The final
counts come from what was written (the part writer's rows, the rejected files' footers).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assets.scoring.scorer import BatchScorer, ScoringSpec
from resources.data.staged_output import REASON

if TYPE_CHECKING:
    import pyarrow.fs as pafs

    from mlservice.inference.loaded_model import LoadedModel
    from resources.data.staged_output import OutputPlan

MAX_SCORING_ACTORS = 8
BLOCKS_PER_ACTOR = 4
MIN_BLOCK_BYTES = 1 << 20
MAX_BLOCK_BYTES = 32 << 20  # a quarter of Ray Data's default: progress every few seconds, less memory an actor
IO_RESERVE_CPUS = 0.5
IO_TASK_CPUS = 0.25
LIST_FILES_CPUS = 1.0
MIN_ACTOR_CPUS = 0.05
REJECTED_EXAMPLES = 5
ROWS_PER_FILE = 500_000


class RejectedRows(Exception):
    """on_invalid=fail and some rows did not fit the signature: the count and examples."""

    def __init__(self, count: int, examples: list[dict[str, Any]]) -> None:
        self.count, self.examples = count, examples
        shown = "; ".join(f"{e.get(REASON)}" for e in examples[:3])
        super().__init__(f"{count} row(s) do not fit the model's signature (e.g. {shown}); "
                         "fix the input or send on_invalid=skip to score the others")


@dataclass
class ScoringOutcome:
    rows_done: int  # valid rows scored
    rows_rejected: int
    seconds: float  # from the dataset's start to the last write
    startup_seconds: float | None = None  # from the dataset's start to the first scored rows written
    steady_rows_per_s: float | None = None  # rows written after the first block over the time they took
    schema: Any = None  # the output files' Arrow schema (None when no row was scored)


def pool_plan(cluster_cpus: float, input_bytes: int) -> tuple[int, float]:
    """(actors, CPUs per actor) for a cluster of ``cluster_cpus`` and an input of ``input_bytes``
    (uncompressed): no more actors than blocks of at least ``MIN_BLOCK_BYTES`` (an actor scores
    whole blocks: one more would have nothing to do)."""
    actors = max(1, min(MAX_SCORING_ACTORS, round(cluster_cpus), math.ceil(max(input_bytes, 1) / MIN_BLOCK_BYTES)))
    # Ray Data's ListFiles task (read_parquet's first step) asks for 1 CPU and cannot be told
    # otherwise, and the pool's actor is placed before it runs: the actor leaves it that much, or
    # the read never starts while other work (a deployment's replicas, another job's fit) holds the
    # rest. With no CPU to spare beside it, the one actor reserves none (checked on Ray 2.60: with
    # 1 of 2 CPUs held, a 0.05-CPU actor waited for good, a 0-CPU actor scored at once).
    per_actor = min(1.0, (cluster_cpus - IO_RESERVE_CPUS) / actors, cluster_cpus - LIST_FILES_CPUS)
    return actors, round(per_actor, 3) if per_actor >= MIN_ACTOR_CPUS else 0.0


def block_bytes(input_bytes: int, actors: int) -> int:
    """The largest block (bytes) that gives every actor of the pool ``BLOCKS_PER_ACTOR`` blocks."""
    return int(min(MAX_BLOCK_BYTES, max(MIN_BLOCK_BYTES, input_bytes / (max(actors, 1) * BLOCKS_PER_ACTOR))))


@contextlib.contextmanager
def _data_context(max_block_bytes: int) -> Iterator[None]:
    """Order preserved and blocks capped for the datasets made inside (a dataset keeps the context
    it was made under); the process's context restored after."""
    import ray.data

    context = ray.data.DataContext.get_current()
    before = (context.execution_options.preserve_order, context.target_max_block_size)
    context.execution_options.preserve_order = True
    context.target_max_block_size = max_block_bytes
    try:
        yield
    finally:
        context.execution_options.preserve_order, context.target_max_block_size = before


class PartWriter:
    """Writes an ordered stream of Arrow tables as part-00000.parquet, part-00001.parquet, ...,
    a new file every ``rows_per_file`` rows (the first table's schema for all of them)."""

    def __init__(self, fs: pafs.FileSystem, folder: str, rows_per_file: int = ROWS_PER_FILE) -> None:
        self.fs, self.folder, self.rows_per_file = fs, folder.rstrip("/"), rows_per_file
        self.index, self.rows_in_file, self.schema = 0, 0, None
        self.rows = 0  # written in all
        self.writer: Any = None

    def write(self, table: Any) -> None:
        import pyarrow.parquet as pq

        from resources.data.storage import ensure_dir

        if table.num_rows == 0:
            return
        if self.schema is None:
            self.schema = table.schema
            ensure_dir(self.fs, self.folder)
        elif table.schema != self.schema:
            table = table.cast(self.schema)
        while table.num_rows:
            if self.writer is None:
                path = f"{self.folder}/part-{self.index:05d}.parquet"
                self.writer = pq.ParquetWriter(path, self.schema, filesystem=self.fs)
            room = self.rows_per_file - self.rows_in_file
            head, table = table.slice(0, room), table.slice(room)
            self.writer.write_table(head)
            self.rows_in_file += head.num_rows
            self.rows += head.num_rows
            if self.rows_in_file >= self.rows_per_file:
                self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer, self.rows_in_file, self.index = None, 0, self.index + 1


def run_scoring(spec: ScoringSpec, model: LoadedModel, input_files: list[str], input_fs: pafs.FileSystem, plan: OutputPlan, *,
                input_bytes: int, on_invalid: str, progress: Callable[[int, int], None] | None = None,
                progress_every_s: float = 1.0, log: Callable[[str], None] = lambda _message: None) -> ScoringOutcome:
    """Score ``input_files`` into ``plan``'s staging folder (the caller commits or discards it)."""
    import ray
    import ray.data

    # what is free now, not the cluster's total: Serve replicas and other jobs hold CPUs, and a pool
    # sized from the total would wait for CPUs that never come (the read tasks with it)
    from resources.infra.ray_capacity import free

    total = float(ray.cluster_resources().get("CPU", 1.0))
    cpus = free("CPU") or min(total, 1.0)
    actors, per_actor = pool_plan(cpus, input_bytes)
    cap = block_bytes(input_bytes, actors)
    log(f"scoring on Ray Data: up to {actors} actor(s) of {per_actor} CPU on {cpus:g} free CPU of {total:g}, "
        f"read tasks of {IO_TASK_CPUS} CPU, blocks up to {cap / 2**20:.1f} MiB, {spec.rows_per_call} rows per model call")
    counter = ray.remote(num_cpus=0)(_Counter).remote()
    shared_model = ray.put(model)
    stop = threading.Event()
    reporter = threading.Thread(target=_report, args=(counter, progress, stop, progress_every_s), daemon=True)
    started = time.perf_counter()
    if progress is not None:
        reporter.start()
    try:
        with _data_context(cap):
            dataset = ray.data.read_parquet(input_files, filesystem=input_fs, num_cpus=IO_TASK_CPUS)
            scored = dataset.map_batches(
                BatchScorer, fn_constructor_args=(spec, shared_model, counter), batch_format="pyarrow", batch_size=None,
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors), num_cpus=per_actor,
            )
        writer = PartWriter(plan.fs, plan.staged_data)
        first_at = last_at = None
        first_rows = 0
        try:
            for table in scored.iter_batches(batch_format="pyarrow", batch_size=None, prefetch_batches=2):
                writer.write(table)
                last_at = time.perf_counter()
                if first_at is None:
                    first_at, first_rows = last_at, table.num_rows
                    log(f"first {first_rows:,} rows scored and written {first_at - started:.1f} s after the start")
        finally:
            writer.close()
        # the outcome's counts from what was written: a block that Ray retried (an actor that died
        # and was restarted) may have reached the counter twice; its rejected rows' file is named
        # by content, so a retry rewrote the same file
        done, rejected = writer.rows, _rejected_rows(plan)
    finally:
        stop.set()
        if reporter.is_alive():
            reporter.join(timeout=5)
        ray.kill(counter)
    if progress is not None:
        progress(done, rejected)
    if rejected and on_invalid == "fail":
        raise RejectedRows(rejected, _examples(plan))
    steady = None
    if first_at is not None and last_at - first_at > 0 and done - first_rows > 0:
        steady = (done - first_rows) / (last_at - first_at)
        log(f"then {done - first_rows:,} rows in {last_at - first_at:.1f} s: {steady:,.0f} rows/s")
    return ScoringOutcome(done, rejected, time.perf_counter() - started,
                          startup_seconds=None if first_at is None else first_at - started, steady_rows_per_s=steady,
                          schema=writer.schema)


class _Counter:
    def __init__(self) -> None:
        self.done = self.rejected = 0

    def add(self, done: int, rejected: int) -> None:
        self.done += done
        self.rejected += rejected

    def totals(self) -> tuple[int, int]:
        return self.done, self.rejected


def _report(counter: Any, progress: Callable[[int, int], None], stop: threading.Event, every_s: float) -> None:
    import ray

    while not stop.wait(every_s):
        try:
            progress(*ray.get(counter.totals.remote(), timeout=10))
        except Exception:  # progress is best effort: the job's outcome does not depend on it
            continue


def _rejected_rows(plan: OutputPlan) -> int:
    from resources.data.storage import parquet_footers_on

    return parquet_footers_on(plan.fs, plan.staged_rejected).rows


def _examples(plan: OutputPlan) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    from resources.data.storage import parquet_files_on

    examples: list[dict[str, Any]] = []
    for path in parquet_files_on(plan.fs, plan.staged_rejected):
        table = pq.read_table(path, filesystem=plan.fs)
        examples.extend(table.slice(0, REJECTED_EXAMPLES - len(examples)).to_pylist())
        if len(examples) >= REJECTED_EXAMPLES:
            break
    return [{k: (v if isinstance(v, int | float | str | bool) or v is None else str(v)) for k, v in e.items()}
            for e in examples]
