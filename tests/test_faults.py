"""Fault injection: two machines edit and sync through an S3 that fails 20% of requests.

The proxy (tests/faultproxy.py) answers 500 before and after applying a request and resets
connections. A sync may fail (a remote error, exit 7), never with an internal error or a
traceback; once the faults stop, both machines converge on one head and tree, every token any
editor wrote is in it (at its path or in a conflict copy), and every repository, including a
fresh clone, is ``git fsck --strict`` clean.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import S3Bucket
from .faultproxy import FAULT_KINDS, FaultProxy, fault_proxy
from .harness import faulty_two_machine_run


@pytest.fixture
def proxy(s3: S3Bucket) -> Iterator[FaultProxy]:
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
