"""A push or pull reads the manifest on a thread while it commits (BucketRemote.prefetch):
what that read says is only ever as good as a read made then, so a remote that moved on since
must still be merged, never overwritten, and a read that failed must fail the step that needed
it. In-process, on folder clouds (the read is the same for every store)."""

from __future__ import annotations

from pathlib import Path

import memfs
from memfs import sync
from memfs.remotes import get_remote
from memfs.remotes.bucket import BucketRemote
from memfs.remotes.configure import add_remote

from .conftest import assert_git_agrees, write


def _two_machines(tmp_path: Path) -> tuple[memfs.Agent, memfs.Agent, str]:
    url = f"memfs::{(tmp_path / 'cloud').as_uri()}"
    a = memfs.init(tmp_path / "a" / "agent", name="shared")
    add_remote(a.history, "origin", url)
    assert sync.push(a).ok
    b = sync.clone(url, tmp_path / "b" / "agent")
    return a, b, url


def test_a_push_whose_prefetched_read_went_stale_merges_and_loses_nothing(tmp_path: Path) -> None:
    """A reads the manifest (prefetch, done), B pushes, then A pushes on that read: the swap
    is refused (the manifest is not the one read), A merges B's commit and pushes both."""
    a, b, url = _two_machines(tmp_path)
    write(a.root, "reference/from-a.md", "---\ndescription: a\n---\nfrom a\n")
    a.commit()
    config = get_remote(a.history, "origin")
    remote = sync.open_for(a, config)
    assert isinstance(remote, BucketRemote)
    remote.prefetch()
    remote.settle()  # the read is done: what follows happens after it
    write(b.root, "reference/from-b.md", "---\ndescription: b\n---\nfrom b\n")
    assert sync.push(b).ok

    outcome = sync.push_remote(a, config, "copy", remote=remote)

    assert outcome.pushed == "pushed" and outcome.integrated == "merged"
    c = sync.clone(url, tmp_path / "c" / "agent")
    assert (c.root / "reference/from-a.md").read_text().endswith("from a\n")
    assert (c.root / "reference/from-b.md").read_text().endswith("from b\n")
    assert c.history.head() == a.history.head()
    assert_git_agrees(a.root)


def test_the_prefetched_read_serves_one_read_and_the_next_is_made_afresh(
    tmp_path: Path,
) -> None:
    """The read started early answers the first read after it (no second request); the
    one after that reads again, so a push that retries sees what was pushed meanwhile."""
    a, b, _ = _two_machines(tmp_path)
    old = a.history.head()
    remote = sync.open_for(b, get_remote(b.history, "origin"))
    assert isinstance(remote, BucketRemote)
    remote.prefetch()
    remote.settle()
    write(a.root, "reference/two.md", "---\ndescription: two\n---\ntwo\n")
    assert sync.push(a).ok and a.history.head() != old

    assert remote.head("main") == old  # the prefetched answer, taken once
    assert remote.head("main") == a.history.head()  # read afresh


def test_a_prefetched_read_that_failed_fails_the_pull_of_that_remote(tmp_path: Path) -> None:
    """A manifest that cannot be read: the pull says so for that remote (its error, exit 7
    in the CLI), nothing is merged, and the local commit stands."""
    _, b, _ = _two_machines(tmp_path)
    (tmp_path / "cloud" / "manifest.json").write_text("{ not json")
    write(b.root, "reference/local.md", "---\ndescription: local\n---\nlocal\n")
    before = b.history.head()

    report = sync.pull(b)

    assert not report.ok
    [outcome] = report.remotes
    assert outcome.error is not None and "manifest.json" in outcome.error
    assert b.history.head() != before  # the local edit was committed first, as always
    assert b.status().clean
