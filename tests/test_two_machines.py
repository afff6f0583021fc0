"""Two machines, each with a watcher daemon, and random editors on both at once.

The editors append, save atomically (temp file + rename), create and delete files, and append
to the same files on both machines, 0-300 ms apart, while both watchers commit, push and pull.
Once the editors stop, both machines must converge on the remote's head with clean work trees
and no token lost: every token written to a file the test did not delete later is in the
tree, at its path or in a conflict copy.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from memfs.remotes import open_remote

from .conftest import S3Bucket
from .harness import (
    Ledger,
    Machine,
    RandomEditor,
    committed_files,
    edit_for_a_while,
    fsck,
    setup_two_machines,
    start_watcher,
    stop_watcher,
    wait_for,
    watched_machines_converged,
)
from .s3 import CREDENTIALS


def watched_two_machine_run(
    a: Machine, b: Machine, url: str, seed: int, edits_per_machine: int
) -> tuple[Ledger, dict[str, str]]:
    """Watchers on both, random editors on both; wait for convergence; the lost tokens."""
    ledger = Ledger()
    rng = random.Random(seed)
    editors = [RandomEditor(m.name, m.root, ledger, random.Random(rng.random())) for m in (a, b)]
    for machine in (a, b):
        start_watcher(machine)
    try:
        threads = [
            threading.Thread(target=edit_for_a_while, args=(editor, edits_per_machine))
            for editor in editors
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        wait_for(
            lambda: watched_machines_converged([a, b], lambda: open_remote(url).head("main")),
            timeout=60,
            what="both watched machines to converge on the remote's head",
        )
    finally:
        stopped = [stop_watcher(machine) for machine in (a, b)]
    assert all(done.returncode == 0 for done in stopped), [d.stderr for d in stopped]
    return ledger, ledger.lost(committed_files(a.root))


@pytest.mark.timeout(150)
@pytest.mark.parametrize("store", ["s3", "folder"])
def test_two_watched_machines_with_random_editors_lose_nothing(
    tmp_path: Path, request: pytest.FixtureRequest, store: str
) -> None:
    if store == "s3":
        s3: S3Bucket = request.getfixturevalue("s3")
        env = dict(CREDENTIALS, AWS_ENDPOINT_URL=s3.server.endpoint)
        url = s3.url(f"agents/{tmp_path.name}")
    else:
        env, url = {}, f"memfs::{(tmp_path / 'cloud' / 'shared').as_uri()}"
    a, b = setup_two_machines(tmp_path, url, env)
    ledger, lost = watched_two_machine_run(a, b, url, seed=11, edits_per_machine=30)
    assert sum(ledger.edits.values()) == 60
    assert lost == {}, f"tokens lost: {lost}"
    assert committed_files(a.root) == committed_files(b.root)
    assert fsck(a.root) == "" and fsck(b.root) == ""
