"""pgqueue's performance suite: ``python -m benchmarks all [--quick] [--dsn ...]``.

Scenarios live one per module (enqueue, drain, latency, backlog) on a shared
harness; ``history`` is a separate script for history-table scale. The package
``pgqueue`` never imports this one.
"""
