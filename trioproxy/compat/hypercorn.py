"""hypercorn: its trio worker, per-connection server, HTTP/1.1 protocol and websocket stream.

Why trioproxy reaches in at all: ``hypercorn.trio.serve`` (the public API)
owns the listeners and the shutdown order, and offers no way to bound a
write to a client that stops reading, to parse request heads strictly, or to
carry websocket messages without a queue per message. trioproxy therefore
runs hypercorn's per-connection server itself, as ``hypercorn.trio.serve``
does, and adapts three of hypercorn's classes. Everything it touches is
here, and :func:`check` verifies it:

* :class:`Worker`: what ``hypercorn.trio.run.worker_serve`` sets up around
  its connections (``wrap_app``, ``WorkerContext``, ``Lifespan``), so the
  server can close the listeners, the idle connections and the rest in its
  own order.
* :class:`ServerConnection`: ``hypercorn.trio.tcp_server.TCPServer``, which is
  not documented for subclassing. It replaces the keep-alive timer
  (``idle_task``), takes over the read loop (``TCPServer.run`` calls the
  private ``_read_data`` once the protocol is set up, before anything is
  read) and, at that moment, adopts the connection's HTTP/1.1 protocol: the
  ``H11Protocol`` inside the ``ProtocolWrapper`` (``.protocol``) gets
  trioproxy's h11 connection (``.connection``) and makes its websocket stream
  trioproxy's class. Hypercorn answers a ``RemoteProtocolError`` raised by
  that connection with its ``error_status_hint`` (``H11Protocol._handle_events``).
  After a websocket's 101, :meth:`ServerConnection.divert` sends the
  client's raw bytes past the protocol: ``H11Protocol.handle(RawData)``
  would buffer them in its ``H11WSConnection`` and hand them on as ``Data``
  to the websocket stream, which decodes frames with wsproto; the websocket
  relay wants them as they are read. That is the one seam the relay needs,
  and the narrowest: the read loop, the writes, the connection's task and
  its closing stay hypercorn's (and :mod:`trioproxy.server.tcp`'s).
* :class:`WebsocketStream`: ``hypercorn.protocol.ws_stream.WSStream``, for
  subclassing by :mod:`trioproxy.server.ws_stream`.

No process-wide change: hypercorn's module globals and classes are left as
they are. A connection's protocol and websocket stream become trioproxy's by
giving those two objects, which hypercorn built for this connection, a
subclass of their own class (``obj.__class__ = Subclass``: the subclasses add
methods and class-level defaults only). Any other user of hypercorn in the
same process is served by hypercorn unchanged.

The surface a subclass may use is listed in each class's docstring; every
other module of trioproxy uses hypercorn's public names only (its config,
events and ASGI interface).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast, runtime_checkable

import h11
import trio
from hypercorn.config import Config
from hypercorn.events import Closed, RawData
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h11 import H11Protocol, H11WSConnection
from hypercorn.protocol.ws_stream import ASGIWebsocketState, Handshake, WSStream
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.task_group import TaskGroup
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import TrioSingleTask, WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app

from .probe import Reaches, attribute, method, probe, uses

if TYPE_CHECKING:
    from hypercorn.typing import AppWrapper
    from wsproto.connection import Connection as WSConnection

__all__ = ["TESTED", "ASGIWebsocketState", "IdleTimer", "ServerConnection", "WebsocketStream", "Worker", "check"]

#: The hypercorn releases this module was read against.
TESTED = ("0.17", "0.18")


class IdleTimer(Protocol):
    """The keep-alive timer's interface (hypercorn's ``TrioSingleTask``): ``restart`` and ``stop``.

    hypercorn calls ``restart(task_group, action)`` with the connection's
    ``TaskGroup``, whose ``spawn(func, *args)`` (in ``hypercorn.typing.TaskGroup``) starts a task.
    """

    async def restart(self, task_group: Any, action: Callable[[], Awaitable[None]]) -> None: ...

    async def stop(self) -> None: ...


class Worker:
    """One server's ASGI app, worker context and lifespan, as ``hypercorn.trio.serve`` makes them."""

    def __init__(self, asgi_app: Any, config: Config) -> None:
        self.config = config
        self.app = wrap_app(asgi_app, config.wsgi_max_body_size, "asgi")
        self.context = WorkerContext(None)
        self._lifespan_state: dict[str, Any] = {}
        self.lifespan = Lifespan(self.app, config, self._lifespan_state)

    async def run_lifespan(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The app's lifespan (``startup`` at once, ``shutdown`` when :meth:`shut_down` is awaited)."""
        await self.lifespan.handle_lifespan(task_status=task_status)

    async def started(self) -> None:
        await self.lifespan.wait_for_startup()

    async def shut_down(self) -> None:
        await self.lifespan.wait_for_shutdown()

    async def close_idle_connections(self) -> None:
        """Every keep-alive connection waiting for a request closes now (and each that becomes idle)."""
        await self.context.terminated.set()

    def connection_args(self) -> tuple[Any, Config, WorkerContext, Any]:
        """The first four arguments of a :class:`ServerConnection` (a fresh connection state each)."""
        return self.app, self.config, self.context, ConnectionState(self._lifespan_state.copy())


@runtime_checkable
class BulkReads(Protocol):
    """A diverted websocket's big reads from the client (the relay's): how much one would take now,
    and one, from the readable descriptor, with what it read handed on."""

    def client_bulk(self) -> int:
        """Bytes one bulk read would take now; 0: the usual read."""

    async def from_client_fd(self, fd: int, want: int) -> int:
        """One read of at most ``want`` bytes from ``fd`` (readable), handed on: the bytes read, 0 at EOF;
        ``OSError`` (``BlockingIOError`` if nothing was there) as ``os.readv`` raises it."""


class ServerConnection(TCPServer):
    """hypercorn's per-connection server, for subclassing by :mod:`trioproxy.server.tcp`.

    Surface a subclass may use (all checked): ``protocol`` (hypercorn's
    ``ProtocolWrapper``: ``await protocol.handle(event)``), ``stream`` (the
    client's trio stream), ``send_lock`` (the lock every write takes) and
    ``protocol_send(event)`` (every event the protocol sends: override, and
    call it for what is not overridden). Added here: :meth:`read_loop` and
    :meth:`not_http11` (override), :meth:`end_connection`,
    :meth:`plain_transport`, :meth:`divert`, :meth:`forget_request` and :meth:`start_soon`, and :attr:`receive_bytes`
    (what :meth:`read_loop` should read at a time, once set) and :attr:`diverted` (the reader
    :meth:`divert` was given: a read loop may hand the bytes to it directly).
    """

    #: Bytes per read from the client, when set (a diverted websocket's; 0: the read loop's own).
    receive_bytes = 0
    #: Where the client's bytes go once :meth:`divert` was called (None until then).
    diverted: Callable[[bytes], Awaitable[None]] | None = None
    #: The diverted websocket's bulk reads, if it takes them (see :meth:`divert`).
    bulk: BulkReads | None = None

    def __init__(
        self,
        app: Any,
        config: Config,
        context: WorkerContext,
        state: Any,
        stream: Any,
        *,
        idle_timer: IdleTimer,
        h11_connection: Callable[[], h11.Connection],
        websocket_stream: type[WebsocketStream],
    ) -> None:
        super().__init__(app, config, context, state, stream)
        self.idle_task = idle_timer  # type: ignore[assignment]  # the same interface (see IdleTimer)
        self._h11_connection = h11_connection
        self._websocket_stream = websocket_stream

    async def _read_data(self) -> None:
        # TCPServer.run calls this once the connection's protocol is set up, before any byte is read.
        if not self._adopt_protocol():
            await self.not_http11()
            return
        await self.read_loop()

    def _adopt_protocol(self) -> bool:
        h1 = getattr(self.protocol, "protocol", None)
        if type(h1) is not H11Protocol or not isinstance(h1.connection, h11.Connection):
            return False  # HTTP/2 chosen by ALPN, or a protocol this module does not know
        h1.__class__ = _AdoptingH11Protocol
        h1.connection = self._h11_connection()
        object.__setattr__(h1, "trioproxy_server", self)
        return True

    async def read_loop(self) -> None:
        """Read from the client and hand it to ``protocol`` until the connection ends (default: hypercorn's)."""
        await super()._read_data()

    async def not_http11(self) -> None:
        """The client negotiated something other than HTTP/1.1 (never offered): the connection closes on return."""

    async def end_connection(self) -> None:
        """The connection is over: hypercorn closes the socket and tells its protocol."""
        await self.protocol_send(Closed())

    def divert(
        self, reader: Callable[[bytes], Awaitable[None]], receive_bytes: int, bulk: BulkReads | None = None
    ) -> bool:
        """From now on every non-empty read from the client goes to ``reader``, not to the protocol,
        ``receive_bytes`` at a time.

        For an upgraded websocket only (its 101 about to go or gone: the protocol has
        nothing more to parse); the end of the connection still reaches the protocol
        (``Closed``). False if the protocol is not the HTTP/1.1 one this module adopted,
        or not upgraded.
        """
        h1 = getattr(self.protocol, "protocol", None)
        if not isinstance(h1, _AdoptingH11Protocol) or not isinstance(h1.connection, H11WSConnection):
            return False
        object.__setattr__(h1, "trioproxy_reader", reader)
        self.receive_bytes = receive_bytes
        self.diverted = reader
        self.bulk = bulk
        return True

    def forget_request(self) -> None:
        """After a diverted websocket's 101 is out: let go of the request's h11 state, which the
        upgraded connection keeps only to write the 101 (or an HTTP refusal) with."""
        h1 = getattr(self.protocol, "protocol", None)
        if isinstance(h1, _AdoptingH11Protocol) and h1.trioproxy_reader is not None:
            connection = h1.connection
            if isinstance(connection, H11WSConnection):
                connection.h11_connection = None  # type: ignore[assignment]  # nothing sends after the 101

    async def send_rest(self, data: bytes | memoryview) -> None:
        """What the kernel did not take of a diverted websocket's write, shielded: here a copy through
        ``protocol_send``; :class:`trioproxy.server.tcp.StallBoundTCPServer` writes it without one."""
        with trio.CancelScope(shield=True):
            await self.protocol_send(RawData(data=bytes(data)))

    def start_soon(self, run: Callable[[], Awaitable[None]]) -> None:
        """Start ``run`` in a task of this connection's nursery (hypercorn's per-connection task group,
        which the connection's task closes: it is under the server's nursery, so a cancelled server
        cancels it too). Only while the connection is served (from one of its tasks)."""
        self._task_group.spawn(run)

    def plain_transport(self) -> tuple[trio.Lock, trio.SocketStream] | None:
        """The lock that writes to the client take, and its plain TCP stream; None on TLS."""
        if isinstance(self.stream, trio.SocketStream):
            return self.send_lock, self.stream
        return None


class _AdoptingH11Protocol(H11Protocol):
    """hypercorn's ``H11Protocol`` whose websocket stream, once hypercorn makes it, becomes trioproxy's."""

    trioproxy_server: ServerConnection
    #: Set by :meth:`ServerConnection.divert`: where the client's bytes go instead.
    trioproxy_reader: Callable[[bytes], Awaitable[None]] | None = None

    async def handle(self, event: Any) -> None:
        reader = self.trioproxy_reader
        if reader is not None and type(event) is RawData and event.data:
            await reader(event.data)
            return
        await super().handle(event)

    def __setattr__(self, name: str, value: Any) -> None:
        # hypercorn's _create_stream makes a WSStream and stores it here before giving it any event.
        if name == "stream" and type(value) is WSStream:
            value.__class__ = self.trioproxy_server._websocket_stream  # this module's own
            cast(WebsocketStream, value).adopted(self.trioproxy_server)
        object.__setattr__(self, name, value)


class WebsocketStream(WSStream):
    """hypercorn's websocket stream, for subclassing by :mod:`trioproxy.server.ws_stream`.

    Surface a subclass may use (all checked): ``state`` (an
    :class:`ASGIWebsocketState`), ``closed``, ``connection`` (the wsproto
    connection, from the accept on), ``handshake``, ``config``, ``scope``,
    ``stream_id``, ``app_put`` (the app's queue, None before it runs),
    ``send(event)`` (hypercorn's protocol events toward the client) and the
    methods ``handle(event)`` and ``app_send(message)`` (override, and call).
    Added here: :attr:`connection_server` and the hooks
    :attr:`offer_extensions`, :meth:`scope_extensions` and :meth:`accepted`.
    """

    #: False: the client's ``Sec-WebSocket-Extensions`` are ignored, as if it offered none.
    offer_extensions: ClassVar[bool] = True
    #: The connection's server (set when hypercorn made this stream).
    connection_server: ServerConnection | None = None

    def adopted(self, server: ServerConnection) -> None:
        """hypercorn just made this stream for ``server``'s connection; no event has reached it yet."""
        self.connection_server = server
        extensions = self.scope_extensions()
        if extensions:
            inner = self.app

            async def app(scope: Any, *rest: Any) -> None:
                # Before the app sees its scope (its task has not run yet): hypercorn's scope
                # already advertises its own extensions ("websocket.http.response").
                scope.setdefault("extensions", {}).update(extensions)
                await inner(scope, *rest)

            self.app = cast("AppWrapper", app)

    def scope_extensions(self) -> dict[str, Any]:
        """ASGI extensions this stream adds to its scope's ``extensions``."""
        return {}

    def accepted(self, connection: WSConnection) -> None:
        """The app accepted: ``connection`` (wsproto) was just made; called before any frame is parsed or sent."""

    async def app_send(self, message: Any) -> None:
        if (message is not None and message["type"] == "websocket.accept"
                and self.state is ASGIWebsocketState.HANDSHAKE and not self.closed):
            self._hook_handshake(self.handshake)
        await super().app_send(message)

    def _hook_handshake(self, handshake: Handshake) -> None:
        # hypercorn's _accept makes the wsproto connection with handshake.accept() and then
        # awaits a send: the hook runs in between, with no checkpoint before it.
        if not self.offer_extensions:
            handshake.extensions = None
        accept = handshake.accept

        def accept_and_tell(*args: Any, **kwargs: Any) -> Any:
            status, headers, connection = accept(*args, **kwargs)
            self.accepted(connection)
            return status, headers, connection

        handshake.accept = accept_and_tell  # type: ignore[method-assign]  # this handshake only


def check() -> str:
    """Fail loudly unless hypercorn is a tested release with every reached name as expected."""
    r = Reaches(__name__, "hypercorn", TESTED)
    # The worker (Worker)
    r.need(method(Lifespan, "Lifespan", "handle_lifespan"))
    r.need(method(Lifespan, "Lifespan", "wait_for_startup"))
    r.need(method(Lifespan, "Lifespan", "wait_for_shutdown"))
    r.need(method(Lifespan, "Lifespan", "__init__", ("app", "config", "state")))
    context, problem = probe("WorkerContext(None)", lambda: WorkerContext(None))
    r.need(problem)
    if context is not None:
        r.need(method(type(getattr(context, "terminated", None)), "WorkerContext.terminated", "set"))
    # The per-connection server (ServerConnection)
    r.need(method(TCPServer, "TCPServer", "__init__", ("app", "config", "context", "state", "stream")))
    r.need(uses(TCPServer, "TCPServer", "run", "ProtocolWrapper", "protocol", "idle_task", "_read_data"))
    r.need(method(TCPServer, "TCPServer", "_read_data", ()))
    r.need(uses(TCPServer, "TCPServer", "run", "TaskGroup", "_task_group"))
    r.need(method(TCPServer, "TCPServer", "protocol_send", ("event",)))
    r.need(uses(TCPServer, "TCPServer", "protocol_send", "send_lock", "stream", "idle_task", "restart", "stop"))
    server, problem = probe("TCPServer", lambda: TCPServer(None, Config(), None, None, None))  # type: ignore[arg-type]
    r.need(problem)
    if server is not None:
        for name in ("send_lock", "idle_task", "stream", "config"):
            r.need(attribute(server, "TCPServer", name))
        if not isinstance(getattr(server, "send_lock", None), trio.Lock):
            r.need("TCPServer.send_lock is no longer a trio.Lock")
    r.need(method(TrioSingleTask, "TrioSingleTask", "restart", ("task_group", "action")))
    r.need(method(TrioSingleTask, "TrioSingleTask", "stop", ()))
    r.need(method(TaskGroup, "hypercorn.trio.task_group.TaskGroup", "spawn", ("func",)))
    # The HTTP/1.1 protocol (adopted per connection)
    r.need(uses(ProtocolWrapper, "ProtocolWrapper", "__init__", "protocol", "H11Protocol"))
    r.need(method(ProtocolWrapper, "ProtocolWrapper", "handle", ("event",)))
    r.need(_subclass_safe(H11Protocol, "H11Protocol"))
    r.need(uses(H11Protocol, "H11Protocol", "__init__", "connection"))
    r.need(uses(H11Protocol, "H11Protocol", "_create_stream", "WSStream", "stream"))
    r.need(uses(H11Protocol, "H11Protocol", "_handle_events", "RemoteProtocolError", "error_status_hint"))
    r.need(method(H11Protocol, "H11Protocol", "handle", ("event",)))
    r.need(uses(H11Protocol, "H11Protocol", "handle", "RawData", "receive_data", "_handle_events"))
    r.need(uses(H11Protocol, "H11Protocol", "_create_stream", "H11WSConnection", "connection"))
    r.need(uses(H11WSConnection, "H11WSConnection", "send", "h11_connection"))
    r.need(uses(H11Protocol, "H11Protocol", "_maybe_recycle", "our_state", "their_state"))
    # The websocket stream (WebsocketStream)
    r.need(_subclass_safe(WSStream, "WSStream"))
    r.need(method(WSStream, "WSStream", "handle", ("event",)))
    r.need(method(WSStream, "WSStream", "app_send", ("message",)))
    r.need(uses(WSStream, "WSStream", "handle", "handshake", "scope", "spawn_app", "app", "app_put"))
    r.need(uses(WSStream, "WSStream", "app_send", "_accept"))
    r.need(uses(WSStream, "WSStream", "_accept", "handshake", "accept", "connection"))
    r.need(method(Handshake, "Handshake", "accept", ("subprotocol", "additional_headers")))
    handshake, problem = probe("Handshake", lambda: Handshake([], "1.1"))
    r.need(problem)
    if handshake is not None:
        r.need(attribute(handshake, "Handshake", "extensions"))
    stream, problem = probe(
        "WSStream", lambda: WSStream(None, Config(), None, None, False, None, None, None, 1)  # type: ignore[arg-type]
    )
    r.need(problem)
    if stream is not None:
        for name in ("app", "app_put", "closed", "config", "send", "state", "stream_id"):
            r.need(attribute(stream, "WSStream", name))
    for name in ("HANDSHAKE", "CONNECTED", "RESPONSE", "CLOSED", "HTTPCLOSED"):
        r.need(attribute(ASGIWebsocketState, "ASGIWebsocketState", name))
    return r.raise_if_any()


def _subclass_safe(cls: type, label: str) -> str | None:
    """Whether an instance of ``cls`` can be given a subclass that adds no slots."""
    return f"{label} now has __slots__" if "__slots__" in vars(cls) else None
