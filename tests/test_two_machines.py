"""Two machines, each with a watcher daemon, and random editors on both at once.

The editors append, save atomically (temp file + rename), create and delete files, and append
to the same files on both machines, 0-300 ms apart, while both watchers commit, push and pull.
Once the editors stop, both machines must converge on the remote's head with clean work trees
and no token lost: every token written to a file the test did not delete later is in the
tree, at its path or in a conflict copy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import S3Bucket
from .harness import committed_files, fsck, setup_two_machines, watched_two_machine_run
from .s3 import CREDENTIALS


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
