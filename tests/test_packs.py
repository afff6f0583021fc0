"""Packs and history walks: the one-sweep indexer against git, pushed packs that are complete,
and the ancestry walk against `git merge-base --is-ancestor`."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from dulwich.object_store import commit_tree_changes
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import memfs
from memfs import sync
from memfs.errors import PackCorruptError
from memfs.history import History
from memfs.packs import PackError, index_pack

from .conftest import S3Bucket, run_cli, write
from .servers import bare_repo
from .test_sync import two_machines


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def git_repo_with_deltas(root: Path) -> Path:
    """A repository git packed itself, with delta chains (ofs-deltas) in its pack."""
    git(root.parent, "init", "-q", "-b", "main", str(root))
    for n in range(40):
        (root / f"f{n % 4}.txt").write_text("".join(f"line {i}\n" for i in range(200 + n)))
        git(root, "add", "-A")
        git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"c{n}")
    git(root, "repack", "-adfq", "--depth=20")
    (pack,) = (root / ".git/objects/pack").glob("*.pack")
    return pack


def test_index_matches_git_byte_for_byte(tmp_path: Path) -> None:
    pack = git_repo_with_deltas(tmp_path / "repo")
    assert "delta" in git(tmp_path, "verify-pack", "-v", str(pack.with_suffix(".idx")))
    indexed = index_pack(pack.read_bytes())
    assert indexed.index_bytes() == pack.with_suffix(".idx").read_bytes()
    assert len(indexed.objects) == len(indexed.entries)  # every object unpacked, deltas too


def test_every_object_is_unpacked_with_its_content(tmp_path: Path) -> None:
    pack = git_repo_with_deltas(tmp_path / "repo")
    indexed = index_pack(pack.read_bytes())
    for sha, (type_num, data) in list(indexed.objects.items())[:50]:
        kind = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}[type_num]
        shown = subprocess.run(
            ["git", "cat-file", kind, sha.hex()], cwd=tmp_path / "repo", capture_output=True
        ).stdout
        assert shown == data


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[:-7], "checksum"),
        (lambda data: data[:100] + bytes([data[100] ^ 1]) + data[101:], "checksum"),
        (lambda data: b"JUNK" + data[4:], "not a pack"),
        (lambda data: data[:12], "not a pack"),
    ],
)
def test_damaged_packs_are_refused(tmp_path: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    pack = git_repo_with_deltas(tmp_path / "repo").read_bytes()
    with pytest.raises(PackError, match=message):
        index_pack(damage(pack))


def _pack(*entries: tuple[int, int, bytes], trailer: bytes = b"") -> bytes:
    """A pack of (type, declared size, content) entries, with a valid checksum."""
    body = b"PACK" + struct.pack(">II", 2, len(entries))
    for type_num, size, content in entries:
        header = bytearray([(type_num << 4) | (size & 0x0F)])
        size >>= 4
        while size:
            header[-1] |= 0x80
            header.append(size & 0x7F)
            size >>= 7
        body += bytes(header) + zlib.compress(content)
    body += trailer
    return body + hashlib.sha1(body).digest()


def test_a_big_incompressible_object_is_read_across_windows() -> None:
    content = os.urandom(300_000)  # stored deflate blocks: longer than the content itself
    indexed = index_pack(_pack((3, len(content), content)))
    ((sha, offset, _),) = indexed.entries
    assert indexed.objects[sha] == (3, content)
    assert offset == 12


def _truncated_but_checksummed() -> bytes:
    body = _pack((3, 11, b"hello world"), (3, 2, b"hi"))[:-20]
    return body[:-4] + hashlib.sha1(body[:-4]).digest()  # a writer that stopped mid-object


def _not_zlib() -> bytes:
    body = _pack((3, 11, b"hello world"))[:-20]
    body = body[:12] + body[12:13] + b"\xff" * (len(body) - 13)  # the header, then no zlib
    return body + hashlib.sha1(body).digest()


@pytest.mark.parametrize(
    ("pack", "message"),
    [
        (_pack((3, 5, b"hello world")), "inflates to 6 bytes, not 5"),
        (_pack((3, 11, b"hello world"), trailer=b"junk"), "4 bytes of garbage after"),
        (_pack((5, 11, b"hello world")), "unknown type 5"),
        (_truncated_but_checksummed(), "truncated|does not inflate"),
        (_not_zlib(), "does not inflate"),
    ],
)
def test_a_pack_that_lies_is_refused(pack: bytes, message: str) -> None:
    assert index_pack(_pack((3, 11, b"hello world"))).entries  # the honest one is fine
    with pytest.raises(PackError, match=message):
        index_pack(pack)


def test_a_thin_pack_is_refused(tmp_path: Path) -> None:
    git_repo_with_deltas(tmp_path / "repo")
    thin = subprocess.run(
        ["git", "pack-objects", "--thin", "--revs", "--stdout", "-q"],
        cwd=tmp_path / "repo",
        input=b"HEAD\n^HEAD~20\n",
        capture_output=True,
        check=True,
    ).stdout
    with pytest.raises(PackError, match="no base in the pack"):
        index_pack(thin)


def test_import_refuses_a_pack_under_another_name(tmp_path: Path) -> None:
    pack = git_repo_with_deltas(tmp_path / "repo").read_bytes()
    agent = memfs.init(tmp_path / "agent", name="agent")
    with pytest.raises(PackCorruptError, match="does not match its name"):
        agent.history.import_pack("pack-" + "0" * 40, pack)
    assert not list((tmp_path / "agent/.git/objects/pack").glob("*.pack"))


# -- pack_between: what a push uploads is always enough --------------------------------


# A history: (kind, path number, value) steps; kind 0 edits, 1 merges an older commit, 2 goes
# back to an older commit so that the next ones diverge.
HISTORIES = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 6), st.integers(0, 99)), min_size=3, max_size=25
)
HISTORY_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _random_history(history: History, steps: list[tuple[int, int, int]]) -> list[str]:
    """Commits with edits, merges and reverts on a few branches; every commit's sha."""
    shas: list[str] = []
    parent = history.head()
    for kind, path_n, value in steps:
        if kind == 2 and shas:  # go back to an older commit: the next ones diverge from here
            parent = shas[value % len(shas)]
            history.set_ref("refs/heads/main", parent, "test: branch off")
            continue
        if kind == 0 or len(shas) < 2:
            changes = {f"d{path_n % 3}/f{path_n}.md": (0o100644, f"v{value}\n".encode())}
            if value % 5 == 0:
                changes = {f"d{path_n % 3}/f{path_n}.md": None} | changes
            parent = history.commit(parent, changes, f"edit {len(shas)}", "t <t@t>")
        else:
            other = shas[value % len(shas)]
            if other == parent or history.is_ancestor(other, parent or other):
                continue
            tree = history.build_tree(parent, {f"merge-{len(shas)}.md": (0o100644, b"m\n")})
            parent = history.commit_tree(tree, (parent, other), "merge", "t <t@t>")
        shas.append(parent)
    return shas


@HISTORY_SETTINGS
@given(
    steps=HISTORIES,
    cut=st.integers(0, 1000),
)
def test_a_pack_holds_everything_the_other_side_lacks(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[int, int, int]], cut: int
) -> None:
    work = tmp_path_factory.mktemp("packs")
    source = memfs.init(work / "source", name="source").history
    shas = _random_history(source, steps)
    have = shas[cut % len(shas)]
    target_dir = work / "target"
    subprocess.run(["git", "init", "-q", "--bare", str(target_dir)], check=True)
    target = History(target_dir, Repo(str(target_dir)))
    first = source.pack_between([have], [])
    assert first is not None
    target.import_pack(first.name, first.pack)
    rest = source.pack_between([shas[-1]], [have])
    if rest is not None:
        target.import_pack(rest.name, rest.pack)
    git(target_dir, "update-ref", "refs/heads/main", shas[-1])
    git(target_dir, "fsck", "--strict", "--no-dangling")  # every object reachable is there
    target.close()
    source.close()


def test_an_incremental_pack_is_small(tmp_path: Path) -> None:
    history = memfs.init(tmp_path / "agent", name="agent").history
    parent = history.head()
    for n in range(30):
        parent = history.commit(
            parent, {f"d{n % 5}/f{n}.md": (0o100644, f"{n}\n".encode())}, "c", "t <t@t>"
        )
    before = history.head()
    assert before is not None
    after = history.commit(before, {"d1/new.md": (0o100644, b"new\n")}, "c", "t <t@t>")
    pack = history.pack_between([after], [before])
    assert pack is not None
    assert pack.count == 4  # the commit, the root tree, d1/ and the blob: nothing else


@HISTORY_SETTINGS
@given(
    steps=HISTORIES,
    pairs=st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 1000)), min_size=1, max_size=8),
)
def test_is_ancestor_agrees_with_git(
    tmp_path_factory: pytest.TempPathFactory,
    steps: list[tuple[int, int, int]],
    pairs: list[tuple[int, int]],
) -> None:
    root = tmp_path_factory.mktemp("walk") / "agent"
    history = memfs.init(root, name="agent").history
    shas = [history.head() or "", *_random_history(history, steps)]
    for a, b in pairs:
        ancestor, descendant = shas[a % len(shas)], shas[b % len(shas)]
        expected = (
            subprocess.run(
                ["git", "merge-base", "--is-ancestor", ancestor, descendant], cwd=root
            ).returncode
            == 0
        )
        assert history.is_ancestor(ancestor, descendant) == expected
    history.close()


# -- the push walk against git: merges whose trees revert, criss-crosses, deletes ---------


@pytest.fixture(params=["s3", "git"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty agent location: a bucket on moto S3, or a bare git repository."""
    if request.param == "s3":
        bucket: S3Bucket = request.getfixturevalue("s3")
        return bucket.url("agents/agent")
    return str(bare_repo(tmp_path / "hub.git"))


def test_a_merge_back_to_an_older_tree_still_pushes_that_trees_blobs(
    tmp_path: Path, shared_url: str
) -> None:
    """Issue 10, item 1: B's second merge has the tree of B's own first commit. Walked newest
    first, the merge listed that tree while skipping the blob its first parent had, and B's
    first commit then skipped the tree whole: the pack lacked reference/b.md's blob."""
    a, b = two_machines(tmp_path, shared_url)
    write(b.root, "reference/b.md", "from b\n")
    b.commit()
    b_first = b.history.head()
    write(a.root, "reference/a.md", "from a\n")
    a.commit()
    assert sync.push(a).ok
    assert sync.pull(b).ok
    (a.root / "reference/a.md").unlink()
    a.commit()
    assert sync.push(a).ok
    assert sync.pull(b).ok
    head = b.history.head()
    assert head != b_first and b.history.tree_of(head) == b.history.tree_of(b_first)
    assert sync.push(b).ok
    result = run_cli("clone", shared_url, str(tmp_path / "fresh"))
    assert result.exit_code == 0, result.output
    git(tmp_path / "fresh", "fsck", "--strict")
    assert (tmp_path / "fresh/reference/b.md").read_text() == "from b\n"


WALK_PATHS = ("f0.md", "d/f1.md", "d/e/f2.md", "g/f3.md")
# Steps of a history: (kind, a, b, c). kind 0: a commit on commit a that sets path b to
# value c (value 0 deletes it); 1: a merge of commits a and b whose tree is both trees
# merged, a's, b's, or the tree of any commit c (a merge that reverts to an older tree);
# 2: a commit on a whose tree is commit c's (a revert or a re-add). Few values, so trees
# and subtrees repeat often.
WALK_STEPS = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)),
    min_size=2,
    max_size=14,
)
WALK_SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _walk_history(
    repo: Repo, steps: list[tuple[int, int, int, int]], skews: list[int]
) -> list[bytes]:
    """Commits written straight into ``repo`` for ``steps``; their shas, oldest first.

    Commit times follow the steps but are skewed by ``skews`` (clocks of several machines).
    """
    store = repo.object_store

    def write_tree(files: dict[str, int]) -> bytes:
        edits: list[tuple[bytes, int | None, bytes | None]] = []
        for path, value in sorted(files.items()):
            blob = Blob.from_string(f"{path}: {value}\n".encode())
            store.add_object(blob)
            edits.append((path.encode(), 0o100644, blob.id))
        return commit_tree_changes(store, Tree(), edits)

    def write_commit(files: dict[str, int], parents: list[bytes], n: int) -> bytes:
        commit = Commit()
        commit.tree, commit.parents = write_tree(files), parents
        commit.author = commit.committer = b"t <t@t>"
        commit.author_time = commit.commit_time = 1_700_000_000 + 60 * n + skews[n % len(skews)]
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = f"c{n}\n".encode()
        store.add_object(commit)
        return commit.id

    history = [{WALK_PATHS[0]: 1}]
    shas = [write_commit(history[0], [], 0)]
    for kind, a, b, c in steps:
        n = len(shas)
        first = a % n
        if kind == 0:
            files = dict(history[first])
            path = WALK_PATHS[b % len(WALK_PATHS)]
            if c % 4 == 0:
                files.pop(path, None)
            else:
                files[path] = c % 4
            parents = [shas[first]]
        elif kind == 1:
            second = b % n
            if second == first:
                continue
            both = history[second] | history[first]  # a clean merge, first parent wins
            files = (both, history[first], history[second], history[c % n])[c % 4]
            parents = [shas[first], shas[second]]
        else:
            files, parents = history[c % n], [shas[first]]  # a revert, or a re-add
        shas.append(write_commit(files, parents, n))
        history.append(files)
    return shas


@WALK_SETTINGS
@given(
    steps=WALK_STEPS,
    skews=st.lists(st.integers(-300, 300), min_size=1, max_size=4),
    include=st.lists(st.integers(0, 99), min_size=1, max_size=2),
    exclude=st.lists(st.integers(0, 99), max_size=2),
)
@example(  # the history: B1 adds d/f1, M1 merges A1 (adds g/f3), A2 deletes g/f3,
    # M2 merges A2 back to B1's tree; pushing M2 over A2 must send d/f1's blob
    steps=[(0, 0, 1, 1), (0, 0, 3, 1), (1, 1, 2, 0), (0, 2, 3, 0), (1, 3, 4, 11)],
    skews=[0],
    include=[5],
    exclude=[4],
)
def test_a_pack_holds_what_git_would_send_and_completes_the_receiver(
    tmp_path_factory: pytest.TempPathFactory,
    steps: list[tuple[int, int, int, int]],
    skews: list[int],
    include: list[int],
    exclude: list[int],
) -> None:
    """pack_between against ``git rev-list --objects``: every object git would send is in the
    pack, and a receiver holding only the excluded side's objects is whole after importing it."""
    work = tmp_path_factory.mktemp("walk")
    source_dir, receiver_dir = work / "source.git", work / "receiver.git"
    for folder in (source_dir, receiver_dir):
        git(work, "init", "-q", "--bare", str(folder))
    source = History(source_dir, Repo(str(source_dir)))
    shas = [sha.decode() for sha in _walk_history(source.repo, steps, skews)]
    wants = sorted({shas[i % len(shas)] for i in include})
    haves = sorted({shas[i % len(shas)] for i in exclude})
    listed = subprocess.run(
        ["git", "rev-list", "--objects", "--stdin"],
        cwd=source_dir,
        input="".join(f"{sha}\n" for sha in wants) + "".join(f"^{sha}\n" for sha in haves),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    expected = {line.split(" ", 1)[0] for line in listed.splitlines()}
    pack = source.pack_between(wants, haves)
    sent = {sha.hex() for sha, _, _ in index_pack(pack.pack).entries} if pack else set()
    assert expected <= sent, f"missing from the pack: {sorted(expected - sent)}"
    # What a git remote's push sends (dulwich's walk, through History.pack_data) leaves out
    # everything the excluded side reaches, where git only leaves out the boundary's trees.
    _, objects = source.pack_data({h.encode() for h in haves}, {w.encode() for w in wants}, False)
    pushed = {unpacked.sha().hex() for unpacked in objects}
    reached = git(source_dir, "rev-list", "--objects", *haves) if haves else ""
    held = {line.split(" ", 1)[0] for line in reached.splitlines()}
    missing = expected - pushed - held
    assert not missing, f"missing from a git push: {sorted(missing)}"
    if haves:  # the receiver has the excluded side, every object of it, from git itself
        old = subprocess.run(
            ["git", "pack-objects", "--revs", "--stdout", "-q"],
            cwd=source_dir,
            input="".join(f"{sha}\n" for sha in haves).encode(),
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(
            ["git", "index-pack", "--stdin"],
            cwd=receiver_dir,
            input=old,
            check=True,
            capture_output=True,
        )
    if pack is not None:
        subprocess.run(
            ["git", "index-pack", "--stdin", "--strict"],
            cwd=receiver_dir,
            input=pack.pack,
            check=True,
            capture_output=True,
        )
    for n, sha in enumerate((*wants, *haves)):
        git(receiver_dir, "update-ref", f"refs/heads/b{n}", sha)
    git(receiver_dir, "fsck", "--strict", "--no-dangling")
    source.close()
