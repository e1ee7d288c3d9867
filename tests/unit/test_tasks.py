from __future__ import annotations

import pytest

import pgqueue
from pgqueue.types import Job, JobContext


def send() -> None: ...


def test_default_name_is_module_and_function() -> None:
    tasks = pgqueue.Registry()
    task = tasks.task(send)
    assert task.name == f"{__name__}.send"
    assert tasks.names == [task.name] and task.queue == "default"


def test_duplicate_names_raise() -> None:
    tasks = pgqueue.Registry()
    tasks.task(name="same")(lambda: None)
    with pytest.raises(pgqueue.TaskError, match="already registered"):
        tasks.task(name="same")(lambda: None)


def test_nested_function_needs_an_explicit_name() -> None:
    tasks = pgqueue.Registry()
    with pytest.raises(pgqueue.TaskError, match="pass name="):
        tasks.task(lambda: None)


@pytest.mark.parametrize("bad", [{"queue": "no spaces"}, {"max_attempts": 0},
                                 {"timeout": -1}, {"priority": 5000}, {"retry": "fast"}])
def test_bad_options_raise(bad: dict[str, object]) -> None:
    tasks = pgqueue.Registry()
    with pytest.raises(pgqueue.TaskError):
        tasks.task(name="t", **bad)(lambda: None)  # type: ignore[arg-type]


def test_context_parameter_is_found_by_annotation_and_args_are_checked() -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="with_ctx")
    async def with_ctx(a: int, job: pgqueue.JobContext) -> None: ...

    assert with_ctx.is_async and with_ctx.context_param == "job"
    ctx = JobContext(Job(1, "q", "with_ctx", {}, 0, 1, 5, None, None, None), "w")  # type: ignore[arg-type]
    assert with_ctx.bind_args({"a": 1}, ctx) == {"a": 1, "job": ctx}
    with pytest.raises(TypeError):
        with_ctx.bind_args({"b": 1}, ctx)
    with pytest.raises(TypeError, match="JobContext parameter"):
        with_ctx.bind_args({"a": 1, "job": 2}, ctx)


def test_options_do_not_clash_with_args_of_the_same_name() -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="t", queue="email", priority=3, max_attempts=2)
    def t(delay: int, queue: str) -> None: ...

    bound = t.options(delay=5, unique_key="k")
    assert bound.opts.queue == "email" and bound.opts.priority == 3
    assert bound.opts.delay == 5 and bound.opts.unique_key == "k"
    assert t(delay=1, queue="x") is None  # calling the task calls the function
