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
from .harness import (
    Ledger,
    assert_exit_is_documented,
    faulty_two_machine_run,
    setup_two_machines,
    write_tokens,
)
from .s3 import CREDENTIALS


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
        tmp_path, proxy, s3.url(f"agents/{tmp_path.name}"), seed, rounds=6, edits_per_round=3
    )
    assert sum(run.faults.values()) >= 3, f"too few faults injected to test anything: {run}"
    assert run.lost == {}, f"tokens lost (seed {seed}): {run.lost}"
    assert set(run.exits) <= {0, 7}, f"a sync failed other than as a remote error: {run.errors}"
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
        # one attempt, no retry: botocore's "max_attempts" counts retries (1 = one retry
        # after a ~0.5 s backoff, 6 s of sleeping over the 12 requests)
        config=botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}),
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


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_an_s3_error_that_outlives_the_retries_is_a_remote_error(
    tmp_path: Path, s3: S3Bucket, proxy: FaultProxy, kind: str
) -> None:
    """Every request fails: sync ends as a remote error (exit 7) naming the remote.

    Found by stress/faults.py (seed 1): a 500 that outlived s3fs's retries ended a sync as
    'memfs: We encountered an internal error. Please try again.', exit 1, no remote named.
    """
    env = dict(CREDENTIALS, AWS_ENDPOINT_URL=proxy.endpoint)
    proxy.enabled = False
    a, _ = setup_two_machines(tmp_path, s3.url(f"agents/{tmp_path.name}"), env)
    write_tokens(a, Ledger(), ["one.md"])
    proxy.enabled, proxy.rate, proxy.kinds = True, 1.0, (kind,)
    result = a.memfs("sync")
    assert_exit_is_documented(result, f"sync with every request failing ({kind})")
    assert result.returncode == 7, f"{kind}: exit {result.returncode}: {result.stderr.strip()}"
    named = "origin" in result.stderr or "s3://" in result.stderr
    assert named, f"{kind}: the remote is not named: {result.stderr.strip()}"
