"""Fault injection: two machines edit and sync through an S3 that fails 20% of requests.

The proxy (tests/faultproxy.py) answers 500 before and after applying a request and resets
connections. A sync may fail (a remote error, exit 7), never with an internal error or a
traceback; once the faults stop, both machines converge on one head and tree, every token any
editor wrote is in it (at its path or in a conflict copy), and every repository, including a
fresh clone, is ``git fsck --strict`` clean.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from memfs.remotes import open_remote

from .conftest import S3Bucket
from .faultproxy import FAULT_KINDS, FaultProxy, fault_proxy
from .harness import (
    Ledger,
    Machine,
    RandomEditor,
    assert_exit_is_documented,
    committed_files,
    fsck,
    random_edits,
    setup_two_machines,
    sync_until_converged,
)
from .s3 import CREDENTIALS


@dataclass
class FaultRun:
    """What one faulty two-machine run did."""

    syncs: int = 0
    exits: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    edits: int = 0
    lost: dict[str, str] = field(default_factory=dict)
    fsck: dict[str, str] = field(default_factory=dict)


def faulty_two_machine_run(
    base: Path, proxy: FaultProxy, url: str, seed: int, rounds: int, edits_per_round: int
) -> FaultRun:
    """Two machines edit at random and sync through ``proxy`` for ``rounds``, then converge.

    Raises AssertionError on an internal error, a traceback or no convergence; returns the
    figures, with the lost tokens and fsck findings for the caller to assert on or print.
    """
    env = dict(CREDENTIALS, AWS_ENDPOINT_URL=proxy.endpoint)
    proxy.enabled = False
    a, b = setup_two_machines(base, url, env)
    ledger = Ledger()
    rng = random.Random(seed)
    editors = [RandomEditor(m.name, m.root, ledger, random.Random(rng.random())) for m in (a, b)]
    run = FaultRun()
    proxy.enabled = True
    for _ in range(rounds):
        for machine, editor in zip((a, b), editors, strict=True):
            random_edits([editor], edits_per_round)
            result = machine.memfs("sync")
            assert_exit_is_documented(result, f"machine {machine.name}: sync (faults on)")
            run.syncs += 1
            run.exits[result.returncode] += 1
    proxy.enabled = False
    run.faults = Counter(proxy.counts)
    run.requests = proxy.requests

    def remote_head() -> str | None:
        return open_remote(url).head("main")

    sync_until_converged([a, b], remote_head=remote_head)
    assert a.head() == b.head()
    assert committed_files(a.root) == committed_files(b.root)
    fresh = Machine.create(base, "fresh", env)
    cloned = fresh.memfs("clone", url, str(fresh.root), agent=False)
    assert cloned.returncode == 0, f"a fresh clone failed: {cloned.stderr}"
    run.edits = sum(ledger.edits.values())
    run.lost = ledger.lost(committed_files(fresh.root))
    run.fsck = {m.name: fsck(m.root) for m in (a, b, fresh)}
    return run


@pytest.fixture
def proxy(s3: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A fault proxy in front of the test's moto server; this process talks to moto directly."""
    with fault_proxy(s3.server.endpoint, rate=0.2, seed=1) as running:
        yield running


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [7])
def test_two_machines_through_faulty_s3_lose_nothing(
    tmp_path: Path, s3: S3Bucket, proxy: FaultProxy, seed: int
) -> None:
    proxy.random.seed(seed)
    run = faulty_two_machine_run(
        tmp_path, proxy, s3.url("agents/shared"), seed, rounds=6, edits_per_round=3
    )
    assert sum(run.faults.values()) >= 3, f"too few faults injected to test anything: {run}"
    assert run.lost == {}, f"tokens lost (seed {seed}): {run.lost}"
    assert run.fsck == {"a": "", "b": "", "fresh": ""}, run.fsck


def test_the_proxy_injects_each_kind_and_can_be_switched_off(
    s3: S3Bucket, proxy: FaultProxy
) -> None:
    """Every kind of fault reaches the client as S3 would send it; off, requests pass."""
    import boto3
    import botocore.config
    import botocore.exceptions

    client = boto3.client(
        "s3",
        endpoint_url=proxy.endpoint,
        region_name="us-east-1",
        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    proxy.rate = 1.0
    outcomes: Counter[str] = Counter()
    for i in range(12):
        try:
            client.put_object(Bucket=s3.name, Key=f"k{i}", Body=b"x")
            outcomes["ok"] += 1
        except botocore.exceptions.ClientError as error:
            outcomes[str(error.response["Error"]["Code"])] += 1
        except botocore.exceptions.BotoCoreError:
            outcomes["connection"] += 1
    assert set(proxy.counts) == set(FAULT_KINDS), proxy.counts
    assert proxy.counts.total() >= 12, "every request failed (botocore retries some by itself)"
    assert outcomes["ok"] == 0 and outcomes["InternalError"] + outcomes["connection"] == 12
    written = {o["Key"] for o in s3.client.list_objects_v2(Bucket=s3.name).get("Contents", [])}
    applied = proxy.counts["500-after"] + proxy.counts["reset-after"]
    # the '-after' faults applied the request (a retried key may be applied more than once)
    assert 0 < len(written) <= applied
    proxy.enabled = False
    client.put_object(Bucket=s3.name, Key="through", Body=b"y")
    assert client.get_object(Bucket=s3.name, Key="through")["Body"].read() == b"y"
