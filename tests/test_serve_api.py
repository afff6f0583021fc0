"""Letta's memory REST API on a whole ``memfs serve`` process over a moto S3 cloud.

The official ``letta-client`` SDK (strict response validation: a shape it cannot parse fails)
calls every route it has; what it reads and writes is checked against a fresh checkout of the
agent from the bucket. memfs's own routes and the error cases go through urllib. A PATCH racing
a memfs watcher's edit of the same file keeps both edits, or answers 409 with the current value.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from letta_client import Letta

import memfs
from memfs.cloud import agent_url
from memfs.layout import Layout
from memfs.remotes.configure import add_remote
from memfs.server.blocks import block_id
from memfs.sync import push

from .conftest import S3Bucket, write
from .serve import ServerHandle, running_server

PERSONA = "---\ndescription: Who I am\n---\nI am a gardener.\nI like roses.\n"
HUMAN = "---\ndescription: The human\nread_only: true\n---\nAda, who waters on Sundays.\n"
NOTES = "---\ndescription: Notes on plants\n---\nRoses need sun.\n"
LETTA_PERSONA = "---\ndescription: Letta persona\n---\nI help with code.\n"
V2_INDEX = "---\nname: memory\ndescription: What is where\n---\nSee persona.\n"
V2_PERSONA = "---\nname: persona\ndescription: Who I am, v2\n---\nI am v2.\n"
SKILL = "---\nname: deploy\ndescription: How to deploy\n---\nRun make deploy.\n"


def make_agent(
    root: Path, cloud: str, name: str, files: dict[str, str | bytes], letta: bool
) -> str:
    """Create agent ``name`` with ``files`` (a Letta v1 repo or memfs-native), push it to the
    cloud; its id (what the API calls it)."""
    for path, text in files.items():
        write(root, path, text)
    layout = Layout.LETTA_V1 if letta else Layout.NATIVE
    with memfs.init(root, name=name, layout=layout) as agent:
        agent.commit(message="memfs: first memory")
        add_remote(agent.history, "origin", agent_url(cloud, name))
        report = push(agent, remote="origin")
        assert report.ok, report
        return agent.manifest.id


def checkout(cloud: str, name: str, where: Path) -> dict[str, str]:
    """The agent's files in a fresh clone from the bucket."""
    with memfs.clone(agent_url(cloud, name), where) as agent:
        files = {}
        for path in agent.history.tree_of(agent.history.head()):
            files[path] = (where / path).read_text(encoding="utf-8")
        return files


class Cloud:
    """Two agents in a moto bucket and a server process over it."""

    def __init__(self, url: str, ids: dict[str, str], server: ServerHandle, tmp: Path) -> None:
        self.url = url
        self.ids = ids
        self.server = server
        self.tmp = tmp
        self.client = Letta(base_url=server.url, api_key="unused", _strict_response_validation=True)
        self._clones = 0

    def files(self, name: str) -> dict[str, str]:
        self._clones += 1
        return checkout(self.url, name, self.tmp / f"check-{name}-{self._clones}")

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """An HTTP request to the server: (status, headers, body), error answers included."""
        request = urllib.request.Request(
            self.server.url + path, data=body, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, _lower(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, _lower(error.headers), error.read()

    def json(self, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **headers} if data is not None else headers
        status, _, raw = self.call(method, path, data, sent)
        return status, json.loads(raw)


def _lower(headers: Any) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


@pytest.fixture
def cloud(s3: S3Bucket, tmp_path: Path) -> Iterator[Cloud]:
    url = s3.url("cloud")
    ids = {
        "garden": make_agent(
            tmp_path / "garden",
            url,
            "garden",
            {"system/persona.md": PERSONA, "system/human.md": HUMAN, "reference/notes.md": NOTES},
            letta=False,
        ),
        "coder": make_agent(
            tmp_path / "coder",
            url,
            "coder",
            {"system/persona.md": LETTA_PERSONA, "skills/deploy/SKILL.md": SKILL},
            letta=True,
        ),
        "v2bot": make_agent(
            tmp_path / "v2bot",
            url,
            "v2bot",
            {"MEMORY.md": V2_INDEX, "persona.md": V2_PERSONA, "notes/broken.md": b"\xff\xfe no"},
            letta=True,
        ),
    }
    with running_server(url, tmp_path) as server:
        yield Cloud(url, ids, server, tmp_path)
    assert "Traceback" not in server.output()


@pytest.mark.timeout(180)
def test_the_sdk_reads_health_agents_and_blocks_as_the_bucket_holds_them(cloud: Cloud) -> None:
    client = cloud.client
    health = client.health()
    assert health.status == "ok" and health.version

    agents = list(client.agents.list())
    assert [a.name for a in agents] == ["coder", "garden", "v2bot"]
    assert {a.name: a.id for a in agents} == cloud.ids
    assert all(a.blocks == [] for a in agents)  # Letta includes none unless asked
    assert [a.name for a in client.agents.list(name="garden")] == ["garden"]
    first = client.agents.list(limit=1)
    assert [a.name for a in first.items] == ["coder"]
    assert [a.name for a in client.agents.list(after=cloud.ids["coder"])] == ["garden", "v2bot"]
    desc = client.agents.list(order="desc", limit=2)
    assert [a.name for a in desc.items] == ["v2bot", "garden"]

    garden = client.agents.retrieve(cloud.ids["garden"], include=["agent.blocks"])
    assert garden.name == "garden" and garden.memory.git_enabled
    files = cloud.files("garden")
    by_label = {b.label: b for b in garden.blocks}
    assert set(by_label) == {"system/persona", "system/human", "reference/notes"}
    assert by_label["system/persona"].value == files["system/persona.md"].split("---\n", 2)[2]
    assert by_label["system/human"].read_only is True
    assert by_label["reference/notes"].description == "Notes on plants"

    listed = list(client.agents.blocks.list(cloud.ids["garden"]))
    assert sorted(b.label for b in listed) == sorted(by_label)
    persona = client.agents.blocks.retrieve("system/persona", agent_id="garden")  # by name too
    assert persona.value == "I am a gardener.\nI like roses.\n"
    assert persona.description == "Who I am"
    assert persona.id == block_id(cloud.ids["garden"], "system/persona")
    same = client.blocks.retrieve(persona.id)
    assert (same.label, same.value) == ("system/persona", persona.value)

    skill = client.agents.blocks.retrieve("skills/deploy", agent_id=cloud.ids["coder"])
    assert skill.value == "Run make deploy.\n" and skill.description == "How to deploy"

    # a Letta v2 repo: root files are blocks named without a folder; a file memfs cannot read
    # is left out of the list (never failing the agent) and answered 422 on its own
    v2 = {b.label: b for b in client.agents.blocks.list("v2bot")}
    assert set(v2) == {"MEMORY", "persona"}
    assert (v2["persona"].value, v2["persona"].description) == ("I am v2.\n", "Who I am, v2")
    status, answer = cloud.json("GET", "/v1/agents/v2bot/core-memory/blocks/notes/broken")
    assert status == 422 and answer["detail"].startswith("notes/broken.md:1: not valid UTF-8")

    # a block id is found by a server that never listed it (no state: the id is a hash)
    with running_server(cloud.url, cloud.tmp / "second") as second:
        other = Letta(base_url=second.url, api_key="unused", _strict_response_validation=True)
        again = other.blocks.retrieve(persona.id)
        assert (again.label, again.value) == ("system/persona", persona.value)


@pytest.mark.timeout(180)
def test_sdk_patches_are_commits_pushed_to_the_bucket(cloud: Cloud) -> None:
    client, garden = cloud.client, cloud.ids["garden"]
    updated = client.agents.blocks.update(
        "system/persona", agent_id=garden, value="I am a gardener.\nI like tulips.\n"
    )
    assert updated.value == "I am a gardener.\nI like tulips.\n"
    files = cloud.files("garden")
    assert files["system/persona.md"] == (
        "---\ndescription: Who I am\n---\nI am a gardener.\nI like tulips.\n"
    )

    notes = client.agents.blocks.retrieve("reference/notes", agent_id=garden)
    client.blocks.update(notes.id, description="Plant care", value="Water daily.\n")
    files = cloud.files("garden")
    assert files["reference/notes.md"] == "---\ndescription: Plant care\n---\nWater daily.\n"
    limited = client.agents.blocks.update("reference/notes", agent_id=garden, limit=500)
    assert limited.limit == 500 and notes.limit == 100_000  # Letta's default when none is set
    assert "\nlimit: 500\n" in cloud.files("garden")["reference/notes.md"]

    coder = cloud.ids["coder"]
    client.agents.blocks.update("system/persona", agent_id=coder, value="I review code.\n")
    assert cloud.files("coder")["system/persona.md"] == (
        "---\ndescription: Letta persona\n---\nI review code.\n"
    )
    _, history = cloud.json("GET", f"/v1/agents/{garden}/history?path=system/persona.md")
    assert history[0]["summary"] == "memfs: update block system/persona (REST API)"
    assert history[0]["origin"] == "server"
    assert len(history) == 2


@pytest.mark.timeout(180)
def test_context_history_and_diff(cloud: Cloud) -> None:
    garden = cloud.ids["garden"]
    status, headers, body = cloud.call("GET", f"/v1/agents/{garden}/context")
    assert status == 200 and headers["x-memfs-problems"] == "0"
    text = body.decode()
    assert "I am a gardener." in text and "Ada, who waters on Sundays." in text
    status, context = cloud.json("GET", "/v1/agents/garden/context?format=json")
    assert status == 200
    assert [b["label"] for b in context["blocks"]] == ["system/human", "system/persona"]
    status, _, plain = cloud.call("GET", "/v1/agents/garden/context?format=text")
    assert status == 200 and b"<memory_blocks>" in plain

    cloud.client.agents.blocks.update("reference/notes", agent_id=garden, value="Prune.\n")
    status, history = cloud.json("GET", f"/v1/agents/{garden}/history")
    assert status == 200 and len(history) == 2
    status, diff = cloud.json("GET", f"/v1/agents/{garden}/diff?to={history[0]['sha']}")
    assert status == 200 and diff["from"] == history[1]["sha"]
    assert "-Roses need sun.\n+Prune.\n" in diff["diff"]
    status, one = cloud.json("GET", f"/v1/agents/{garden}/diff?from=HEAD~1&path=system/persona.md")
    assert status == 200 and one["diff"] == ""


@pytest.mark.timeout(180)
def test_read_only_blocks_and_letta_rules_refuse_before_writing(cloud: Cloud) -> None:
    garden, coder = cloud.ids["garden"], cloud.ids["coder"]
    status, body = cloud.json(
        "PATCH", f"/v1/agents/{garden}/core-memory/blocks/system/human", {"value": "Bob"}
    )
    assert (status, body["detail"]) == (403, "block 'system/human' is read-only")
    status, body = cloud.json(
        "PATCH", f"/v1/agents/{coder}/core-memory/blocks/system/persona", {"read_only": True}
    )
    assert status == 403 and "read_only" in body["detail"]
    status, body = cloud.json(
        "PATCH", f"/v1/agents/{coder}/core-memory/blocks/system/persona", {"tags": ["a"]}
    )
    assert status == 400 and body["detail"].startswith("memfs does not store 'tags'")
    status, body = cloud.json(
        "PATCH", f"/v1/agents/{coder}/core-memory/blocks/system/persona", {"limit": 50}
    )
    assert status == 400 and "keeps no 'limit'" in body["detail"]
    assert cloud.files("garden")["system/human.md"] == HUMAN
    assert cloud.files("coder")["system/persona.md"] == LETTA_PERSONA
    # nothing was left half-done in the server's checkout: the next edit goes through
    status, body = cloud.json(
        "PATCH", f"/v1/agents/{coder}/core-memory/blocks/system/persona", {"value": "Hi.\n"}
    )
    assert status == 200 and body["value"] == "Hi.\n"
    assert cloud.files("coder")["system/persona.md"].endswith("---\nHi.\n")


BAD_BODIES = [
    (b"{not json", "body: not valid JSON"),
    (b'{"value": 3}', "body.value: Input should be a valid string"),
    (b'{"valeu": "x"}', "body.valeu: unknown field (a block update has value, description"),
    (b'{"limit": "ten"}', "body.limit: Input should be a valid integer"),
    (b"[1, 2]", "body: Input should be an object"),
]


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("body", "detail"), BAD_BODIES)
def test_bad_bodies_get_422_with_one_clear_line(cloud: Cloud, body: bytes, detail: str) -> None:
    path = f"/v1/agents/{cloud.ids['garden']}/core-memory/blocks/reference/notes"
    status, _, raw = cloud.call("PATCH", path, body, {"Content-Type": "application/json"})
    answer = json.loads(raw)
    assert status == 422, answer
    assert answer["detail"].startswith(detail), answer["detail"]
    assert "\n" not in answer["detail"]
    assert answer["errors"][0]["loc"][0] == "body"


@pytest.mark.timeout(180)
def test_unknown_agents_blocks_revisions_and_escaping_paths(cloud: Cloud) -> None:
    garden = cloud.ids["garden"]
    cases = [
        ("/v1/agents/nobody", 404),
        ("/v1/agents/nobody/core-memory/blocks", 404),
        (f"/v1/agents/{garden}/core-memory/blocks/system/nobody", 404),
        (f"/v1/agents/{garden}/core-memory/blocks/..%2F..%2Fcoder%2Fsystem%2Fpersona", 404),
        (f"/v1/agents/{garden}/core-memory/blocks/%2e%2e/agent", 404),
        ("/v1/agents/..%2Fgarden/core-memory/blocks", 404),
        ("/v1/blocks/block-00000000-0000-0000-0000-000000000000", 404),
        (f"/v1/agents/{garden}/diff?from=nosuchrev", 404),
        (f"/v1/agents/{garden}/history?path=../coder/system/persona.md", 400),
        (f"/v1/agents/{garden}/history?path=/etc/passwd", 400),
        (f"/v1/agents/{garden}/history?limit=zero", 422),
        (f"/v1/agents/{garden}/context?format=yaml", 422),
        ("/v1/agents?order=sideways", 422),
    ]
    # a body declared over 16 MiB is refused before a byte of it is read
    import http.client

    host, port = cloud.server.url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("PATCH", f"/v1/agents/{garden}/core-memory/blocks/reference/notes")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(17 * 1024 * 1024))
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 413
    assert json.loads(answer.read())["detail"] == "body over 16777216 bytes"
    connection.close()
    for path, expected in cases:
        status, _, raw = cloud.call("GET", path)
        assert status == expected, (path, status, raw)
        if not path.startswith("/v1/agents/..%2F"):  # that one matches no route at all
            assert set(json.loads(raw)) >= {"detail"}, (path, raw)


@pytest.mark.timeout(180)
def test_if_match_merges_a_stale_edit_or_answers_409_with_the_current_value(cloud: Cloud) -> None:
    garden = cloud.ids["garden"]
    path = f"/v1/agents/{garden}/core-memory/blocks/system/persona"
    status, headers, raw = cloud.call("GET", path)
    etag, read = headers["etag"], json.loads(raw)["value"]
    # someone else changes the first line; our edit of the last line is merged with it
    status, _ = cloud.json("PATCH", path, {"value": "I am a gardener!\nI like roses.\n"})
    assert status == 200
    ours = read + "I like lilies too.\n"
    status, body = cloud.json("PATCH", path, {"value": ours}, **{"If-Match": etag})
    assert status == 200, body
    assert body["value"] == "I am a gardener!\nI like roses.\nI like lilies too.\n"
    # an edit of the same line as a newer one: 409, the current value, nothing written
    status, body = cloud.json("PATCH", path, {"value": "I am a baker.\n" + read.split("\n", 1)[1]},
                              **{"If-Match": etag})  # fmt: skip
    assert status == 409, body
    merged = "I am a gardener!\nI like roses.\nI like lilies too.\n"
    assert body["value"] == merged and body["etag"]
    assert cloud.files("garden")["system/persona.md"].endswith("---\n" + merged)


@pytest.mark.timeout(240)
def test_patches_racing_a_watchers_edits_of_the_same_file_lose_neither(
    cloud: Cloud, s3: S3Bucket
) -> None:
    """A watcher appends lines to reference/notes.md on its work tree while the API inserts
    lines at its top (GET, then PATCH with If-Match), both at once. Every PATCH answers 200
    (merged) or 409 with the current value; at the end every watcher line and every line a
    200 answered for is in the bucket, and a fresh clone is fsck clean."""
    import random
    import threading
    import time

    from .harness import Machine, fsck, start_watcher, stop_watcher
    from .s3 import CREDENTIALS
    from .servers import wait_for

    garden = cloud.ids["garden"]
    url = agent_url(cloud.url, "garden")
    machine = Machine.create(cloud.tmp, "w", dict(CREDENTIALS, AWS_ENDPOINT_URL=s3.server.endpoint))
    done = machine.memfs("clone", url, str(machine.root), agent=False)
    assert done.returncode == 0, done.stderr
    start_watcher(machine)
    path = f"/v1/agents/{garden}/core-memory/blocks/reference/notes"
    watcher_lines, api_lines, answers = [], [], []
    rng = random.Random(13)

    def watcher_edits() -> None:
        for i in range(8):
            line = f"watcher line {i}\n"
            with open(machine.root / "reference/notes.md", "a", encoding="utf-8") as file:
                file.write(line)
            watcher_lines.append(line)
            time.sleep(rng.uniform(0.1, 0.6))

    def api_edits() -> None:
        for i in range(8):
            status, headers, raw = cloud.call("GET", path)
            assert status == 200, raw
            value = json.loads(raw)["value"]
            line = f"api line {i}\n"
            time.sleep(rng.uniform(0.0, 0.5))  # the watcher may push in between
            status, body = cloud.json("PATCH", path, {"value": line + value},
                                      **{"If-Match": headers["etag"]})  # fmt: skip
            answers.append(status)
            assert status in (200, 409), body
            if status == 200:
                api_lines.append(line)
            else:
                assert "value" in body and body["detail"]

    threads = [threading.Thread(target=watcher_edits), threading.Thread(target=api_edits)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=150)
    stopped = stop_watcher(machine)
    assert stopped.returncode == 0, stopped.stderr
    assert api_lines, f"no PATCH landed: {answers}"

    def everything_landed() -> bool:
        files = cloud.files("garden")
        text = "".join(v for p, v in files.items() if p.startswith("reference/notes"))
        return all(line in text for line in watcher_lines + api_lines)

    wait_for(everything_landed, timeout=60, what="every edit in the bucket")
    fresh = cloud.tmp / "fsck-clone"
    checkout(cloud.url, "garden", fresh)
    assert fsck(fresh) == ""
