"""trioproxy: serve any web app as a JupyterHub single-user server, on Trio.

General layout, in the order a request meets it; each layer imports only
from the layers below it (``tests/test_layout.py`` holds that)::

    cli.py        the command line: parses argv and the environment once, the
                  process-wide steps (not dumpable, subreaper), then run
    run.py        the root nursery: the app's supervisor, its output, the server,
                  the activity timer; the shutdown order (shut_down); run (the
                  process's: signals, orphan sweeps) and serving (in-process)
    server/       everything that adapts hypercorn: the accept loop, the
                  per-connection server, strict request heads, websocket streams
    front/        the ASGI callable hypercorn serves: routes each request,
                  checks who may pass, forwards
    ops/          trioproxy's own endpoints (owner's controls, metrics, health,
                  the OAuth callback, served by Quart-Trio) and `trioproxy doctor`
    proxy/        forwarding: HTTP, websockets, the gateway to the app
    auth/         who may pass: the JupyterHub OAuth login, the passage to the app
    hub/          the Hub's API, activity reports, the token cache
    child/        the app: its process and supervision, output, git/conda
                  bootstrap, the reaper and the guard, connections to it
    settings.py   one frozen Settings from argv and environ, every tunable;
    metrics.py    shutdown.py; websocket_port.py, where the server's websocket
                  stream and the bridge meet (the shared bottom, with compat/)
    compat/       every reach into a dependency's private parts (hypercorn,
                  h11), one module each, version-checked
    rules/        pure functions, no I/O: headers, request heads, cookies,
                  redirects, routing, scopes, templates, pages, websocket frames
    errors.py     the package's exceptions, under one base (the very bottom:
                  it imports nothing of trioproxy, so the rules may raise them)

Public names: :class:`Settings`, :func:`run`, :func:`serving` (trioproxy in
the caller's trio loop: settings in, a started server out) and ``__version__``.
"""

from typing import Any

from ._version import __version__
from .settings import Settings

__all__ = ["Settings", "__version__", "run", "serving"]


def __getattr__(name: str) -> Any:
    # ``run`` pulls in the whole server; ``trioproxy --help`` and ``doctor`` need none of it.
    if name in ("run", "serving"):
        import importlib  # noqa: PLC0415 (only when run or serving is asked for)

        return getattr(importlib.import_module(".run", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
