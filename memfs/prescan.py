"""A push's or pull's commit scan, started in a child process while the remote is opened.

``memfs push`` first commits what is not committed yet (``fastcommit``: one lstat per file,
~30 ms at 10,000 files), then pushes; at the same time it opens its remote (the S3 stack's
and dulwich's imports, the manifest's round trip, the upload of what is committed already):
~60 ms of work that holds Python's GIL. A thread for the lstat loop gains nothing, as
building each stat result needs the GIL (measured: 155 against 147 ms wall at 10,000
files); a forked child does it on another core (118 ms) and answers with the rows whose
stat differs from the commit record's (``Table.changed``). ``memfs pull`` commits first too,
and opens its remote meanwhile in the same way.

The child parses and checks the record's bytes itself (``commitrecord.parse``), so the push
goes on at once. The commit, under the agent's lock, takes the answer only if the record it
reads then is byte for byte the one the child parsed (then it need not check it again);
anything else, it scans itself. Each row named is stat'ed again before it is read.

Why that is as safe as the scan under the lock: the child's stats are taken after the
command began, so every edit made before it is in its commit, as before; an edit made after
the child saw the file is the next commit's, as an edit made after the scan always was (the
record keeps that file's old stat data, so the next scan reads it). The child only stats
files and writes its answer to a pipe: it imports nothing, takes no lock, and always ends
with ``os._exit``; it is killed and reaped when its answer is not taken.

Only where ``os.fork`` exists with a core to spare (two or more, not all busy: ``MIN_IDLE``),
only for a process that asks (the CLI's one-shot push and pull: a watcher or a server, with
threads of its own, never forks), and only for a record of ``MIN_BYTES`` or more: below
that the scan costs less than the fork. The cost: ~3-10 ms more CPU in all (the fork's
page-table copy, copy-on-write faults, the record parsed twice). ``memfs commit`` does not
fork: it has little to do meanwhile (measured: +8 ms wall, +10 ms CPU at 10,000 files).
"""

from __future__ import annotations

import contextlib
import marshal
import os
import time

from memfs import commitrecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from memfs.agent import Agent

MIN_BYTES = 100_000
"""The smallest record for which a child scans (~1,000 files, ~115 bytes each): at 1,000
files the scan is ~3 ms, about what a fork, its pipe and its reaping cost."""
MIN_CORES = 2
"""The child runs beside the push only with another core to run on; on one, it would only
add the fork's cost (~5-10 ms of page faults at 10,000 files)."""
MIN_IDLE = 0.25
"""How much of the cores must be idle (their number less the load average) for a child: on a
busy machine it waits for a core while the push waits for it, and the copy-on-write faults
of a parent writing while it lives cost more. Measured on 2 cores at 10,000 files: at load
1.0-1.4 a push 109 against 146 ms; at 3.7 no faster and +20 ms CPU. A benchmark running
whole processes back to back keeps the load near 1.5 by itself: hence below that margin."""

answers_taken = 0  # child answers a commit used in this process: for tests and benchmarks


class Early:
    """A child scanning against the record stored as ``data``; ``answer`` waits for it once
    and keeps what it said."""

    def __init__(self, data: bytes, pid: int, pipe: int) -> None:
        self.data, self.pid, self.pipe = data, pid, pipe
        self._answer: tuple[int, list[int]] | None = None
        self._done = False

    def answer(self) -> tuple[int, list[int]] | None:
        """(when the child began, in ns; the rows whose stat differs or is untrusted), or
        None if it failed (not a record ``commitrecord.parse`` takes, a file gone, a stat
        field outside the columns, killed...). An answer says the child parsed ``data``
        and found it sound: the commit need not check the same bytes again."""
        if self._done:
            return self._answer
        self._done = True
        chunks = []
        try:
            while chunk := os.read(self.pipe, 1 << 16):
                chunks.append(chunk)
        except OSError:
            chunks = []
        finally:
            os.close(self.pipe)
            _reap(self.pid)
        with contextlib.suppress(Exception):  # a cache's answer: anything odd, scan again
            started, rows = marshal.loads(b"".join(chunks))
            if type(started) is int and type(rows) is list:
                self._answer = started, rows
        return self._answer

    def discard(self) -> None:
        """End the child without waiting for its answer (the push took another path)."""
        if self._done:
            return
        self._done = True
        with contextlib.suppress(OSError):
            os.kill(self.pid, 9)
        os.close(self.pipe)
        _reap(self.pid)


def _spare_core() -> bool:
    """Whether a child would have a core of its own (``MIN_CORES``, ``MIN_IDLE``)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    if cores < MIN_CORES:
        return False
    try:
        return cores - os.getloadavg()[0] >= MIN_IDLE
    except (AttributeError, OSError):  # no load average here
        return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        while True:
            try:
                os.waitpid(pid, 0)
                return
            except InterruptedError:  # pragma: no cover (PEP 475 retries it)
                continue


def start(agent: Agent) -> Early | None:
    """Start a child scanning the work tree against the commit record, if there is one of
    ``MIN_BYTES`` or more and this system forks; else None (the commit scans). The record
    is parsed and checked in the child: the push's own work goes on at once."""
    if not hasattr(os, "fork") or not _spare_core():
        return None
    data = commitrecord.read(agent)
    if data is None or len(data) < MIN_BYTES:
        return None
    base = str(agent.root) + "/"
    reading, writing = os.pipe()
    parent = os.getpid()
    try:
        import warnings

        with warnings.catch_warnings():
            # Python 3.12 warns of forking with threads: the child here takes no lock
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            _child(base, data, writing)
    except OSError:
        os.close(reading)
        return None
    finally:
        if os.getpid() != parent:
            os._exit(1)  # the child, whatever happened (an interrupt included)
        os.close(writing)
    return Early(data, pid, reading)


def _child(base: str, data: bytes, pipe: int) -> None:
    """The child's whole life: parse and check the record, stat every file it lists, write
    the answer, exit (without an answer if the record is not one)."""
    code = 1
    try:
        record = commitrecord.parse(data)
        if record is None:
            return
        table = commitrecord.Table.loads(record["files"])
        started = time.time_ns()
        rows = table.scan(base)[0]
        view = memoryview(marshal.dumps((started, rows)))
        while view:
            view = view[os.write(pipe, view) :]
        code = 0
    finally:
        os._exit(code)
