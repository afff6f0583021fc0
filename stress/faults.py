"""Full-size fault injection: two machines syncing through an S3 that fails 20% of requests.

    .venv/bin/python stress/faults.py [--trials 5] [--rounds 20] [--edits 4] [--rate 0.2]

Each trial: a fresh bucket on moto (over HTTP, single-threaded) behind tests/faultproxy.py;
two machines make random edits and sync ``--rounds`` times each through the faults; then the
faults stop and both sync until converged; a fresh clone is checked. Prints one row per trial:
syncs and how they ended (exit codes), edits, faults injected by kind, lost tokens, fsck.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3

from tests.faultproxy import FAULT_KINDS, fault_proxy
from tests.harness import faulty_two_machine_run, isolate_this_process, table
from tests.s3 import moto_s3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--edits", type=int, default=4, help="edits per machine per round")
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    failures = 0
    messages: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="memfs-stress-faults-") as tmp:
        base = Path(tmp)
        isolate_this_process(base)
        with moto_s3() as server:
            import os

            os.environ["AWS_ENDPOINT_URL"] = server.endpoint
            client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1")
            for trial in range(args.trials):
                seed = args.seed + trial
                bucket = f"stress-faults-{trial}"
                client.create_bucket(Bucket=bucket)
                started = time.monotonic()
                row: dict[str, object] = {"seed": seed}
                with fault_proxy(server.endpoint, rate=args.rate, seed=seed) as proxy:
                    try:
                        run = faulty_two_machine_run(
                            base / f"trial-{trial}", proxy, f"s3://{bucket}/agents/shared",
                            seed, args.rounds, args.edits,
                        )  # fmt: skip
                    except AssertionError as error:
                        failures += 1
                        row["error"] = str(error).splitlines()[0][:100]
                        rows.append(row | {"s": f"{time.monotonic() - started:.1f}"})
                        continue
                bad_fsck = [name for name, found in run.fsck.items() if found]
                failures += bool(run.lost or bad_fsck)
                row.update(
                    syncs=run.syncs,
                    failed=sum(n for code, n in run.exits.items() if code != 0),
                    exits=" ".join(f"{c}:{n}" for c, n in sorted(run.exits.items())),
                    edits=run.edits,
                    requests=run.requests,
                    **{kind: run.faults[kind] for kind in FAULT_KINDS},
                    lost=len(run.lost),
                    fsck="clean" if not bad_fsck else "BAD " + ",".join(bad_fsck),
                    s=f"{time.monotonic() - started:.1f}",
                )
                rows.append(row)
                messages.update(run.errors)
                print(table(rows[-1:]) if trial == 0 else table(rows).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    print(f"\n{len(rows)} trials, {failures} with a lost edit, bad fsck or no convergence")
    if messages:
        print("\nFailed syncs (faults on), by exit code and message:")
        for message, count in messages.most_common():
            print(f"  {count:4d} x {message}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
