"""Full-size two-machine run: watcher daemons on both, random editors on both, 0 lost.

    .venv/bin/python stress/watchers.py [--edits 1000] [--store s3|folder|both] [--seed 11,12]
                                        [--encrypt no|yes|both] [--pause 0.3] [--dir D]

Two machines, each with ``memfs watch --daemon`` and its own HOME, share one remote (moto S3
over HTTP, and/or a local-folder cloud), plain or encrypted (``remote add --encrypt``, b's
recipient added by a with ``memfs key add``). Editors on both make ``--edits`` edits in all
(appends, atomic-rename saves, new files, deletes, appends to shared files), 0-300 ms apart
(``--pause``). Then both must converge on the remote's head with clean trees and every
token present.
"""

from __future__ import annotations

import argparse
import contextlib
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
    remote_head_as,
    setup_two_machines,
    table,
    watched_two_machine_run,
)
from tests.s3 import CREDENTIALS, moto_s3


def one_run(
    base: Path, store: str, endpoint: str, edits: int, seed: int, encrypt: bool, pause: float
) -> dict[str, object]:
    if store == "s3":
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket="stress-watchers"
        )
        env = dict(CREDENTIALS, AWS_ENDPOINT_URL=endpoint)
        url = f"s3://stress-watchers/{base.name}/shared"  # a prefix of its own for each run
    else:
        env, url = {}, f"memfs::{(base / 'cloud' / 'shared').as_uri()}"
    a, b = setup_two_machines(base, url, env, encrypt=encrypt)
    started = time.monotonic()
    row: dict[str, object] = {"store": store, "sealed": encrypt, "seed": seed}
    head = remote_head_as(a, url) if encrypt else None
    try:
        ledger, lost = watched_two_machine_run(a, b, url, seed, edits // 2, head, pause)
    except AssertionError as error:
        return row | {"error": str(error).splitlines()[0][:120]}
    if lost:  # which, where, and the folder to look into (kept with --dir)
        print(f"{base}: lost {len(lost)}: {sorted(lost.items())[:20]}", file=sys.stderr)
    files = committed_files(a.root)
    same = files == committed_files(b.root)
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
        "conflict copies": len([path for path in files if ".conflict-" in path]),
        "s": f"{time.monotonic() - started:.1f}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=1000, help="edits in all, both machines")
    parser.add_argument("--store", choices=["s3", "folder", "both"], default="both")
    parser.add_argument("--seed", default="11", help="seeds, comma-separated: a run each")
    parser.add_argument("--encrypt", choices=["no", "yes", "both"], default="no")
    parser.add_argument("--pause", type=float, default=0.3, help="most seconds between edits")
    parser.add_argument("--dir", help="work here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    stores = ["s3", "folder"] if args.store == "both" else [args.store]
    sealed = {"no": [False], "yes": [True], "both": [False, True]}[args.encrypt]
    seeds = [int(seed) for seed in args.seed.split(",")]
    rows = []
    with contextlib.ExitStack() as stack:
        tmp = args.dir or stack.enter_context(
            tempfile.TemporaryDirectory(prefix="memfs-stress-watchers-")
        )
        isolate_this_process(Path(tmp))
        with moto_s3() as server:
            os.environ["AWS_ENDPOINT_URL"] = server.endpoint
            for seed in seeds:
                for encrypt in sealed:
                    for store in stores:
                        base = Path(tmp) / f"{store}-{'sealed' if encrypt else 'plain'}-{seed}"
                        rows.append(
                            one_run(
                                base, store, server.endpoint, args.edits, seed, encrypt, args.pause
                            )
                        )
                        print(table(rows[-1:]), flush=True)
    print()
    print(table(rows))
    bad = [r for r in rows if "error" in r or r.get("lost") or r.get("fsck") != "clean"]
    print(f"\n{len(rows)} runs, {len(bad)} with a lost edit, bad fsck or no convergence")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
