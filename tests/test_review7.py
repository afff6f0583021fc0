"""Outside review of issue 14's secrets (session 7): a held file's value kept out of every
context rendering, a value split across lines kept out of commits, a killed `secret set`
never leaving a change that no sync sends. Whole ``memfs`` processes where a user meets it."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import memfs

from .conftest import memfs_process, write
from .harness import fresh_python
from .secretsfix import agent_with_secrets

VALUE = "sk-test-4c1d9e0f7a2b5c8d"


def test_a_held_file_s_value_is_masked_in_every_context_rendering(tmp_path: Path) -> None:
    root = agent_with_secrets(tmp_path, {"API_KEY": VALUE})
    write(root, "system/held.md", f"---\ndescription: k {VALUE}\n---\nthe key is {VALUE} ok\n")
    done = memfs_process("-C", str(root), "commit")
    assert VALUE not in done.stdout + done.stderr
    assert (root / "system/held.md").exists()  # held: on disk, out of the commit
    for form in ([], ["--format", "json"], ["--format", "letta"]):
        shown = memfs_process("-C", str(root), "context", *form)
        assert shown.returncode == 0, shown.stderr
        assert VALUE not in shown.stdout + shown.stderr, form
        assert "API_KEY=<REDACTED>" in shown.stdout, form
    parsed = json.loads(memfs_process("-C", str(root), "context", "--format", "json").stdout)
    assert parsed["secrets"] == ["API_KEY"]


def test_a_value_split_across_lines_is_kept_out_of_commits(tmp_path: Path) -> None:
    root = agent_with_secrets(tmp_path, {"API_KEY": VALUE})
    wrapped = f"---\ndescription: k\n---\nintro\nthe key is {VALUE[:10]}\n    {VALUE[10:]} ok\n"
    write(root, "system/wrapped.md", wrapped)
    write(root, "system/fine.md", "---\ndescription: fine\n---\nuse $API_KEY here\n")
    done = memfs_process("-C", str(root), "commit")
    assert VALUE[:10] not in done.stdout + done.stderr
    with memfs.open(root) as agent:
        tree = agent.history.tree_of(agent.history.head())
    assert "system/fine.md" in tree and "system/wrapped.md" not in tree
    assert (root / "system/wrapped.md").read_text() == wrapped  # kept on disk as written
    status = json.loads(memfs_process("-C", str(root), "status", "--json").stdout)
    assert [(p["path"], p["line"]) for p in status["held"]] == [("system/wrapped.md", 5)]
    (root / "system/wrapped.md").unlink()
    write(root, "system/fine.md", "---\ndescription: fine\n---\nchanged\n")
    message = f"rotate to {VALUE[:12]}\n{VALUE[12:]}"
    done = memfs_process("-C", str(root), "commit", "-m", message)
    assert done.returncode == 1 and "secret API_KEY" in done.stderr


def test_a_secret_set_killed_midway_is_sent_by_the_next_sync_or_not_set(tmp_path: Path) -> None:
    root = agent_with_secrets(tmp_path, {"API_KEY": VALUE})
    other = "gh-token-0123456789abcdef"
    env = {**os.environ, "MEMFS_CRASH_AT": "secrets.write"}
    killed = subprocess.run(
        [sys.executable, "-m", "memfs", "-C", str(root), "secret", "set", "GH_TOKEN"],
        input=other,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    listed = json.loads(memfs_process("-C", str(root), "secret", "list", "--json").stdout)
    rows = {row["name"]: row["pending"] for row in listed["secrets"]}
    assert rows.get("API_KEY") is False
    assert rows.get("GH_TOKEN") is True  # queued before shown: shown as set, waiting to be sent
    assert memfs_process("-C", str(root), "sync").returncode == 0
    with memfs.open(root) as agent:
        from memfs.keys import agent_keys
        from memfs.secrets.sharing import _open_bucket, _read_remote_doc, secrets_remote

        bucket = _open_bucket(agent, secrets_remote(agent))
        doc = _read_remote_doc(bucket, agent_keys(bucket.raw), {})
    assert doc.secrets["GH_TOKEN"].value.reveal() == other  # in the store, for every machine


def test_trust_rollback_accepts_a_secrets_blob_restored_on_purpose(tmp_path: Path) -> None:
    root = agent_with_secrets(tmp_path, {"API_KEY": VALUE})
    manifest = tmp_path / "cloud" / "keeper" / "manifest.json"
    backup = manifest.read_bytes()
    subprocess.run(
        [sys.executable, "-m", "memfs", "-C", str(root), "secret", "set", "OTHER"],
        input="other-value-123456",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert memfs_process("-C", str(root), "sync").returncode == 0
    restored = json.loads(manifest.read_text())
    restored["secrets"] = json.loads(backup)["secrets"]  # the store restored from a backup
    manifest.write_text(json.dumps(restored))
    done = memfs_process("-C", str(root), "pull")
    assert done.returncode == 10 and "older copy" in done.stderr, done.stderr
    assert "memfs key trust-rollback origin" in done.stderr  # the way out is named
    assert memfs_process("-C", str(root), "key", "trust-rollback", "origin").returncode == 0
    done = memfs_process("-C", str(root), "pull")
    assert done.returncode == 0, done.stderr  # memory syncs again
    listed = json.loads(memfs_process("-C", str(root), "secret", "list", "--json").stdout)
    assert [row["name"] for row in listed["secrets"]] == ["API_KEY"]  # the restored state


def test_a_file_named_with_a_value_is_kept_out_of_the_tree_and_the_message(
    tmp_path: Path,
) -> None:
    root = agent_with_secrets(tmp_path, {"API_KEY": VALUE})
    write(root, f"reference/{VALUE}.md", "---\ndescription: k\n---\nhello\n")
    write(root, "reference/fine.md", "---\ndescription: fine\n---\nhello\n")
    done = memfs_process("-C", str(root), "commit")
    assert done.returncode == 1 and "secret API_KEY in its name" in done.stderr, done.stderr
    assert memfs_process("-C", str(root), "push").returncode == 0
    log = subprocess.run(
        ["git", "log", "--format=%B", "--name-only"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "reference/fine.md" in log and VALUE not in log
    assert (root / f"reference/{VALUE}.md").exists()


def test_a_damaged_local_secrets_copy_is_named_with_the_way_out(tmp_path: Path) -> None:
    root = agent_with_secrets(tmp_path, {"API_KEY": VALUE})
    cache = root / ".git" / "memfs" / "secrets.enc"
    damaged = bytearray(cache.read_bytes())
    damaged[-3] ^= 1
    cache.write_bytes(bytes(damaged))
    write(root, "system/fine.md", "---\ndescription: fine\n---\nhello\n")
    done = memfs_process("-C", str(root), "status")
    assert done.returncode == 9, done.stderr
    assert "secrets.enc (this machine's copy of the secrets) is damaged" in done.stderr
    assert "in the store" not in done.stderr and "Traceback" not in done.stderr
    cache.unlink()  # the way out it names
    assert memfs_process("-C", str(root), "fetch").returncode == 0
    listed = json.loads(memfs_process("-C", str(root), "secret", "list", "--json").stdout)
    assert [row["name"] for row in listed["secrets"]] == ["API_KEY"]
    write(root, "system/held.md", f"---\ndescription: k\n---\n{VALUE}\n")
    assert memfs_process("-C", str(root), "commit").returncode == 1  # guarded again


def test_a_removed_machine_cannot_plant_secrets_under_its_old_epoch(tmp_path: Path) -> None:
    """On a plain cloud anyone with the store's credentials can write the manifest: C, removed
    (it keeps epoch 1's key), seals a secrets blob under epoch 1 with a high generation, to put
    its values (a PATH, an LD_PRELOAD) into A's 'memfs run'. A holds epoch 1 too (old objects
    open with it), but a blob sealed under an epoch before the keyring's current one is
    refused (exit 10) and A's secrets stay as they were."""
    from memfs.crypto.envelope import Role, seal
    from memfs.keys import storage_for_url

    from .test_keys import a_machine_removed, cached_keys, ok

    url = "memfs::" + (tmp_path / "cloud" / "agent").as_uri()
    a, c = a_machine_removed(tmp_path, url)
    old_key = cached_keys(c)[1]
    storage = storage_for_url(url)
    repo = bytes.fromhex(json.loads(storage.get("keys.json")[0])["repo_id"])  # type: ignore[index]
    planted = {"API_TOKEN": "planted-by-c-0123456", "LD_PRELOAD": "/tmp/evil.so"}
    doc = {
        "format": 1,
        "generation": 1000,
        "prev": "",
        "secrets": {
            n: {"value": v, "set_at": "2026-01-01T00:00:00Z", "set_by": "c"}
            for n, v in planted.items()
        },
    }
    blob = seal(old_key, 1, Role.SECRETS, repo, "manifest.json#secrets", json.dumps(doc).encode())
    got = storage.get("manifest.json")
    assert got is not None
    manifest = json.loads(got[0])
    manifest["secrets"] = base64.b64encode(blob).decode()
    (tmp_path / "cloud" / "agent" / "manifest.json").write_text(json.dumps(manifest))
    done = subprocess.run(
        [sys.executable, "-m", "memfs", "-C", str(a.root), "sync"],
        env=a.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 10, done.stdout + done.stderr
    assert "epoch 1" in done.stderr and "Traceback" not in done.stderr
    listed = json.loads(ok(a, "secret", "list", "--json"))["secrets"]
    assert [row["name"] for row in listed] == ["API_TOKEN"]
    shown = ok(a, "run", "--", sys.executable, "-c", "import os; print(os.environ['API_TOKEN'])")
    assert "planted" not in shown


def test_a_key_rm_killed_before_its_re_seal_is_finished_by_key_rotate(tmp_path: Path) -> None:
    """`memfs key rm` killed after keys.json moved to epoch 2, before the secrets blob was
    sealed again: every machine is told so (exit 10, naming 'memfs key rotate'), and that
    command finishes the job; nothing is lost."""
    from .test_keys import join, machine, ok, plain_cloud_with_a_secret, run

    url = "memfs::" + (tmp_path / "cloud" / "agent").as_uri()
    a = plain_cloud_with_a_secret(tmp_path, url)
    b, c = machine(tmp_path, "b"), machine(tmp_path, "c")
    join(a, b, url)
    join(a, c, url)
    killed = run(a, "key", "rm", "c", MEMFS_CRASH_AT="key.rotated")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    ok(b, "sync")  # the blob b holds did not change: nothing to say yet
    done = run(a, "secret", "set", "LATER", stdin="value-two-0123456789")
    assert done.returncode == 10 and "memfs key rotate" in done.stderr, done.stderr
    assert "epoch 3" in ok(a, "key", "rotate")
    ok(a, "sync")  # the change kept pending is sent
    ok(b, "sync")
    listed = json.loads(ok(b, "secret", "list", "--json"))["secrets"]
    assert [row["name"] for row in listed] == ["API_TOKEN", "LATER"]
    shown = ok(
        b, "run", "--", sys.executable, "-c", "import os; print(len(os.environ['API_TOKEN']))"
    )
    assert shown.strip() == "20"


MAX_RSS_GROWTH = """
import resource
from memfs.secrets.scrub import Scrubber
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
Scrubber({"KUBECONFIG_DATA": VALUE})
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_a_long_secret_is_masked_without_quadratic_memory(tmp_path: Path) -> None:
    """A 12 KB value (a PEM chain, a kubeconfig; values may reach 64 KB): the scrubber once
    kept every proper prefix of every form (len**2 bytes: ~1 GB here, ~30 GB at 64 KB)."""
    from memfs.secrets.scrub import Scrubber

    value = ("k" + base64.b64encode(os.urandom(9000)).decode())[:12000]
    # the peak resident size a fresh process gains building the scrubber (tracemalloc saw the
    # same ~10 MiB, but tracing every allocation made the build take seconds, not 0.1 s)
    grown_kib = fresh_python(MAX_RSS_GROWTH.replace("VALUE", repr(value)))
    assert int(grown_kib) < 64 * 2**10, f"{int(grown_kib) / 2**10:.0f} MiB"
    scrubber = Scrubber({"KUBECONFIG_DATA": value})
    data = (b"x" * 50 + value.encode() + b"\n") * 2
    out = b"".join(scrubber.feed(data[i : i + 7]) for i in range(0, len(data), 7))
    out += scrubber.close()
    assert out == (b"x" * 50 + b"KUBECONFIG_DATA=<REDACTED>\n") * 2
    root = agent_with_secrets(tmp_path, {"KUBECONFIG_DATA": value})
    shown = memfs_process(
        "-C",
        str(root),
        "run",
        "--",
        sys.executable,
        "-c",
        "import os; print(os.environ['KUBECONFIG_DATA'])",
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "KUBECONFIG_DATA=<REDACTED>\n"


def test_secrets_without_their_facts_file_fail_closed(tmp_path: Path) -> None:
    """.git/memfs/secrets.json lost while secrets.enc is there: the commit guard must not run
    without the values (it failed open: a file holding a value was committed)."""
    root = agent_with_secrets(tmp_path, {"API_KEY": VALUE})
    (root / ".git" / "memfs" / "secrets.json").unlink()
    write(root, "system/held.md", f"---\ndescription: k\n---\n{VALUE}\n")
    done = memfs_process("-C", str(root), "commit")
    assert done.returncode == 9, done.stderr
    assert "secrets.enc (this machine's copy of the secrets) is damaged" in done.stderr
    shown = memfs_process("-C", str(root), "log").stdout
    assert "held.md" not in shown
    (root / ".git" / "memfs" / "secrets.enc").unlink()  # the way out it names
    assert memfs_process("-C", str(root), "fetch").returncode == 0
    assert memfs_process("-C", str(root), "commit").returncode == 1  # guarded again
