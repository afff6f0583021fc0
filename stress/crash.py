"""Full-size kill -9 trials: commit, push (S3 and git), pull/merge, clone and checkout.

    .venv/bin/python stress/crash.py [--trials 120] [--seed 1]

Each trial runs one memfs command in a child process on machine a and kills it, either at an
exact crash point (MEMFS_CRASH_AT, memfs/faults.py; apply.write:N for a random N of a merge
writing several files with a conflict) or after a random delay. Then: git fsck --strict on
both machines, syncs until converged, and a check that no token written (committed or on disk)
is lost. Trials alternate between a moto S3 bucket and a bare git repository; clone trials kill
a fresh clone and clone again into the same folder. After a failed trial the pair of machines
is rebuilt. Prints one row per kind of trial.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3

from tests.harness import (
    KILLED,
    Ledger,
    Machine,
    assert_exit_is_documented,
    check_after_crash,
    committed_files,
    fsck,
    isolate_this_process,
    prepare_merge,
    setup_two_machines,
    table,
    write_tokens,
)
from tests.s3 import CREDENTIALS, moto_s3
from tests.servers import bare_repo

POINTS = {
    "s3": ["commit.objects", "push.pack", "push.index", "push.manifest", "fetch.import"],
    "git": ["commit.objects", "push.git"],
}
COMMAND_OF_POINT = {"commit.objects": "commit", "fetch.import": "pull", "apply.commit": "pull"}


def classify(error: AssertionError) -> str:
    text = str(error)
    for marker, kind in (
        ("fsck", "fsck"), ("converge", "no convergence"), ("lost", "lost edits"),
        ("internal error", "internal error"), ("traceback", "traceback"),
        ("clone again", "re-clone refused"),
    ):  # fmt: skip
        if marker in text:
            return kind
    return "other"


class Pair:
    """Two machines on one remote, rebuilt after a failed trial."""

    def __init__(self, base: Path, kind: str, endpoint: str) -> None:
        self.base, self.kind, self.endpoint, self.builds = base, kind, endpoint, 0
        self.build()

    def build(self) -> None:
        self.builds += 1
        where = self.base / f"{self.kind}-{self.builds}"
        if self.kind == "s3":
            bucket = f"stress-crash-{self.builds}"
            boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1").create_bucket(
                Bucket=bucket
            )
            self.env, self.url = (
                dict(CREDENTIALS, AWS_ENDPOINT_URL=self.endpoint),
                f"s3://{bucket}/agents/shared",
            )
        else:
            self.env, self.url = {}, str(bare_repo(where / "hub.git"))
        self.a, self.b = setup_two_machines(where, self.url, self.env)
        self.ledger = Ledger()
        self.pull_time = 1.0


def sync_trial(pair: Pair, rng: random.Random, n: int, labels: list[str]) -> object:
    """One kill in a commit/push/pull/sync of machine a (its label goes to ``labels``)."""
    a, b, ledger = pair.a, pair.b, pair.ledger
    choice = rng.random()
    if choice < 0.25:  # an exact point of commit/push/fetch
        point = rng.choice(POINTS[pair.kind] + ["apply.commit"])
        command = COMMAND_OF_POINT.get(point, "push")
        label, crash_at, delay = f"{pair.kind} {point}", point, None
    elif choice < 0.5:  # before the Nth write of a merge
        n_write = rng.randint(1, 6)
        command, label, crash_at, delay = (
            "pull",
            f"{pair.kind} apply.write:N",
            f"apply.write:{n_write}",
            None,
        )
    else:
        command = rng.choice(["commit", "push", "pull", "sync"])
        label, crash_at, delay = (
            f"{pair.kind} {command} after random delay",
            "",
            rng.uniform(0, pair.pull_time * 1.2),
        )
    labels.append(label)
    if command == "pull":
        prepare_merge(
            a, b, ledger, f"t{n}", local_edits=crash_at != "" and "apply.write" not in crash_at
        )
    else:
        write_tokens(a, ledger, [f"t{n}/a.md", "shared/log"])
        write_tokens(b, ledger, [f"t{n}/b.md"])
        done = b.memfs("sync")
        assert done.returncode == 0, f"b: sync before the trial: {done.stderr}"
    started = time.monotonic()
    if delay is None:
        result = a.memfs(command, crash_at=crash_at)
    else:
        result = a.memfs_killed_after(delay, command)
    if delay is None and result.returncode != KILLED:
        pair.pull_time = max(pair.pull_time * 0.5, time.monotonic() - started)
    assert_exit_is_documented(result, label)
    check_after_crash([a, b], ledger, label)
    return result


def clone_trial(base: Path, pair: Pair, rng: random.Random, n: int, labels: list[str]) -> object:
    """Kill a fresh clone, then clone again into the same folder (label to ``labels``).

    A clone killed after it was whole (its unfinished marker gone, status works) is kept:
    cloning into it again is rightly refused.
    """
    c = Machine.create(base / f"clone-{n}", "c", pair.env)
    if rng.random() < 0.5:
        label, crash_at, delay = (
            f"{pair.kind} clone checkout.write:N",
            f"checkout.write:{rng.randint(1, 4)}",
            None,
        )
    else:
        label, crash_at, delay = f"{pair.kind} clone after random delay", "", rng.uniform(0, 1.0)
    labels.append(label)
    args = ("clone", pair.url, str(c.root))
    if delay is None:
        result = c.memfs(*args, crash_at=crash_at, agent=False)
    else:
        result = c.memfs_killed_after(delay, *args, agent=False)
    assert_exit_is_documented(result, label)
    unfinished = (c.root / ".git/memfs/checkout.json").exists()
    if unfinished or not (c.root / ".git").exists() or c.memfs("status").returncode != 0:
        again = c.memfs(*args, agent=False)  # killed before the clone was whole: redo it
        assert again.returncode == 0, f"clone again after a killed clone: {again.stderr.strip()}"
    found = fsck(c.root)
    assert found == "", f"fsck after a clone: {found}"
    assert c.head() == pair.a.head(), "the clone is not at the remote's head"
    lost = pair.ledger.lost(committed_files(c.root))
    assert lost == {}, f"lost in the clone: {lost}"
    shutil.rmtree(c.root.parent.parent, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=120)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    outcomes = ["ok", "fsck", "no convergence", "lost edits", "internal error", "traceback",
                "re-clone refused"]  # fmt: skip
    stats: dict[str, Counter[str]] = defaultdict(Counter)
    seconds: dict[str, float] = defaultdict(float)
    examples: list[str] = []
    started_all = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="memfs-stress-crash-") as tmp:
        base = Path(tmp)
        isolate_this_process(base)
        with moto_s3() as server:
            os.environ["AWS_ENDPOINT_URL"] = server.endpoint
            pairs = {kind: Pair(base, kind, server.endpoint) for kind in ("s3", "git")}
            for n in range(args.trials):
                pair = pairs["s3" if n % 2 == 0 else "git"]
                started = time.monotonic()
                is_clone = rng.random() < 0.15
                labels = [f"{pair.kind} {'clone' if is_clone else 'sync'} (setup failed)"]
                try:
                    if is_clone:
                        result = clone_trial(base, pair, rng, n, labels)
                    else:
                        result = sync_trial(pair, rng, n, labels)
                    outcome = "ok"
                    killed = getattr(result, "returncode", 0) == KILLED
                except AssertionError as error:
                    outcome, killed = classify(error), True
                    examples.append(f"trial {n} (seed {args.seed}): {str(error)[:300]}")
                    pair.build()
                label = labels[-1]
                stats[label].update(trials=1, killed=int(killed), **{outcome: 1})
                seconds[label] += time.monotonic() - started
                print(f"trial {n}: {label}: {outcome}", flush=True)
    rows = [
        {"trial kind": label, "trials": counts["trials"], "killed": counts["killed"]}
        | {outcome: counts[outcome] for outcome in [*outcomes, "other"]}
        | {"s": f"{seconds[label]:.1f}"}
        for label, counts in sorted(stats.items())
    ]
    print()
    print(table(rows))
    failed = sum(counts["trials"] - counts["ok"] for counts in stats.values())
    print(f"\n{args.trials} trials in {time.monotonic() - started_all:.0f} s, {failed} failed")
    for example in examples:
        print(" ", example.replace("\n", " | "))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
