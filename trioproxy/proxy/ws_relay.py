"""Relay one websocket's frames between the client's and the app's connections, undecoded.

After both handshakes (the client's served by hypercorn and accepted by the
bridge, the app's done by :mod:`.websocket`), the bytes of each direction
pass as read, payloads neither decoded nor unmasked nor masked again: the
client's masked frames reach the app as the client masked them, the app's
frames reach the client as the app sent them. Each direction is followed by a
:class:`trioproxy.rules.frames.FrameTracker`, from the frame headers alone,
which holds each side to RFC 6455's framing (masking, reserved bits and
opcodes, control frames, fragments: 1002) and to
``--websocket-max-message-size`` (1009, from the header on, before any of the
payload), and knows where frames and messages end. Nothing is negotiated
(no permessage-deflate either way), so frames relay as they are.

Left to the endpoints, as nginx and configurable-http-proxy leave them: UTF-8
in text messages and close reasons, and close codes. Checking them would
mean decoding every payload; a conformant app sees, and answers, every such
case exactly as it would with no proxy in between (and a browser checks what
the app sends).

Tasks: the client's bytes are relayed from the connection's reader task
(:meth:`Relay.from_client`: a slow app holds the client back), the app's from
the relaying task (:meth:`Relay.app_to_client`: the bridge hands it to the
client's connection after the accept, so it is a task of that connection's
nursery; see :mod:`.websocket`). The relay's own control
frames go only between frames (:class:`_Out`: at once when the direction is
at a frame boundary and no write is under way, else spliced in at the next
boundary): keepalive pings to a silent client (their pongs are taken out,
never relayed), and the closes it sends itself.

How a websocket ends (who gets what close frame):

===============================  =================================  ===============================
what happened                    the client                         the app
===============================  =================================  ===============================
a side closes (a close frame)    relayed both ways; then both connections close; if the other
                                 side goes, or does not answer within ``ws_close_timeout_s``,
                                 the relay answers the close (1000) itself
the client breaks a rule         1002 or 1009, then cut             1001
the client is silent (keepalive) 1011 "keepalive ping timeout"      1001
the client's connection ends     --                                 1001
the app breaks a rule            the same code                      1002 or 1009
the app's connection ends        1011                               --
shutdown                         1001 (at once, :meth:`goodbye`)    1001
===============================  =================================  ===============================

A close frame can only go between frames: a direction cut in the middle of
a frame gets no close frame (its connection just ends).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable

import trio

from ..metrics import Metrics
from ..rules import frames as _frames
from ..rules.frames import FrameTracker, Opcode
from ..settings import WS_APP_RECEIVE_BYTES
from ..websocket_port import ClientPort
from . import ws_bulk

logger = logging.getLogger("trioproxy.proxy")

GOING_AWAY = 1001
INTERNAL_ERROR = 1011
#: The payload of the relay's keepalive pings (the client's pong with it is taken out).
PING_PAYLOAD = b"trioproxy keepalive"
#: A close reason is at most 123 bytes (RFC 6455 §5.5: a control frame's payload is 125).
REASON_MAX = 120


def close_frame(code: int, reason: str, *, masked: bool) -> bytes:
    """A close frame of the relay's own (masked toward the app: the relay is its client)."""
    payload = _frames.close_payload(code, reason.encode()[:REASON_MAX])
    return _frames.encode(Opcode.CLOSE, payload, mask_key=os.urandom(4) if masked else None)


class _Out:
    """One side's outgoing bytes: those relayed to it, and the relay's control frames between them.

    ``source`` follows the bytes relayed here; one task relays them
    (:meth:`relay`), others may add a control frame (:meth:`control`). Writes
    never overlap: a write waits for the one under way.
    """

    __slots__ = ("_released", "busy", "closed", "pending", "send", "source")

    def __init__(self, send: Callable[[bytes | memoryview], Awaitable[None]], source: FrameTracker) -> None:
        self.send = send
        self.source = source
        self.busy = False
        #: A close frame went out (relayed or the relay's own): nothing more goes.
        self.closed = False
        #: Control frames waiting for a frame boundary.
        self.pending: list[bytes] = []
        self._released: trio.Event | None = None

    @property
    def free(self) -> bool:
        """A control frame could go now: at a frame boundary, no write under way."""
        return not self.busy and self.source.at_boundary and not self.closed

    async def relay(self, out: bytes | memoryview) -> None:
        """Relayed bytes (``source`` has just returned them), with what is pending spliced in at a boundary."""
        if self.closed:
            return
        if self.pending:
            boundary = self.source.boundary
            if self.source.closed:
                self.pending.clear()  # nothing of ours after the peer's close frame
            elif boundary >= 0:
                out = b"".join((out[:boundary], *self.pending, out[boundary:]))
                self.pending.clear()
        await self._write(out)
        if self.source.closed:
            self.closed = True
        elif self.pending and self.source.at_boundary:
            frames = b"".join(self.pending)
            self.pending.clear()
            await self._write(frames)

    async def control(self, frame: bytes) -> None:
        """A control frame of the relay's: now if :attr:`free`, else at the next frame boundary."""
        if self.closed:
            return
        if not self.free:
            self.pending.append(frame)
            return
        await self._write(frame)

    async def close(self, code: int, reason: str, *, masked: bool) -> bool:
        """The relay's close frame, if it can go now (between frames, nothing closed yet); whether it went."""
        if not self.free:
            return False
        self.closed = True
        await self._write(close_frame(code, reason, masked=masked))
        return True

    async def _write(self, data: bytes | memoryview) -> None:
        while self.busy:
            if self._released is None:
                self._released = trio.Event()
            await self._released.wait()
        self.busy = True
        try:
            await self.send(data)
        finally:
            self.busy = False
            if self._released is not None:
                self._released.set()
                self._released = None


class Relay:
    """One websocket, relayed; see the module docstring.

    The :class:`trioproxy.websocket_port.ClientSink` the client's port gives
    its bytes to, and what the keepalive watches (``closed``, ``last_heard``,
    ``ping()``, ``fail()``). ``ended`` is why it ends, first come:
    ("closed", 1000, "") after both close frames passed, ("client" or "app",
    code, reason) for the side that broke a rule (code: what it gets) or went
    (code None); None until then, and at shutdown.
    """

    __slots__ = ("_client_done", "_client_over", "app", "closed", "down", "ended", "last_heard", "metrics", "port",
                 "scope", "timeout", "to_app", "to_client", "touch", "up", "what")

    def __init__(
        self, app: trio.abc.Stream, port: ClientPort, *, limit: int, close_timeout_s: float,
        touch: Callable[[], None], metrics: Metrics, what: str,
    ) -> None:
        self.app = app
        self.port = port
        self.up = FrameTracker(from_client=True, limit=limit)  # client to app
        self.down = FrameTracker(from_client=False, limit=limit)  # app to client
        self.to_app = _Out(app.send_all, self.up)
        self.to_client = _Out(port.write, self.down)
        self.ended: tuple[str, int | None, str] | None = None
        self.scope: trio.CancelScope | None = None
        self.timeout = close_timeout_s
        self.touch = touch
        self.metrics = metrics
        self.what = what
        #: The client's connection has ended (the keepalive stops looking).
        self.closed = False
        #: trio.current_time() when the client last sent anything.
        self.last_heard = trio.current_time()
        #: Set once the client's close frame passed or its connection ended (made when first awaited).
        self._client_done: trio.Event | None = None
        self._client_over = False

    # --- from the client (the connection's reader task) ----------------------------------------------------------

    async def from_client(self, data: bytes) -> None:
        self.last_heard = trio.current_time()
        up = self.up
        if up.stopped:
            return  # after its close frame, or a breach: nothing more is read into the app
        before = up.payload
        out = up.feed(data)
        self.metrics.bytes_received += up.payload - before
        if out:
            self.touch()
            try:
                await self.to_app.relay(out)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                self.end("app", None, "")
                return
        if up.error is not None:
            logger.info("%s: the client broke the websocket protocol (%s): closing with %d",
                        self.what, up.error[1], up.error[0])
            self.end("client", *up.error)
            self._client_is_done()
        else:
            if up.closed:
                self._client_is_done()
            if up.closed or self.down.closed:
                self._closing(push=True)

    def client_bulk(self) -> int:
        """Bytes a bulk read from the client would take now (inside a big payload): see :mod:`.ws_bulk`."""
        return ws_bulk.wanted(self.up)

    async def from_client_fd(self, fd: int, want: int) -> int:
        """One bulk read from the client's readable ``fd`` (:meth:`client_bulk` said ``want``), written to
        the app as read: the bytes moved, 0 at the client's EOF. The read's ``OSError`` (``BlockingIOError``
        if nothing was there) is the server's to handle; a failed write to the app ends the relay.

        A bulk read stays inside one frame's payload, so no header, close frame or pong passes here
        (:meth:`from_client` sees every one of them)."""
        self.last_heard = trio.current_time()
        try:
            n = await ws_bulk.relay(fd, want, self.up, self.to_app.relay)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.end("app", None, "")
            return -1  # not 0: the client's side goes on until the relay's end reaches it
        if n:  # (the payload's bytes were counted at its header)
            self.touch()
            if self.down.closed:
                self._closing(push=True)
        return n

    def client_closed(self) -> None:
        self.closed = True
        self._client_is_done()
        if self._both_closes_passed:
            self.end("closed", 1000, "")
        else:
            self.end("client", None, "")

    # --- from the app (the relaying task) -------------------------------------------------------------------------

    async def app_to_client(self, first: bytes) -> None:
        """Relay the app's bytes (``first``: those that came with its 101) until the app's side ends.

        The per-message path of this direction, so it is short: from a socket (the app's
        :class:`.eager_stream.EagerStream`), readiness first and then one read, no stream or
        socket wrapper in between (their frames would be kept by every idle websocket), no
        read tried before waiting (it would mostly fail: a syscall per message). The
        descriptor is looked up before each read with no checkpoint in between (-1 once the
        socket is closed, never another connection's). Any other stream is read with its
        ``receive_some``.
        """
        sock = getattr(self.app, "socket", None)
        if not isinstance(sock, trio.socket.SocketType):
            sock = None
        wait_readable = trio.lowlevel.wait_readable
        down = self.down
        data: bytes | None = first
        try:
            while True:
                if data:
                    was_closed = down.closed
                    before = down.payload
                    out = down.feed(data)
                    self.metrics.bytes_sent += down.payload - before
                    if out:
                        self.touch()
                        await self.to_client.relay(out)
                    if down.error is not None:
                        logger.info("%s: the app broke the websocket protocol (%s): closing with %d",
                                    self.what, down.error[1], down.error[0])
                        self.end("app", *down.error)
                        return
                    if (down.closed or self.up.closed) and not self._closing(push=not was_closed):
                        return
                if sock is None:
                    data = bytes(await self.app.receive_some(WS_APP_RECEIVE_BYTES))
                else:
                    await wait_readable(sock)
                    fd = sock.fileno()
                    if fd < 0:
                        break  # closed under it
                    try:
                        if want := ws_bulk.wanted(down):  # inside a big payload: read it whole
                            data = None
                            if not await ws_bulk.relay(fd, want, down, self.to_client.relay):
                                break
                            self.touch()
                            if self.up.closed:
                                self._closing(push=True)
                            continue
                        data = os.read(fd, WS_APP_RECEIVE_BYTES)
                    except (BlockingIOError, InterruptedError):
                        data = None
                        continue
                if not data:
                    break
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        if down.closed:  # the app closed its connection after its close frame: the client's answer ends it
            await self._client_answer()
            self.end("closed", 1000, "")
        else:
            self.end("app", None, "")

    @property
    def _both_closes_passed(self) -> bool:
        """Each side's close frame has been relayed whole to the other (written, not only read)."""
        return self.up.closed and self.to_app.closed and self.down.closed and self.to_client.closed

    def _closing(self, *, push: bool) -> bool:
        """A close frame has passed one way: False once both have (the websocket is over).

        Until then the other side's answer is awaited for ``timeout`` from the last
        bytes it sent (``push``: bytes of the side still open just came): a side may
        go on sending before it answers (RFC 6455 §5.5.1), and its frames still in
        flight must not be cut (a close frame could not follow half a frame).
        """
        if self._both_closes_passed:
            self.end("closed", 1000, "")
            return False
        if push and self.scope is not None:
            self.scope.deadline = trio.current_time() + self.timeout
        return True

    # --- endings ----------------------------------------------------------------------------------------------------

    def end(self, side: str, code: int | None, reason: str) -> None:
        if self.ended is None:
            self.ended = (side, code, reason)
        if self.scope is not None:
            self.scope.cancel()

    def goodbye(self) -> bool:
        """Shutdown: close 1001 to the client at once, synchronously (see ``LongLived.go_away``).

        False if it could not go whole at once (a write under way, in the middle of a
        frame, TLS...): :meth:`finish` sends it, or the rest of it, then.
        """
        out = self.to_client
        if not out.free or self.closed:
            return False
        frame = close_frame(GOING_AWAY, "server shutting down", masked=False)
        sent = self.port.write_now(frame)
        if sent <= 0:
            return False
        out.closed = True  # what the kernel did not take goes first at the end (ClientPort.end)
        return sent == len(frame)

    async def finish(self) -> None:
        """After the relaying: the close frames still owed, the answers awaited; bounded by the caller."""
        if self.ended is None and (self.up.closed or self.down.closed):
            await self._answer_for_the_other_side()  # a closing handshake not answered in time
            return
        side, code, reason = self.ended or ("shutdown", GOING_AWAY, "server shutting down")
        if side == "closed":
            return
        if code is None and self.up.closed != self.down.closed:
            # One side closed (its close frame passed), the other went without answering.
            await self._answer_for_the_other_side()
            return
        if side == "client":
            if code is not None and not self.closed:
                await self.to_client.close(code, reason, masked=False)
            await self.port.end()  # failing the client's connection: no wait for its answer (RFC 6455 §7.1.7)
            if not self.up.closed and await self.to_app.close(GOING_AWAY, "the client went away", masked=True):
                await self._app_answer()
        elif side == "app":
            if code is not None:
                await self.to_app.close(code, reason, masked=True)
            if not self.down.closed and not self.closed:
                sent = await self.to_client.close(code if code is not None else INTERNAL_ERROR,
                                                  reason or "the app's connection ended", masked=False)
                if sent:
                    await self._client_answer()
        else:  # shutdown
            if not self.closed:
                await self.to_client.close(GOING_AWAY, reason, masked=False)  # unless goodbye() sent it
            if await self.to_app.close(GOING_AWAY, reason, masked=True):
                await self._app_answer()
            await self._client_answer()

    async def _answer_for_the_other_side(self) -> None:
        """A side's close frame passed and the other never answered: the relay answers it (1000), so that
        side's closing handshake ends as it should (a server that cut its connection instead of answering,
        a client gone)."""
        if self.up.closed and not self.down.closed and not self.closed:
            await self.to_client.close(1000, "", masked=False)
        elif self.down.closed and not self.up.closed:
            await self.to_app.close(1000, "", masked=True)

    def _client_is_done(self) -> None:
        self._client_over = True
        if self._client_done is not None:
            self._client_done.set()

    async def _client_answer(self) -> None:
        """Until the client's close frame has come (or its connection has ended)."""
        if not self._client_over:
            if self._client_done is None:
                self._client_done = trio.Event()
            await self._client_done.wait()

    async def _app_answer(self) -> None:
        """Read the app's side until its close frame (or its end); nothing of it is relayed."""
        down = self.down
        try:
            while not down.stopped:
                data = bytes(await self.app.receive_some(WS_APP_RECEIVE_BYTES))
                if not data:
                    return
                down.feed(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return

    # --- the keepalive (trioproxy.proxy.ws_keepalive) --------------------------------------------------------------

    async def ping(self) -> None:
        if self.closed or self.to_client.closed:
            return
        self.up.pong = PING_PAYLOAD
        await self.to_client.control(_frames.encode(Opcode.PING, PING_PAYLOAD))

    async def fail(self, code: int, reason: str) -> None:
        self.end("client", code, reason)
