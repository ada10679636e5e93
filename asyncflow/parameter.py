"""``Parameter``: a task whose value is given when the flow runs."""

from __future__ import annotations

from typing import Any

from .task import Task

__all__ = ("Parameter", "NO_DEFAULT")


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()


class Parameter(Task):
    """A value supplied at run time: ``flow.run(parameters={"x": 1})``.

    Args:
        name: the parameter's name; unique within a flow (it is also the slug).
        default: the value used when the run does not give one.
        required: whether a run must give it (default: when there is no default).
        tags: labels, as for any task.
    """

    def __init__(
        self,
        name: str,
        default: Any = NO_DEFAULT,
        required: bool | None = None,
        tags: Any = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"Parameter name must be a non-empty string, got {name!r}")
        self.required = default is NO_DEFAULT if required is None else required
        self.default = None if default is NO_DEFAULT else default
        super().__init__(name=name, slug=name, tags=tags)

    def __repr__(self) -> str:
        return f"<Parameter: {self.name}>"

    def run(self) -> Any:
        """The default; the engine supplies the run's value instead of calling this."""
        return self.default

    def copy(self, name: str, **task_args: Any) -> Task:  # type: ignore[override]
        """A copy under a new ``name`` (a parameter's slug is its name), as in 1.x."""
        new = super().copy(name=name, **task_args)
        new.slug = name
        return new

    def __call__(self, *args: Any, **kwargs: Any) -> Task:
        """A parameter is used as it is; calling it only adds it to the flow."""
        if args or kwargs.keys() - {"flow"}:
            raise TypeError(f"{self!r} takes no arguments")
        return self.bind(flow=kwargs.get("flow"))
