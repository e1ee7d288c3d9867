"""pgqueue's performance suite: ``python -m benchmarks all [--quick] [--dsn ...]``.

Scenarios live one per module (enqueue, drain, latency, backlog, stats, bloat)
on a shared harness; ``history`` is a separate script for the retention choice. The package
``pgqueue`` never imports this one.
"""
