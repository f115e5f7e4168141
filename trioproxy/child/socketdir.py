"""``{unix_socket}``: the private directory the app's socket lives in.

Made once per run, mode 0700 with an unguessable name, so only trioproxy's user
(and root) can enter it: no other local user can connect to the app, whatever
mode the app gives its socket (uvicorn makes its socket 0666; a TCP port on
loopback is open to every local user). Removed when the supervisor ends: a normal
exit, SIGTERM, the app failing for good, a cancelled in-process run. Before each
start of the app, the socket its last run left is removed, so the new one can bind.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

from ..settings import UNIX_SOCKET_DIR_PREFIX, UNIX_SOCKET_NAME

logger = logging.getLogger("trioproxy.child")

#: The longest path an AF_UNIX address holds on Linux (108 bytes of sun_path, with its NUL).
SUN_PATH_MAX = 107
#: Made here when the preferred parent is unusable or too deep for a socket path.
FALLBACK_PARENT = "/tmp"


def make(parent: str) -> str:
    """A new private directory (in ``parent``, else in /tmp, where the socket path fits
    AF_UNIX); return the app's socket path in it. :func:`remove` removes it.

    Raises:
        OSError: no private directory could be made.
    """
    error: OSError | None = None
    for where in dict.fromkeys((parent, FALLBACK_PARENT)):
        try:
            directory = tempfile.mkdtemp(prefix=UNIX_SOCKET_DIR_PREFIX, dir=where)  # mode 0700
        except OSError as exc:
            error = exc
            continue
        path = os.path.join(directory, UNIX_SOCKET_NAME)
        if len(os.fsencode(path)) <= SUN_PATH_MAX:
            logger.info("the app's Unix socket is %s (in a directory only this user can enter)", path)
            return path
        os.rmdir(directory)
        error = OSError(f"{where} is too deep for a Unix socket path")
    assert error is not None
    raise error


def remove(path: str) -> None:
    """Remove the socket's directory, with everything in it."""
    shutil.rmtree(os.path.dirname(path), ignore_errors=True)


def remove_stale(path: str) -> None:
    """Remove the socket a previous run of the app left at ``path`` (none: nothing to do)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        logger.warning("could not remove the app's old socket %s: %s", path, exc.strerror or exc)
        return
    logger.debug("removed the app's old socket %s", path)
