"""What presence costs (issue 14 "Environments"): requests per environment per hour, idle and
active, with and without presence, and what 1,000 idle environments cost a month.

    python benchmarks/bench_presence.py [--edit-every-s 60] [--seed 12]

One watched agent on moto's S3 (tests/s3meter.py counts every request), driven over one hour
of an injected clock: the watcher's real poll schedule (memfs/pollschedule.py, a conditional
manifest GET per poll, made against moto), real pushes for the edits (active: one edit every
--edit-every-s seconds, each making the schedule hot), and the real ``Heartbeat``
(memfs/presence.py: on start, coalesced after each sync, every 300 s idle, stopped at the end)
writing to moto. Presence's requests are the ones under ``envs/``; "without" is the same
hour with those taken out. Then what ``memfs envs`` reads for three environments.
Target (issue 12): an idle watched agent <= 120 requests an hour.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3

import memfs
from memfs import sync
from memfs.envs import environments
from memfs.pollschedule import PollSchedule, ScheduleSettings
from memfs.presence import DEFAULT_HEARTBEAT_S, Heartbeat
from memfs.remotes.bucket import BucketRemote
from memfs.remotes.configure import add_remote
from memfs.remotes.storage import Unchanged
from tests.s3 import CREDENTIALS
from tests.s3meter import MeteredServer, metered_moto_s3

GET_PER_1000 = 0.0004  # S3 Standard list prices, us-east-1 (as bench_watch.py)
PUT_LIST_PER_1000 = 0.005
HOURS_PER_MONTH = 720
HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def one_hour(
    server: MeteredServer, bucket: str, folder: Path, edit_every_s: float | None, seed: int
) -> dict[str, int]:
    """Requests of one watched agent over an hour of the injected clock, by kind."""
    name = "active" if edit_every_s else "idle"
    agent = memfs.init(folder / name, name=name)
    add_remote(agent.history, "origin", f"s3://{bucket}/{name}")
    assert sync.push(agent).ok
    clock = Clock()
    schedule = PollSchedule(ScheduleSettings(), clock=clock, rand=random.Random(seed).random)
    remote = BucketRemote(f"s3://{bucket}/{name}")
    _, etag = remote.read_manifest()
    heartbeat = Heartbeat(agent, "watch", "bench", clock=clock)
    if not edit_every_s:  # idle: long past the last activity, the schedule already cold
        clock.now = ScheduleSettings().hot_for_s + 600
        schedule.polled(clock.now)
    start = clock.now
    before = len(server.served)
    heartbeat.beat(force=True)
    next_edit = start + edit_every_s if edit_every_s else float("inf")
    edits = polls = 0
    while True:
        due = heartbeat.next_due() or float("inf")
        clock.now = min(schedule.due, due, next_edit)
        if clock.now >= start + HOUR:
            break
        if clock.now == next_edit:
            edits += 1
            (agent.root / "notes.md").write_text(f"---\ndescription: d\n---\nedit {edits}\n")
            report = sync.push(agent)
            schedule.activity(clock.now)
            heartbeat.beat(report)
            next_edit += edit_every_s  # type: ignore[operator]
        elif clock.now == schedule.due:
            polls += 1
            got = remote.poll(etag)
            if not isinstance(got, Unchanged):
                etag = got[1]
            schedule.polled(clock.now)
        else:
            heartbeat.beat()
    heartbeat.stop()
    window = server.served[before:]
    presence = sum(1 for s in window if "/envs/" in s.path)
    return {
        "polls": polls,
        "pushes": edits,
        "other": len(window) - presence - polls,
        "presence": presence,
        "presence_puts": sum(1 for s in window if "/envs/" in s.path and s.method == "PUT"),
        "total": len(window),
    }


def envs_cost(server: MeteredServer, bucket: str, folder: Path) -> dict[str, int]:
    """What ``memfs envs`` reads for an agent with three environments."""
    agent = memfs.init(folder / "listed", name="listed")
    add_remote(agent.history, "origin", f"s3://{bucket}/listed")
    assert sync.push(agent).ok
    storage = BucketRemote(f"s3://{bucket}/listed").storage
    for i in range(3):
        storage.put(f"envs/e-{i:016x}.json", b'{"env_id": "e-%016x", "state": "running"}' % i)
    before = len(server.served)
    report = environments(agent)
    assert len(report.environments) == 3
    window = server.served[before:]
    lists = sum(1 for s in window if s.method == "GET" and s.path.strip("/") == bucket)
    return {"requests": len(window), "lists": lists}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edit-every-s", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    os.environ.update(CREDENTIALS)
    os.environ.pop("MEMFS_HEARTBEAT", None)
    os.environ.pop("MEMFS_PRESENCE", None)
    with tempfile.TemporaryDirectory() as tmp, metered_moto_s3() as server:
        folder = Path(tmp)
        os.environ.update(
            AWS_ENDPOINT_URL=server.endpoint,
            HOME=str(folder),
            MEMFS_CONFIG=str(folder / "config.yaml"),
            MEMFS_DATA_DIR=str(folder / "data"),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_AUTHOR_NAME="bench",
            GIT_AUTHOR_EMAIL="bench@example.com",
            GIT_COMMITTER_NAME="bench",
            GIT_COMMITTER_EMAIL="bench@example.com",
        )
        bucket = "presence-bench"
        boto3.client("s3", endpoint_url=server.endpoint).create_bucket(Bucket=bucket)
        rows = [
            ("idle", one_hour(server, bucket, folder, None, args.seed)),
            (
                f"active (an edit every {args.edit_every_s:g} s)",
                one_hour(server, bucket, folder, args.edit_every_s, args.seed),
            ),
        ]
        listing = envs_cost(server, bucket, folder)
    print("Requests per environment per hour (one watched agent, moto S3, counted)")
    head = ["scenario", "polls", "pushes", "push req", "presence", "with", "without", "share"]
    print(" | ".join(head))
    for label, row in rows:
        without = row["total"] - row["presence"]
        share = f"{100 * row['presence'] / row['total']:.0f}%"
        cells = [label, row["polls"], row["pushes"], row["other"], row["presence"]]
        print(" | ".join(str(c) for c in [*cells, row["total"], without, share]))
    idle = rows[0][1]
    verdict = "PASS" if idle["total"] <= 120 else "MISS"
    print(f"idle watched agent: {idle['total']} requests/h (target <= 120): {verdict}")
    worst = HOUR / (ScheduleSettings().cold_s * (1 - ScheduleSettings().jitter))
    beats = HOUR / DEFAULT_HEARTBEAT_S
    print(
        f"worst case idle (every jitter at its shortest, {worst:.0f} polls) + {beats:.0f} "
        f"heartbeats = {worst + beats:.0f} requests/h"
    )
    puts = round(HOUR / DEFAULT_HEARTBEAT_S)  # steady state: the hour above adds start + stop
    presence_cost = puts * HOURS_PER_MONTH * 1000 * PUT_LIST_PER_1000 / 1000
    polls_cost = idle["polls"] * HOURS_PER_MONTH * 1000 * GET_PER_1000 / 1000
    print(
        f"\n1,000 idle environments for a month ({HOURS_PER_MONTH} h, S3 list prices: PUT/LIST "
        f"${PUT_LIST_PER_1000}/1k, GET ${GET_PER_1000}/1k):"
    )
    print(f"  presence: {puts} PUT/h each (steady state) -> ${presence_cost:.2f}/month")
    print(f"  polling:  {idle['polls']} GET/h each -> ${polls_cost:.2f}/month")
    print(f"  together: ${presence_cost + polls_cost:.2f}/month")
    print(
        f"\nmemfs envs, 3 environments: {listing['requests']} requests "
        f"({listing['lists']} LIST, 3 record GETs, 1 manifest GET)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
