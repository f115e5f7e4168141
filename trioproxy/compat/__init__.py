"""Every reach into a dependency's private parts, one module per dependency.

trioproxy adapts hypercorn (its per-connection server, its HTTP/1.1 protocol,
its websocket stream), h11's server connection, wsproto's frame decoder and
trio-websocket's wsproto connection in ways their public APIs do not offer.
Each such reach lives in one module here, and nowhere else in trioproxy:

    hypercorn.py        the per-connection server, the HTTP/1.1 protocol, the websocket stream
    h11.py              the server connection trioproxy's strict-head guard subclasses
    wsproto.py          the frame decoder the inbound size limit hooks into
    trio_websocket.py   the wsproto connection under a trio-websocket connection

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
    "wsproto": "trioproxy.compat.wsproto",
    "trio-websocket": "trioproxy.compat.trio_websocket",
}


class CompatError(TrioproxyError, RuntimeError):
    """An installed dependency is not one a compatibility module was read against, or changed."""


def check_all() -> list[str]:
    """Run every module's ``check()``; the installed versions (``"hypercorn 0.18.0"``, ...) if all pass."""
    found = []
    for module in MODULES.values():
        found.append(importlib.import_module(module).check())
    return found
