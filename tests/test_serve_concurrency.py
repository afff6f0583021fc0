"""Two ``memfs serve`` processes on one moto S3 cloud, a memfs watcher on a work tree of the
same agent, git clients pushing and REST clients PATCHing blocks through both servers at once,
for a bounded run.

Every client pushes its own files and, when a push is rejected (``fetch first``: another
writer got there first), does what a user does: ``git pull --rebase``, push again. The watcher
commits and pushes its own edits meanwhile, merging what the servers let in. At the end every
commit a server accepted is reachable from the bucket's head, every edit of every writer is
in the tree, and a fresh clone through either server is ``git fsck --strict`` clean.

Each REST client PATCHes its own block (Letta's ``/v1/agents/{id}/core-memory/blocks/{label}``)
through one server, round after round; a 409 (the write met a concurrent edit it could not
merge) is retried as a client would. Its last value must be the block's body at the end.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import httpx

from memfs.cloud import agent_url
from memfs.remotes.bucket import BucketRemote
from tests.conftest import S3Bucket
from tests.harness import Machine, start_watcher, stop_watcher
from tests.serve import ServerHandle, running_server
from tests.servers import wait_for
from tests.test_serve_git import git, seed_agent

CLIENTS_PER_SERVER = 2
ROUNDS = 8  # pushes per git client: 32 through the two servers
WATCHER_EDITS = 10
PUSH_ATTEMPTS = 40
PATCHERS_PER_SERVER = 1
PATCH_ROUNDS = 8


def _push_until_accepted(clone: Path, rng: random.Random) -> tuple[str, int]:
    """Push; on a rejection pull --rebase and push again, as a user would. Returns the sha
    the server accepted and how many rejections it took."""
    for rejected in range(PUSH_ATTEMPTS):
        done = git(clone, "push", "-q", "origin", "main", check=False)
        if done.returncode == 0:
            return git(clone, "rev-parse", "HEAD").stdout.strip(), rejected
        if "fetch first" not in done.stderr and "non-fast-forward" not in done.stderr:
            raise AssertionError(f"push failed for another reason:\n{done.stderr}")
        git(clone, "pull", "-q", "--rebase", "origin", "main")
        threading.Event().wait(rng.uniform(0.0, 0.05))  # a user's pause, not synchronisation
    raise AssertionError(f"{clone.name}: still rejected after {PUSH_ATTEMPTS} attempts")


class _Client(threading.Thread):
    """One git user: ``ROUNDS`` commits of its own file, each pushed until accepted."""

    def __init__(self, clone: Path, seed: int) -> None:
        super().__init__(name=clone.name, daemon=True)
        self.clone = clone
        self.rng = random.Random(seed)
        self.accepted: list[str] = []
        self.files: dict[str, str] = {}
        self.rejections = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for round_ in range(ROUNDS):
                path = f"reference/{self.clone.name}-{round_}.md"
                text = f"---\ndescription: {self.clone.name} round {round_}\n---\n{path}\n"
                (self.clone / path).parent.mkdir(parents=True, exist_ok=True)
                (self.clone / path).write_text(text, encoding="utf-8")
                git(self.clone, "add", "--", path)
                git(self.clone, "commit", "-q", "-m", f"{self.clone.name}: round {round_}")
                sha, rejected = _push_until_accepted(self.clone, self.rng)
                self.accepted.append(sha)
                self.files[path] = text
                self.rejections += rejected
        except BaseException as error:  # reported by the test, never lost in the thread
            self.error = error


class _Patcher(threading.Thread):
    """One REST client: ``PATCH_ROUNDS`` new values of its own block through one server."""

    def __init__(self, server: ServerHandle, label: str) -> None:
        super().__init__(name=f"patcher-{label}", daemon=True)
        self.server = server
        self.label = label
        self.last: str | None = None
        self.conflicts = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        url = f"{self.server.url}/v1/agents/alpha/core-memory/blocks/{self.label}"
        try:
            with httpx.Client(headers=self.server.auth_headers(), timeout=60) as client:
                for round_ in range(PATCH_ROUNDS):
                    value = f"{self.label} value {round_}\n"
                    for _ in range(PUSH_ATTEMPTS):
                        answer = client.patch(url, json={"value": value})
                        if answer.status_code != 409:
                            break
                        self.conflicts += 1
                    assert answer.status_code == 200, (answer.status_code, answer.text)
                    assert answer.json()["value"] == value
                    self.last = value
        except BaseException as error:  # reported by the test, never lost in the thread
            self.error = error


class _WatcherEditor(threading.Thread):
    """Edits in the watched work tree while the clients push: new files, committed and
    pushed by the watcher on its own."""

    def __init__(self, root: Path) -> None:
        super().__init__(name="watcher-editor", daemon=True)
        self.root = root
        self.files: dict[str, str] = {}
        self.rng = random.Random(7)

    def run(self) -> None:
        for index in range(WATCHER_EDITS):
            path = f"reference/watched-{index}.md"
            text = f"---\ndescription: watched {index}\n---\nedit {index}\n"
            target = self.root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            self.files[path] = text
            threading.Event().wait(self.rng.uniform(0.05, 0.3))  # the edits' pace: workload


def test_two_servers_a_watcher_and_git_clients_lose_nothing(s3: S3Bucket, tmp_path: Path) -> None:
    cloud = s3.url("agents")
    seed_agent(tmp_path, cloud)
    watched = Machine.create(tmp_path, "watched")
    cloned = watched.memfs("clone", "-q", agent_url(cloud, "alpha"), str(watched.root), agent=False)
    assert cloned.returncode == 0, cloned.stderr
    start_watcher(watched)
    try:
        with (
            running_server(cloud, tmp_path) as first,
            running_server(cloud, tmp_path) as second,
        ):
            clients = _clients(tmp_path, [first, second])
            patchers = _patchers(tmp_path, [first, second])
            editor = _WatcherEditor(watched.root)
            for thread in [*clients, *patchers, editor]:
                thread.start()
            for thread in [*clients, *patchers, editor]:
                thread.join(timeout=240)
                assert not thread.is_alive(), f"{thread.name} did not finish"
            for writer in [*clients, *patchers]:
                assert writer.error is None, f"{writer.name}: {writer.error}"
            rejections = sum(client.rejections for client in clients)
            conflicts = sum(patcher.conflicts for patcher in patchers)
            print(
                f"{len(clients) * ROUNDS} pushes accepted after {rejections} rejections; {len(patchers) * PATCH_ROUNDS} PATCHes after {conflicts} 409s"
            )
            stopped = stop_watcher(watched)
            assert stopped.returncode == 0, stopped.stderr
            _check_nothing_lost(tmp_path, cloud, [first, second], clients, editor, patchers)
            for server in (first, second):
                assert "Traceback" not in server.output()
    finally:
        stop_watcher(watched)


def _clients(tmp_path: Path, servers: list[ServerHandle]) -> list[_Client]:
    clients = []
    for index in range(CLIENTS_PER_SERVER * len(servers)):
        server = servers[index % len(servers)]
        name = f"client{index}"
        git(tmp_path, "clone", "-q", server.git_url("alpha"), name)
        clients.append(_Client(tmp_path / name, seed=index))
    return clients


def _patchers(tmp_path: Path, servers: list[ServerHandle]) -> list[_Patcher]:
    """A REST client per block, each block pushed first (Letta's API edits, never creates)."""
    seeder = tmp_path / "patch-seed"
    git(tmp_path, "clone", "-q", servers[0].git_url("alpha"), seeder.name)
    patchers = []
    for index in range(PATCHERS_PER_SERVER * len(servers)):
        label = f"reference/patched{index}"
        target = seeder / f"{label}.md"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"---\ndescription: patched {index}\n---\nfirst\n", encoding="utf-8")
        patchers.append(_Patcher(servers[index % len(servers)], label))
    git(seeder, "add", "-A")
    git(seeder, "commit", "-q", "-m", "blocks for the REST clients")
    _push_until_accepted(seeder, random.Random(99))
    return patchers


def _check_nothing_lost(
    tmp_path: Path,
    cloud: str,
    servers: list[ServerHandle],
    clients: list[_Client],
    editor: _WatcherEditor,
    patchers: list[_Patcher],
) -> None:
    head = BucketRemote(agent_url(cloud, "alpha")).head("main")
    expected = {path: text for client in clients for path, text in client.files.items()}
    expected.update(editor.files)
    assert len(expected) == CLIENTS_PER_SERVER * len(servers) * ROUNDS + WATCHER_EDITS
    for index, server in enumerate(servers):
        # a server's last look at the bucket may be a freshness window old: wait for it
        wait_for(
            lambda server=server: _advertised(tmp_path, server) == head,
            timeout=30,
            what=f"server {index} to advertise the bucket's head",
        )
        fresh = tmp_path / f"fresh{index}"
        git(tmp_path, "clone", "-q", server.git_url("alpha"), fresh.name)
        git(fresh, "fsck", "--strict")
        assert git(fresh, "rev-parse", "HEAD").stdout.strip() == head
        for client in clients:
            for sha in client.accepted:
                git(fresh, "merge-base", "--is-ancestor", sha, "HEAD")  # reachable
        lost = {p for p, text in expected.items() if _read(fresh / p) != text}
        for patcher in patchers:
            text = _read(fresh / f"{patcher.label}.md") or ""
            if patcher.last is None or not text.endswith("---\n" + patcher.last):
                lost.add(f"{patcher.label}.md")
            elif "description: patched" not in text:  # the front matter kept
                lost.add(f"{patcher.label}.md (front matter)")
        assert not lost, f"edits lost: {sorted(lost)}"
    assert sum(len(client.accepted) for client in clients) == len(clients) * ROUNDS


def _advertised(tmp_path: Path, server: ServerHandle) -> str:
    listing = git(tmp_path, "ls-remote", server.git_url("alpha"), "refs/heads/main").stdout
    return listing.split()[0] if listing else ""


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None
