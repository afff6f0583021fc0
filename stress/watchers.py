"""Full-size two-machine run: watcher daemons on both, random editors on both, 0 lost.

    .venv/bin/python stress/watchers.py [--edits 1000] [--store s3|folder|both] [--seed 11]

Two machines, each with ``memfs watch --daemon`` and its own HOME, share one remote (moto S3
over HTTP, and/or a local-folder cloud). Editors on both make ``--edits`` edits in all
(appends, atomic-rename saves, new files, deletes, appends to shared files), 0-300 ms apart.
Then both must converge on the remote's head with clean trees and every token present.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3

from tests.harness import (
    RandomEditor,
    committed_files,
    fsck,
    isolate_this_process,
    setup_two_machines,
    table,
    watched_two_machine_run,
)
from tests.s3 import CREDENTIALS, moto_s3


def one_run(base: Path, store: str, endpoint: str, edits: int, seed: int) -> dict[str, object]:
    if store == "s3":
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket="stress-watchers"
        )
        env = dict(CREDENTIALS, AWS_ENDPOINT_URL=endpoint)
        url = "s3://stress-watchers/agents/shared"
    else:
        env, url = {}, f"memfs::{(base / 'cloud' / 'shared').as_uri()}"
    a, b = setup_two_machines(base, url, env)
    started = time.monotonic()
    row: dict[str, object] = {"store": store}
    try:
        ledger, lost = watched_two_machine_run(a, b, url, seed, edits // 2)
    except AssertionError as error:
        return row | {"error": str(error).splitlines()[0][:120]}
    same = committed_files(a.root) == committed_files(b.root)
    found = [m.name for m in (a, b) if fsck(m.root)]
    commits = len([line for line in os.popen(f"git -C {a.root} rev-list HEAD")])
    return row | {
        "edits": sum(ledger.edits.values()),
        **{kind: ledger.edits[kind] for kind in RandomEditor.KINDS},
        "tokens": len(ledger.written),
        "expected": len(ledger.expected()),
        "lost": len(lost),
        "commits": commits,
        "same tree": same,
        "fsck": "clean" if not found else "BAD " + ",".join(found),
        "s": f"{time.monotonic() - started:.1f}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=1000, help="edits in all, both machines")
    parser.add_argument("--store", choices=["s3", "folder", "both"], default="both")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    stores = ["s3", "folder"] if args.store == "both" else [args.store]
    rows = []
    with tempfile.TemporaryDirectory(prefix="memfs-stress-watchers-") as tmp:
        isolate_this_process(Path(tmp))
        with moto_s3() as server:
            os.environ["AWS_ENDPOINT_URL"] = server.endpoint
            for store in stores:
                rows.append(
                    one_run(Path(tmp) / store, store, server.endpoint, args.edits, args.seed)
                )
                print(table(rows[-1:]), flush=True)
    print()
    print(table(rows))
    bad = [r for r in rows if "error" in r or r.get("lost") or r.get("fsck") != "clean"]
    print(f"\n{len(rows)} runs, {len(bad)} with a lost edit, bad fsck or no convergence")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
