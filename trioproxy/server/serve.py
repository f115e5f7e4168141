"""Serve the ASGI front with hypercorn's HTTP/1.1 machinery, on listeners we own.

We run hypercorn's per-connection ``TCPServer`` ourselves instead of
``hypercorn.trio.serve`` so that shutdown happens in our order: the listening
sockets are closed at once (no connection waits in a backlog), idle
keep-alive connections are closed, in-flight requests drain until the
deadline, and then every connection socket is closed even if a send to a
stalled client is blocked (hypercorn shields those sends).

Connections are accepted by :mod:`.accept` (which refuses new ones near the
open-file limit) and served by :mod:`.tcp`'s ``TCPServer``, which cuts a
client that stops reading. What this needs of hypercorn beyond its config
(the worker's app, context and lifespan) is :class:`trioproxy.compat.hypercorn.Worker`;
every compatibility module is checked before the server listens
(:func:`trioproxy.compat.check_all`).
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
from typing import TYPE_CHECKING, Any

import trio

from ..errors import ServerError
from ..settings import LISTEN_BACKLOG, ServerSettings
from ..shutdown import Shutdown

if TYPE_CHECKING:
    from hypercorn.config import Config

    from ..compat.hypercorn import Worker

logger = logging.getLogger("trioproxy.server")

def make_config(s: ServerSettings) -> Config:
    from hypercorn.config import Config  # noqa: PLC0415 (see STACK_MODULES)

    config = Config()
    # HTTP/1.1 only (hypercorn's HTTP/2 would follow an "h2" chosen by ALPN): the Hub and CHP
    # speak HTTP/1.1 to us, and _h11_guard keeps the preface and h2c away from hypercorn's switch.
    config.alpn_protocols = ["http/1.1"]
    config.include_date_header = False  # the app's own Date passes through
    config.include_server_header = False
    config.h11_max_incomplete_size = s.max_header_bytes
    config.websocket_max_message_size = s.ws_max_message_bytes
    config.keep_alive_timeout = s.keep_alive_s
    config.accesslog = None
    config.errorlog = logging.getLogger("trioproxy.hypercorn")
    if s.tls:
        config.certfile = s.ssl_certfile
        config.keyfile = s.ssl_keyfile
        if s.ssl_client_ca:
            config.ca_certs = s.ssl_client_ca
            config.verify_mode = ssl.CERT_REQUIRED
    return config


def bind(s: ServerSettings) -> list[socket.socket]:
    """Listening sockets for ``--ip``/``--port``; '' is every interface, IPv6 and IPv4."""
    try:
        if s.ip == "":
            try:
                sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                addr: Any = ("::", s.port)
            except OSError:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                addr = ("0.0.0.0", s.port)
        else:
            infos = socket.getaddrinfo(s.ip, s.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            family, _, _, _, addr = infos[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        hint = " (another process uses it; choose --port)" if exc.errno == errno.EADDRINUSE else ""
        raise ServerError(f"cannot listen on {s.ip or '*'}:{s.port}: {exc.strerror or exc}{hint}") from None
    return [sock]


def bound_urls(socks: list[socket.socket], tls: bool) -> list[str]:
    out = []
    for sock in socks:
        host, port = sock.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        out.append(f"{'https' if tls else 'http'}://{host}:{port}")
    return out


class Listening:
    """A started server, stopped step by step by the shutdown order (``run.shut_down``)."""

    def __init__(
        self, urls: list[str], socks: list[socket.socket], accepting: trio.Nursery, connections: trio.Nursery,
        worker: Worker, streams: set[Any], spawn: trio.Nursery, shutdown: Shutdown,
    ) -> None:
        #: The bound URLs, e.g. ``http://127.0.0.1:8888``.
        self.urls = urls
        self.ports = [sock.getsockname()[1] for sock in socks]
        self._socks, self._accepting, self._connections = socks, accepting, connections
        self._worker, self._streams, self._spawn, self._shutdown = worker, streams, spawn, shutdown
        #: Set when every connection is done (drained or cut).
        self.drained = trio.Event()

    async def stop_accepting(self) -> None:
        """Close the listening sockets (no connection waits in a backlog) and the idle keep-alive ones."""
        self._accepting.cancel_scope.cancel()
        for sock in self._socks:
            trio.lowlevel.notify_closing(sock)
            sock.close()
        logger.info("shutdown: stopped accepting connections (+%.0f ms)", self._shutdown.elapsed_ms())
        await self._worker.close_idle_connections()

    def drain(self) -> None:
        """In-flight requests run until the drain deadline; then every connection socket is closed."""
        self._shutdown.drain_scope(self._connections.cancel_scope)
        self._spawn.start_soon(_close_at_deadline, self._shutdown, self._streams)


async def serve(
    front: Any,
    settings: ServerSettings,
    shutdown: Shutdown,
    *,
    task_status: trio.TaskStatus[Listening] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until stopped through the :class:`Listening` handle, then until drained.

    "Started" means listening: the value is the handle (its bound URLs, and
    the steps of the shutdown order that are the server's).
    """
    # Imported here, not with the module: hypercorn is a fifth of trioproxy's start-up,
    # and ``run`` loads it in a worker thread while the app starts (STACK_MODULES).
    from .. import compat  # noqa: PLC0415
    from ..compat.hypercorn import Worker  # noqa: PLC0415
    from .accept import Acceptor  # noqa: PLC0415
    from .tcp import StallBoundTCPServer  # noqa: PLC0415

    try:
        compat.check_all()
    except compat.CompatError as exc:
        raise ServerError(str(exc)) from None
    config = make_config(settings)
    try:
        ssl_context = config.create_ssl_context() if settings.tls else None
    except (OSError, ssl.SSLError) as exc:
        raise ServerError(f"cannot load the TLS files: {exc}") from None
    socks = bind(settings)
    worker = Worker(front, config)
    streams: set[Any] = set()

    async def handle(stream: Any) -> None:
        streams.add(stream)
        try:
            await StallBoundTCPServer(worker, stream, stall_s=settings.send_stall_s)
        except Exception as exc:  # the boundary of one connection
            # A fault in one connection (a protocol state hypercorn did not expect) ends that
            # connection, never the server: every other user's connections stay.
            logger.error("a connection failed and was closed: %s", _summary(exc))
            logger.debug("the failed connection's error", exc_info=exc)
        finally:
            streams.discard(stream)
            # Failed or cancelled, hypercorn's own close never ran (its send_eof raised first).
            _close_socket(stream)

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(worker.run_lifespan)
        await worker.started()
        with Acceptor(settings, ssl_context) as acceptor:
            try:
                async with trio.open_nursery() as connections, trio.open_nursery() as accepting:
                    for sock in socks:
                        accepting.start_soon(acceptor.serve, sock, handle, connections)
                    listening = Listening(bound_urls(socks, settings.tls), socks, accepting, connections,
                                          worker, streams, lifespan_nursery, shutdown)
                    task_status.started(listening)
            finally:
                for sock in socks:
                    sock.close()
        left = len(streams)
        logger.info("shutdown: connections drained (+%.0f ms)%s",
                    shutdown.elapsed_ms(), f", {left} cut" if left else "")
        listening.drained.set()
        await worker.shut_down()
        lifespan_nursery.cancel_scope.cancel()


async def _close_at_deadline(shutdown: Shutdown, streams: set[Any]) -> None:
    """At the drain deadline close every connection socket, waking shielded sends.

    Also when this task is cancelled first: the shutdown's caller cancels what is left as soon
    as the drain deadline has passed, which can come before this task runs again at the same
    deadline; the sockets must be closed all the same, or a send shielded in the middle of a
    frame (a websocket's, to a client that stopped reading) would wait out its stall bound.
    """
    try:
        with trio.CancelScope() as wait:
            shutdown.drain_scope(wait)  # ends at the deadline, or at once on hurry()
            await trio.sleep_forever()
    finally:
        for stream in list(streams):
            _close_socket(stream)  # synchronous: safe under cancellation


def _summary(exc: BaseException) -> str:
    """One line for a connection's failure (the innermost errors of a group)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_summary(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def _close_socket(stream: Any) -> None:
    """Close a connection's socket at once (plain or TLS; sync, so safe in cleanup); closed already is fine."""
    transport = getattr(stream, "transport_stream", stream)
    try:
        transport.socket.close()
    except OSError:
        pass
