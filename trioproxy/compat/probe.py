"""What the compatibility modules' ``check()`` functions share: the version test and the probes.

A probe returns a problem (a short sentence naming what changed) or None.
:class:`Reaches` collects them for one dependency and raises one
:class:`~trioproxy.compat.CompatError` that says everything at once.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from . import CompatError


def installed_version(distribution: str) -> str:
    """The installed release of ``distribution`` (tests replace this to pose as another release)."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "(not installed)"


def is_tested(found: str, tested: Iterable[str]) -> bool:
    """Whether release ``found`` is one of the ``tested`` series ("0.18" covers 0.18.0, 0.18.1, ...)."""
    return any(found == series or found.startswith(series + ".") for series in tested)


class Reaches:
    """The problems found in one dependency; :meth:`raise_if_any` turns them into one error."""

    def __init__(self, module: str, distribution: str, tested: tuple[str, ...]) -> None:
        self.module = module
        self.distribution = distribution
        self.tested = tested
        self.version = installed_version(distribution)
        self.problems: list[str] = []

    def need(self, problem: str | None) -> None:
        if problem is not None:
            self.problems.append(problem)

    def raise_if_any(self) -> str:
        """Raise :class:`CompatError` for an untested version or any problem; else ``"name version"``."""
        untested = not is_tested(self.version, self.tested)
        if not untested and not self.problems:
            return f"{self.distribution} {self.version}"
        head = f"{self.module}: {self.distribution} {self.version}"
        if untested:
            head += f" is untested (read against {', '.join(self.tested)})"
        if self.problems:
            tail = "; ".join(self.problems)
        else:
            tail = f"every name it reaches is still there: read {self.module} against it and add it to TESTED"
        raise CompatError(f"{head}; {tail}")


def attribute(owner: Any, label: str, name: str) -> str | None:
    """``owner.name`` exists."""
    return None if hasattr(owner, name) else f"{label}.{name} is gone"


def method(owner: type, label: str, name: str, params: tuple[str, ...] | None = None) -> str | None:
    """``owner.name`` is a function; with ``params``, its parameters after ``self`` begin with those."""
    found = getattr(owner, name, None)
    if not callable(found):
        return f"{label}.{name} is gone"
    if params is None:
        return None
    try:
        names = list(inspect.signature(found).parameters)[1:]
    except (TypeError, ValueError):
        return None  # no signature to read (a builtin): its presence is all we can tell
    if names[: len(params)] != list(params):
        return f"{label}.{name} takes ({', '.join(names)}), not ({', '.join(params)})"
    return None


def uses(owner: type, label: str, name: str, *names: str) -> str | None:
    """The code of ``owner.name`` still refers to each of ``names`` (an attribute, a global, a call).

    Cheap and source-free: it reads the function's code object. It tells that
    a behaviour trioproxy builds on is still wired the same way (say, that
    ``TCPServer.run`` still calls ``_read_data``), not that it does the same.
    """
    function = getattr(owner, name, None)
    code = getattr(inspect.unwrap(function), "__code__", None) if callable(function) else None
    if code is None:
        return f"{label}.{name} is gone"
    missing = [n for n in names if n not in _names(code)]
    if missing:
        return f"{label}.{name} no longer uses {', '.join(missing)}"
    return None


def _names(code: Any) -> set[str]:
    """Every name a code object and the code nested in it refer to."""
    found = set(code.co_names) | set(code.co_varnames) | set(code.co_freevars)
    for const in code.co_consts:
        if inspect.iscode(const):
            found |= _names(const)
    return found


def probe(label: str, build: Callable[[], Any]) -> tuple[Any, str | None]:
    """``build()``'s value, or None and a problem naming ``label`` if it raised."""
    try:
        return build(), None
    except Exception as exc:  # any failure to build is the change to report
        return None, f"{label} cannot be built as before ({type(exc).__name__}: {exc})"
