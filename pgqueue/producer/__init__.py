"""The application side: what a program that enqueues, waits on or steers jobs uses.

- ``enqueue`` / ``enqueue_async``: ``enqueue`` and ``enqueue_many`` on the
  caller's connection, never committing; the async twins.
- ``params``, ``args_json``: validation and normalisation of enqueue input, before
  any statement runs.
- ``steps``: the sans-IO step runner every module here runs its statements with.
- ``hooks``: the producer's own hook point (enqueued jobs, the trace scope) that
  observability subscribes to; the producer never imports observability.
- ``batches``, ``chains``, ``results``, ``control``: batches of jobs, chains of
  dependent jobs, waiting for a job's result, cancelling jobs and steering queues.

The public names are exported by ``pgqueue`` itself; these modules are private.
Nothing here imports the worker, the CLI, the dashboard, observability or the
demo (tests/unit/test_architecture.py checks it).
"""
