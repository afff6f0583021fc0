"""What users wait for: issue 12's table as whole processes, memfs beside git-remote-s3 and git.

    python benchmarks/bench_process.py [--sizes 100,1000,10000 | --quick] [--repeat 5]
                                       [--no-peer] [--dir FOLDER] [--json FILE]

See ``--help`` for the rows, benchmarks/process/report.py for the targets each row is marked
against (PASS/MISS), and ``python -m benchmarks`` for this table and the in-process ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.process.main import main

if __name__ == "__main__":
    sys.exit(main())
