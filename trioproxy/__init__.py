"""trioproxy: serve any web app as a JupyterHub single-user server, on Trio."""

from typing import Any

from ._settings import Settings
from ._version import __version__

__all__ = ["Settings", "__version__", "run"]


def __getattr__(name: str) -> Any:
    # ``run`` pulls in the whole server; ``trioproxy --help`` and ``doctor`` need none of it.
    if name == "run":
        from ._run import run

        return run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
