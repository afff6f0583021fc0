"""Crash points: named places in the write paths where a test can kill the process.

A crash test runs memfs in a child process with ``MEMFS_CRASH_AT=name`` (or ``name:N``,
the Nth time that point is reached; several specs separated by commas). When the point is
reached the process kills itself with SIGKILL: no ``finally``, no atexit, no flush, as
``kill -9`` or a power cut would leave it. Unset (always, outside tests), a crash point is
one dictionary lookup.

Points (``memfs/faults.py`` is the list; grep for ``crash_point(``):
- ``apply.write``: before each work-tree write of a merge, fast-forward, restore or revert
- ``apply.moved``: a file to be replaced is moved aside, its new version not yet linked in
- ``apply.linked``: one file's new version is in place
- ``apply.commit``: after a merge's files are written, before its commit
- ``update.index``: a merge or fast-forward is committed (branch moved, files in place), the
  index not yet rewritten for it
- ``commit.objects``: a commit's objects are written, its branch not yet moved
- ``commit.index``: a commit's branch moved, the index not yet rewritten for it
- ``push.pack``, ``push.index``, ``push.manifest``: a bucket push, before each upload
- ``push.git``: before a git push sends its pack
- ``serve.git.pushed``: a git push through ``memfs serve`` has moved the bucket, the server's
  checkout not yet moved to it
- ``fetch.import``: a fetched pack is downloaded (bucket: not yet imported; git: stored,
  no ref pointing at it yet)
- ``clone.created``: a clone's ``.git`` is made, its unfinished marker not yet written
- ``checkout.write``: before each file of a fresh clone or checkout is written
- ``checkout.finish``: a clone's files, branch and index are written, its unfinished
  marker (``memfs.checkout``) not yet removed
- ``repack.pack``, ``repack.index``: a consolidation (``repack.py``), before it writes its
  new pack, and between the pack and its index
- ``repack.loose``: the new pack is durable, the loose objects it holds not yet removed
- ``repack.old``: before each old pack is removed
- ``key.rotated``: ``memfs key rm`` has rotated keys.json, nothing re-sealed yet
- ``secrets.write``: a secret change is queued (``.git/memfs/secrets.pending.enc``), the
  local cache and facts not yet written
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator

ENV = "MEMFS_CRASH_AT"


def _parse(spec: str) -> dict[str, int]:
    points: dict[str, int] = {}
    for item in spec.split(","):
        name, _, count = item.strip().partition(":")
        if name:
            points[name] = int(count) if count.isdigit() and int(count) > 0 else 1
    return points


_POINTS: dict[str, int] = _parse(os.environ.get(ENV, ""))
_hits: dict[str, int] = {}
_hooks: dict[str, Callable[[], None]] = {}


def crash_point(name: str) -> None:
    """Kill this process here if a crash test asked for it (see the module docstring).

    An in-process test may instead run code at the point (``at``): an edit that lands
    exactly there, as a concurrent editor's would.
    """
    if _hooks and name in _hooks:
        _hooks[name]()
    if not _POINTS or name not in _POINTS:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == _POINTS[name]:
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def at(name: str, action: Callable[[], None]) -> Iterator[None]:
    """Run ``action`` each time the point ``name`` is reached, while the block runs (tests)."""
    _hooks[name] = action
    try:
        yield
    finally:
        _hooks.pop(name, None)
