"""The server's agent cache (memfs.server.agents) against real buckets: freshness, writes that
meet other writers, damaged checkouts, names that are not names."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import memfs
from memfs.agent import Agent
from memfs.cloud import agent_url
from memfs.remotes.configure import add_remote
from memfs.server.agents import AgentCache, AgentNotFoundError, WriteConflictError
from memfs.sync import pull, push
from tests.conftest import S3Bucket, write
from tests.harness import fsck, git


def make_agent(tmp_path: Path, cloud: str, name: str = "alpha") -> Agent:
    """A machine's work tree of agent ``name``, pushed to ``cloud``."""
    agent = memfs.init(tmp_path / f"machine-{name}", name=name)
    write(agent.root, "system/persona.md", "---\ndescription: who\n---\nline one\nline two\n")
    write(agent.root, "reference/notes.md", "---\ndescription: notes\n---\nnotes\n")
    agent.commit(message="memory")
    add_remote(agent.history, "origin", agent_url(cloud, name))
    assert push(agent, "origin").ok
    return agent


def append(path: str, text: str) -> object:
    def change(agent: Agent) -> None:
        with open(agent.root / path, "a") as handle:
            handle.write(text)

    return change


@pytest.fixture
def cloud(tmp_path: Path) -> str:
    return (tmp_path / "cloud").as_uri()


def test_a_read_within_the_window_asks_the_bucket_nothing(tmp_path: Path, cloud: str) -> None:
    make_agent(tmp_path, cloud)
    cache = AgentCache(cloud, {}, tmp_path / "cache", fresh_s=3600)
    with cache.reading("alpha") as agent:
        assert (agent.root / "system/persona.md").exists()
    polls = cache.polls
    for _ in range(5):
        with cache.reading("alpha"):
            pass
    assert cache.polls == polls


def test_a_read_asking_for_fresh_data_asks_the_bucket(tmp_path: Path, cloud: str) -> None:
    machine = make_agent(tmp_path, cloud)
    cache = AgentCache(cloud, {}, tmp_path / "cache", fresh_s=3600)
    with cache.reading("alpha"):
        pass
    write(machine.root, "reference/notes.md", "---\ndescription: notes\n---\nremote edit\n")
    assert push(machine, "origin").ok
    with cache.reading("alpha") as agent:  # within the window: as it was
        assert agent.history.head() != machine.history.head()
    with cache.reading("alpha", fresh_s=0) as agent:
        assert agent.history.head() == machine.history.head()


def test_a_read_after_the_window_sees_another_machines_push(tmp_path: Path, cloud: str) -> None:
    machine = make_agent(tmp_path, cloud)
    cache = AgentCache(cloud, {}, tmp_path / "cache", fresh_s=0)
    with cache.reading("alpha") as agent:
        assert b"remote edit" not in (agent.root / "reference/notes.md").read_bytes()
    write(machine.root, "reference/notes.md", "---\ndescription: notes\n---\nremote edit\n")
    assert push(machine, "origin").ok
    with cache.reading("alpha") as agent:
        assert b"remote edit" in (agent.root / "reference/notes.md").read_bytes()
        assert agent.history.head() == machine.history.head()
    assert cache.pulls == 1


def test_an_unchanged_manifest_is_read_conditionally(s3: S3Bucket, tmp_path: Path) -> None:
    cloud = s3.url("cloud")
    make_agent(tmp_path, cloud)
    cache = AgentCache(cloud, {}, tmp_path / "cache", fresh_s=0)
    with cache.reading("alpha"):
        pass
    s3.server.requests.clear()
    for _ in range(3):
        with cache.reading("alpha"):
            pass
    # one conditional GET of the manifest per read, nothing else (no pack, no listing)
    assert s3.server.by_method() == {"GET": 3}, s3.server.requests
    assert all(path.endswith("/alpha/manifest.json") for _, path in s3.server.requests)


def test_a_write_is_a_commit_pushed_to_the_bucket(tmp_path: Path, cloud: str) -> None:
    machine = make_agent(tmp_path, cloud)
    cache = AgentCache(cloud, {}, tmp_path / "cache")
    cache.write("alpha", append("reference/notes.md", "from the server\n"), "server edit")
    assert pull(machine, "origin").ok
    assert b"from the server" in (machine.root / "reference/notes.md").read_bytes()
    assert machine.log(limit=1)[0].message.startswith("server edit")
    assert fsck(machine.root) == ""


def test_a_write_racing_an_edit_of_another_file_merges(tmp_path: Path, cloud: str) -> None:
    machine = make_agent(tmp_path, cloud)
    cache = AgentCache(cloud, {}, tmp_path / "cache")

    def edit_while_the_machine_pushes(agent: Agent) -> None:
        write(machine.root, "system/persona.md", "---\ndescription: who\n---\nmachine edit\n")
        assert push(machine, "origin").ok  # lands between the server's look and its push
        append("reference/notes.md", "server edit\n")(agent)

    cache.write("alpha", edit_while_the_machine_pushes, "server edit")
    assert pull(machine, "origin").ok
    assert b"machine edit" in (machine.root / "system/persona.md").read_bytes()
    assert b"server edit" in (machine.root / "reference/notes.md").read_bytes()
    assert len(git(machine.root, "rev-parse", "HEAD^@").split()) == 2  # a merge commit


def test_a_write_racing_an_edit_of_the_same_lines_is_409_and_loses_nothing(
    tmp_path: Path, cloud: str
) -> None:
    machine = make_agent(tmp_path, cloud)
    cache = AgentCache(cloud, {}, tmp_path / "cache")

    def edit_while_the_machine_pushes(agent: Agent) -> None:
        write(machine.root, "system/persona.md", "---\ndescription: who\n---\nline one\nMACHINE\n")
        assert push(machine, "origin").ok
        write(agent.root, "system/persona.md", "---\ndescription: who\n---\nSERVER\n")

    with pytest.raises(WriteConflictError, match=r"system/persona\.md"):
        cache.write("alpha", edit_while_the_machine_pushes, "server edit")
    machine_head = machine.history.head()
    with cache.reading("alpha") as agent:  # put back to the bucket's head, nothing half done
        assert agent.history.head() == machine_head
        assert agent.status().clean
        assert not list(agent.root.rglob("*conflict*"))
        assert b"MACHINE" in (agent.root / "system/persona.md").read_bytes()
    assert pull(machine, "origin").ok and machine.history.head() == machine_head


def test_a_failing_change_leaves_the_checkout_as_the_bucket_has_it(
    tmp_path: Path, cloud: str
) -> None:
    make_agent(tmp_path, cloud)
    cache = AgentCache(cloud, {}, tmp_path / "cache")

    def half_then_fail(agent: Agent) -> None:
        write(agent.root, "reference/notes.md", "half written")
        raise ValueError("the route failed midway")

    with pytest.raises(ValueError):
        cache.write("alpha", half_then_fail, "never")
    with cache.reading("alpha") as agent:
        assert agent.status().clean
        assert b"half written" not in (agent.root / "reference/notes.md").read_bytes()


def test_threads_writing_different_files_all_land(tmp_path: Path, cloud: str) -> None:
    machine = make_agent(tmp_path, cloud)
    cache = AgentCache(cloud, {}, tmp_path / "cache")
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            cache.write("alpha", append(f"reference/t{n}.md", f"thread {n}\n"), f"t{n}")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert pull(machine, "origin").ok
    assert sorted(p.name for p in (machine.root / "reference").glob("t*.md")) == [
        f"t{n}.md" for n in range(6)
    ]


def test_two_caches_sharing_a_cache_dir_see_each_others_writes(tmp_path: Path, cloud: str) -> None:
    make_agent(tmp_path, cloud)
    one = AgentCache(cloud, {}, tmp_path / "cache", fresh_s=0)
    two = AgentCache(cloud, {}, tmp_path / "cache", fresh_s=0)
    one.write("alpha", append("reference/a.md", "one\n"), "one")
    two.write("alpha", append("reference/b.md", "two\n"), "two")
    with one.reading("alpha") as agent:
        assert (agent.root / "reference/b.md").exists() and (agent.root / "reference/a.md").exists()


@pytest.mark.parametrize(
    "damage",
    [
        "garbled HEAD",
        "objects gone",
        "packs gone",
        "write stopped midway",
        "folder is a file",
        "no .git",
    ],
)
def test_a_damaged_or_unfinished_checkout_is_cloned_again(
    tmp_path: Path, cloud: str, damage: str
) -> None:
    import shutil

    machine = make_agent(tmp_path, cloud)
    cache = AgentCache(cloud, {}, tmp_path / "cache", fresh_s=0)
    with cache.reading("alpha"):
        pass
    folder = tmp_path / "cache" / "alpha"
    if damage == "garbled HEAD":
        (folder / ".git/HEAD").write_text("garbage\n")
    elif damage == "objects gone":
        shutil.rmtree(folder / ".git/objects")
    elif damage == "packs gone":  # a cleaner emptied the cache's packs: HEAD names nothing
        for pack in (folder / ".git/objects/pack").iterdir():
            pack.unlink()
    elif damage == "write stopped midway":
        write(folder, "reference/notes.md", "half an edit")
        (folder / ".git/memfs/serve-writing").write_text("1234\n")
    elif damage == "folder is a file":
        shutil.rmtree(folder)
        folder.write_text("not a checkout")
    else:
        shutil.rmtree(folder / ".git")
    with cache.reading("alpha") as agent:
        assert agent.history.head() == machine.history.head()
        assert agent.history.has_commit(machine.history.head())
        assert agent.status().clean
        assert b"half an edit" not in (agent.root / "reference/notes.md").read_bytes()


HOSTILE = [
    "..", "../alpha", "..%2falpha", "%2e%2e", "%2e%2e%2f", "%252e%252e", "/etc/passwd",
    "/alpha", "alpha/", "alpha/../alpha", "a\0b", "\\..\\alpha", "." , "", " alpha",
    "x" * 5000, "alpha\n", "~", "~root",
]  # fmt: skip


@pytest.mark.parametrize("ref", HOSTILE)
def test_resolve_never_treats_its_input_as_a_path(s3: S3Bucket, tmp_path: Path, ref: str) -> None:
    import uuid

    run = uuid.uuid4().hex[:8]  # parametrized cases may share a bucket (names are cut short)
    cloud = s3.url(f"{run}/team/inner")
    make_agent(tmp_path, cloud)
    make_agent(tmp_path / "outside", s3.url(f"{run}/team"), name="secret")
    cache = AgentCache(cloud, {}, tmp_path / "cache")
    s3.server.requests.clear()
    with pytest.raises(AgentNotFoundError):
        cache.resolve(ref)
    assert s3.server.requests == []  # refused before any request
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_an_agent_is_found_by_name_and_by_id(tmp_path: Path, cloud: str) -> None:
    machine = make_agent(tmp_path, cloud)
    cache = AgentCache(cloud, {}, tmp_path / "cache")
    assert cache.resolve("alpha") == "alpha"
    assert cache.resolve(machine.manifest.id) == "alpha"
    assert cache.resolve(machine.manifest.id) == "alpha"  # again: the id is no folder name
    with cache.reading(machine.manifest.id) as agent:
        assert agent.root.name == "alpha"
    with pytest.raises(AgentNotFoundError):
        cache.resolve("agent-00000000-0000-0000-0000-000000000000")


def test_listing_within_the_window_asks_the_bucket_nothing(s3: S3Bucket, tmp_path: Path) -> None:
    cloud = s3.url("cloud")
    machine = make_agent(tmp_path, cloud)
    cache = AgentCache(cloud, {}, tmp_path / "cache", fresh_s=3600)
    (listed,) = cache.list()
    assert (listed.name, listed.id, listed.head) == (
        "alpha",
        machine.manifest.id,
        machine.history.head(),
    )
    s3.server.requests.clear()
    assert cache.list() == [listed]
    assert s3.server.requests == []
    make_agent(tmp_path, cloud, name="beta")
    cache.fresh_s = 0
    s3.server.requests.clear()
    assert [a.name for a in cache.list()] == ["alpha", "beta"]
    # one listing, a conditional GET per manifest, beta's identity once
    assert s3.server.by_method() == {"GET": 4}, s3.server.requests
    cache.write("alpha", append("reference/notes.md", "more\n"), "more")
    assert [a.head for a in cache.list() if a.name == "alpha"] == [
        cache.remote("alpha").head("main")
    ]
