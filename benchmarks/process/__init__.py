"""Whole-process benchmark: what users and harnesses wait for (issue 12's table).

benchmarks/bench_process.py is the command; rows.py the rows, runner.py the timing,
s3server.py the counting moto server, report.py the targets and the table.
"""
