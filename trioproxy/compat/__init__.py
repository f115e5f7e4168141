"""Every reach into a dependency's private parts, one module per dependency.

trioproxy adapts hypercorn (its per-connection server, its HTTP/1.1 protocol,
its websocket stream) and h11's server connection in ways their public APIs
do not offer. (wsproto and trio-websocket had modules here while websocket
frames were decoded; the relay of :mod:`trioproxy.proxy.ws_relay` reaches
into neither.)
Each such reach lives in one module here, and nowhere else in trioproxy:

    hypercorn.py        the per-connection server, the HTTP/1.1 protocol (and the seam that gives
                        a websocket's raw bytes to the relay), the websocket stream
    h11.py              the server connection trioproxy's strict-head guard subclasses

Each module names the releases it was read against (``TESTED``) and has a
``check()`` that compares the installed release and verifies that every name
it reaches still exists with the shape it expects; a failure raises
:class:`CompatError` naming the module, the dependency, its version and what
changed. :func:`check_all` runs them all: the server calls it once before it
listens, and ``trioproxy doctor`` reports it.

Quart and Quart-Trio are used through their public API and the ASGI interface
only; trio through its public API (``trio.lowlevel`` included): neither has a
module here.
"""

from __future__ import annotations

import importlib

from ..errors import TrioproxyError

__all__ = ["MODULES", "CompatError", "check_all"]

#: The compatibility modules, by the distribution each adapts.
MODULES = {
    "hypercorn": "trioproxy.compat.hypercorn",
    "h11": "trioproxy.compat.h11",
}


class CompatError(TrioproxyError, RuntimeError):
    """An installed dependency is not one a compatibility module was read against, or changed."""


def check_all() -> list[str]:
    """Run every module's ``check()``; the installed versions (``"hypercorn 0.18.0"``, ...) if all pass."""
    found = []
    for module in MODULES.values():
        found.append(importlib.import_module(module).check())
    return found
