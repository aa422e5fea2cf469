"""The audit's statements as jobs: run in order on the snapshot's connection, or also on a
second connection that imports the snapshot, with output spooled so the order holds; and the
transaction-local planner settings every audit connection uses."""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import db, early
from .copy_stream import Spooled
from .progress import Progress

# Transaction-local settings for the audit's statements. A table's statement returns only its
# violating rows, but the planner cannot estimate rules across columns and expects most rows
# back, which makes a parallel plan look expensive; and the joins' hash tables and the
# uniqueness sorts should not spill to disk for want of a few MB. JIT off: the planner's
# estimate for the lines statement's `JOIN unnest(array_positions(...))` (and for the diagnosis
# branches over the flagged rows, which it takes for the whole table) runs to 10^10 rows and
# more, past every `jit_*_above_cost`, and a server with JIT (Debian's postgresql-15 has it on
# by default) then spends far longer compiling than running (20 s of 24 s at 1M requests).
# The costs and work_mem are only ever moved in the direction named (never lowering the
# server's own work_mem); jit is always turned off.
PLANNER_SETTINGS = (("jit", "off"), ("parallel_tuple_cost", "0.01"), ("work_mem", "64MB"))
_RAISE_WORK_MEM = sa.text(
    "SELECT set_config('work_mem', :value, true) "
    "WHERE pg_size_bytes(current_setting('work_mem')) < pg_size_bytes(:value)"
)
_LOWER_COST = sa.text(
    "SELECT set_config(:name, :value, true) "
    "WHERE CAST(current_setting(:name) AS float8) > CAST(:value AS float8)"
)
_SET = sa.text("SELECT set_config(:name, :value, true)")

# The second connection's statements run without parallel workers: it is there to use the
# cores the first connection's serial steps leave idle (a table statement's diagnosis
# branches, its final sort), and the first connection's big scans are parallel already. Its
# own parallel plans would compete with those scans' workers for the same cores and worker
# slots and cost more CPU in all (partial sorts, Gather Merge, worker start-up). Measured at
# 1M requests on Debian's postgresql-15, 2 cores: on a machine loaded by other work (load
# average 5-6) the whole run was faster in 7 of 8 alternating pairs, medians 10.2 s against
# 11.1 s; at a load average of ~3 the same (5 pairs, 7.1 s against 7.2 s). A job the first
# connection takes over runs while the companion runs another: it plans the workers of a
# table's half (`split_workers`), so that the two use about what one statement would. Measured
# at 1M requests on pgserver 16, 2 cores: the uniqueness check of `session_requests` (a sort of
# 446,000 rows) beside a half of the table, 5 alternating pairs, medians: 2.94 s (3.48 s of
# the server's CPU) without workers, 3.20 s (3.73 s) with two.
COMPANION_SETTINGS = (("max_parallel_workers_per_gather", "0"),)


_WORKERS = "max_parallel_workers_per_gather"
_CURRENT = sa.text("SELECT current_setting(:name)")


def split_workers(conn: Connection) -> int:
    """The parallel workers each half of a table split across the two connections may plan:
    together the halves use about as many processes as the server gives one statement
    (1 + max_parallel_workers_per_gather), so none with the default of 2."""
    per_statement = int(conn.execute(_CURRENT, {"name": _WORKERS}).scalar_one())
    return max(0, (per_statement + 1) // 2 - 1)


def tune_session(conn: Connection) -> None:
    """Apply PLANNER_SETTINGS to the current transaction (SET LOCAL semantics)."""
    for name, value in PLANNER_SETTINGS:
        if name == "work_mem":
            conn.execute(_RAISE_WORK_MEM, {"value": value})
        elif name.endswith("_cost"):
            conn.execute(_LOWER_COST, {"name": name, "value": value})
        else:
            conn.execute(_SET, {"name": name, "value": value})


@dataclass
class Job:
    """One statement of the audit. `run` executes it on any connection in the snapshot and
    returns what it produced (spooled); `take` hands that to the sink, on the calling thread,
    in the job's turn; `stream` does both at once, for a job run in its turn by the thread
    that takes the outputs (every job on one connection; the first one on two)."""

    stage: str
    """The progress stage it belongs to; "" for none."""
    step: str
    run: Callable[[Connection], Any]
    take: Callable[[Any], None]
    stream: Callable[[Connection], Any] | None = None
    workers: int | None = None
    """The parallel workers it may plan, on either connection, when there are two (one half
    of a table split across them); None: as the connection's other jobs do (the first job:
    the server's setting; the companion: none; the first connection, taking jobs over from
    the companion: as many as a half)."""
    cost: int = 0
    """How much it reads, roughly (the pages of its table): of the jobs the second
    connection has not started, the first connection takes the costliest first."""
    early: bool = False
    """Its statement is built in a moment (a count): the second connection runs it first,
    while the first connection's statement is still being built, rather than leave its core
    idle then and run it among the last."""


class _Stop:
    """The run's stop, shared by its connections' threads: set on the first failure, whose
    error it keeps, or when the run ends; once it is set, no thread sends another statement
    (`db.stopping_on`)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def fail(self, error: BaseException) -> bool:
        """Record `error` and stop, if this is the first failure (a later one is a
        consequence: a statement cancelled or refused because the run stops)."""
        with self._lock:
            if self.event.is_set():
                return False
            self.error = error  # before the event: whoever sees it finds the cause
            self.event.set()
            return True

    def check(self) -> None:
        """Raise the first failure's error, if there was one."""
        if self.error is not None:
            raise self.error


class _Worker:
    """One of the audit's connections running jobs in a thread of its own, in the order they
    are submitted (a job it has not started yet can still be cancelled, to run elsewhere).
    With `go`, a job that is not `early` waits for it. The first of its jobs to fail stops
    the run and cancels the statement of its `peer`, so that the audit ends at once with
    that error. Its jobs plan `workers` parallel workers unless they have their own; the
    setting is changed only when a job wants another number than the last one (`known`:
    the connection has `workers` already)."""

    def __init__(
        self,
        conn: Connection,
        name: str,
        stop: _Stop,
        go: threading.Event | None = None,
        *,
        workers: int,
        known: bool = False,
    ) -> None:
        self._conn = conn
        self._workers = workers
        self._planned = str(workers) if known else None
        self._before: str | None = None  # the connection's setting before this changed it
        self._raw: Any = conn.connection.dbapi_connection
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._submitted: list[Future[Any]] = []
        self._stop = stop
        self._go = go
        self.peer: _Worker | None = None

    def submit(self, job: Job) -> Future[Any]:
        future = self._pool.submit(self._run, job)
        future.add_done_callback(self._failed)
        self._submitted.append(future)
        return future

    def _run(self, job: Job) -> Any:
        if self._go is not None and not job.early:
            self._go.wait()
        with db.stopping_on(self._stop.event):
            self.plan(self._workers if job.workers is None else job.workers)
            return job.run(self._conn)

    def plan(self, workers: int) -> None:
        """Let the connection's next statement plan `workers` parallel workers (by the
        thread that uses the connection)."""
        if self._planned is None:
            self._planned = self._before = self._conn.execute(
                _CURRENT, {"name": _WORKERS}
            ).scalar_one()
        if str(workers) != self._planned:
            self._conn.execute(_SET, {"name": _WORKERS, "value": str(workers)})
            self._planned = str(workers)

    def restore(self) -> None:
        """Give the connection back the setting it had before its first job (once every job
        it was given has ended: the calling thread uses the connection)."""
        if self._before is not None and self._planned != self._before:
            self._conn.execute(_SET, {"name": _WORKERS, "value": self._before})
            self._planned = self._before

    def _failed(self, future: Future[Any]) -> None:
        error = None if future.cancelled() else future.exception()
        if error is not None and self._stop.fail(error) and self.peer is not None:
            self.peer.cancel()

    def cancel(self) -> None:
        """Cancel the statement running on its connection, if any (whichever thread runs
        it)."""
        with contextlib.suppress(Exception):  # the connection may be gone already
            self._raw.cancel()
        early.cancel()  # the statement this connection's thread waits for, if it is that

    def close(self) -> None:
        """Stop (the run's stop is set by now: no statement is sent any more): cancel what is
        queued and the statement running, if any; wait for the thread."""
        if self._go is not None:
            self._go.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        _stop_running(self._submitted, self.cancel)
        self._pool.shutdown(wait=True)


def _stop_running(futures: list[Future[Any]], cancel: Callable[[], None]) -> None:
    """Cancel the statement of the job running, until it has ended (a cancel request that
    arrives before the statement does is lost; `stop` then refuses the statements after)."""
    while running := [f for f in futures if f.running()]:
        cancel()
        wait(running, timeout=0.2)


def _close(output: Any) -> None:
    """Close the spools in a job's output (a `Spooled`, or a tuple holding one)."""
    for part in output if isinstance(output, tuple) else (output,):
        if isinstance(part, Spooled):
            part.close()


def run_jobs(
    conn: Connection,
    jobs: list[Job],
    prog: Progress,
    *,
    companion: bool,
    on_first_statement: Callable[[], None] = lambda: None,
    split: Callable[[], int] | None = None,
) -> None:
    """Run `jobs` and hand their output to the sink in list order; `on_first_statement` is
    called once the first statement is on its way (see `db.on_sending`). `split`: the
    parallel workers of each half of a table (`split_workers`), if already known.

    With `companion`, a second connection in the same snapshot runs the jobs after the
    first while the first runs here (PostgreSQL's serial steps, such as diagnosis, leave a
    core idle); each job's output waits in a spool for its turn. After the first job, this
    connection's statements run in a thread of their own, so that this thread hands the
    outputs over while both connections work: it starts the job whose turn it is if the
    companion has not, else, while the companion runs that one, the costliest of the later
    jobs the companion has not started (so that the two connections end together rather
    than the companion starting a long statement last). The second connection starts with
    the `early` jobs, while this thread still builds the first statement.
    """
    stage = ""

    def announce(job: Job) -> None:
        nonlocal stage
        if not job.stage:
            return
        if job.stage != stage:
            stage = job.stage
            prog.stage(stage, sum(j.stage == stage for j in jobs))
        prog.step(job.step)

    def here(job: Job, on_first_statement: Callable[[], None] | None = None) -> None:
        """Run `job` on this connection; `on_first_statement`: it is the first, and that is
        called as its statement goes out."""
        if stop is not None:
            stop.check()
        announce(job)
        with (
            db.on_sending(on_first_statement)
            if on_first_statement is not None
            else contextlib.nullcontext()
        ):
            if job.stream is not None:
                job.stream(conn)
            else:
                job.take(job.run(conn))

    stop: _Stop | None = None
    wanted = companion and len(jobs) > 1
    with db.companion(conn) if wanted else contextlib.nullcontext() as other:
        if other is None:
            if not jobs:
                on_first_statement()
            for i, job in enumerate(jobs):
                here(job, on_first_statement if i == 0 else None)
            return
        # read before any job changes this connection's setting
        beside = split() if split is not None else split_workers(conn)
        tune_session(other)
        for name, value in COMPANION_SETTINGS:
            other.execute(_SET, {"name": name, "value": value})
        stop = _Stop()
        go = threading.Event()  # set once the first statement is on its way
        side = _Worker(
            other, "refaudit-companion", stop, go,
            workers=int(dict(COMPANION_SETTINGS)[_WORKERS]), known=True,
        )
        # the jobs this connection runs after the first, in a thread of its own, so that
        # this thread hands the outputs over while both connections' statements run; each
        # runs while the companion runs another (an earlier job: it has not started this
        # one), so the two use about the processes one statement would, as a table's halves
        # do: more parallel workers would only share the same cores, at the cost of their
        # start-up and of merging their output
        mine = _Worker(conn, "refaudit-main", stop, workers=beside)
        side.peer, mine.peer = mine, side
        stolen: dict[int, Future[Any]] = {}  # by index into `futures`
        futures: list[Future[Any]] = []

        def then_take(job: Job, output: Any) -> None:
            try:
                announce(job)
                job.take(output)
            finally:
                _close(output)

        # the jobs after the first by cost, costliest first: each is tried once (started
        # here, or found started by the companion), so the run costs O(jobs), not O(jobs^2)
        costliest = collections.deque(sorted(range(len(jobs) - 1), key=lambda k: -jobs[k + 1].cost))
        current: Future[Any] | None = None  # the job this connection runs, if any

        def busy() -> Future[Any] | None:
            """The job this connection runs; the error of the one it ran, if that failed."""
            if current is not None and current.done():
                current.result()
            return current if current is not None and not current.done() else None

        def keep_busy(i: int) -> None:
            """Unless this connection runs a job already, start one the companion has not:
            job `i` (whose turn it is), else the costliest after it."""
            nonlocal current
            if busy() is not None:
                return
            if i < len(futures) and i not in stolen and futures[i].cancel():
                k = i
            else:
                while costliest:
                    k = costliest.popleft()
                    if k > i and k not in stolen and futures[k].cancel():
                        break
                else:
                    return
            stop.check()
            current = stolen[k] = mine.submit(jobs[k + 1])

        try:
            # the early jobs first (they do not wait for the first statement), then in order
            queued = sorted(range(1, len(jobs)), key=lambda k: not jobs[k].early)
            submitted = {k: side.submit(jobs[k]) for k in queued}
            futures.extend(submitted[k] for k in range(1, len(jobs)))

            def first_sent() -> None:
                on_first_statement()
                go.set()

            try:
                if jobs[0].workers is not None:  # a job's own workers, on either connection
                    mine.plan(jobs[0].workers)  # by this thread: `mine` has not started
                here(jobs[0], first_sent)
                for i, job in enumerate(jobs[1:]):
                    stop.check()
                    keep_busy(i)
                    while not (output := stolen.get(i, futures[i])).done():
                        running = busy()
                        either = [output, running] if running else [output]
                        wait(either, return_when=FIRST_COMPLETED)
                        stop.check()
                        keep_busy(i)  # job i itself, if the companion has not started it
                    then_take(job, output.result())
                    keep_busy(i + 1)
                mine.restore()  # every job has ended
            except Exception:
                # a statement cancelled or refused because the other connection's failed:
                # report that failure, the cause (never for Ctrl-C)
                stop.check()
                raise
        finally:
            stop.event.set()  # neither connection sends another statement
            try:
                mine.close()
            finally:
                side.close()
                ran = [*stolen.values(), *futures]
                for f in ran:
                    if f.done() and not f.cancelled() and f.exception() is None:
                        _close(f.result())  # output of a run that failed: never read
