"""The compatibility modules (trioproxy.compat): each passes on the installed releases, fails loudly
on an untested one (naming the module and the version) and on a reached name that changed (naming it);
and trioproxy leaves hypercorn as it was for anyone else in the same process.

Every I/O test is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import importlib
import io
from typing import Any

import hypercorn.protocol.h11
import hypercorn.protocol.ws_stream
import pytest
import trio
import trio_websocket
from hypercorn.config import Config
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app

import trioproxy.run  # noqa: F401 - everything trioproxy imports to serve, imported
from trioproxy import compat
from trioproxy.compat import CompatError, probe
from trioproxy.compat.hypercorn import Worker
from trioproxy.server.tcp import StallBoundTCPServer
from trioproxy.server.ws_stream import ProxyWSStream
from trioproxy.websocket_port import PORT_EXTENSION, port_of

MODULES = sorted(compat.MODULES.items())


def _module(name: str) -> Any:
    return importlib.import_module(name)


@pytest.mark.parametrize(("dist", "name"), MODULES)
def test_the_installed_releases_pass(dist: str, name: str) -> None:
    found = _module(name).check()
    assert found.startswith(f"{dist} ") and found.split(" ", 1)[1][0].isdigit()


def test_check_all_names_every_release() -> None:
    assert [found.split()[0] for found in compat.check_all()] == list(compat.MODULES)


@pytest.mark.parametrize(("dist", "name"), MODULES)
def test_an_untested_release_fails_with_the_module_and_the_version(
    dist: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probe, "installed_version", lambda distribution: "99.0.0")
    module = _module(name)
    with pytest.raises(CompatError) as caught:
        module.check()
    message = str(caught.value)
    assert message.startswith(f"{name}: {dist} 99.0.0 is untested (read against {', '.join(module.TESTED)})")
    assert "every name it reaches is still there" in message


def test_a_patch_release_of_a_tested_series_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "installed_version", lambda distribution: "0.18.7")
    assert _module("trioproxy.compat.hypercorn").check() == "hypercorn 0.18.7"
    monkeypatch.setattr(probe, "installed_version", lambda distribution: "0.180.0")
    with pytest.raises(CompatError, match=r"0\.180\.0 is untested"):
        _module("trioproxy.compat.hypercorn").check()


def _gone() -> None:
    """A stand-in that refers to nothing: a reached name's new code that no longer does what we build on."""


#: (compat module, the object to change, its attribute, the replacement or None to delete it, what the error says)
CHANGES = [
    ("hypercorn", hypercorn.protocol.h11.H11Protocol, "_create_stream", None, "H11Protocol._create_stream is gone"),
    ("hypercorn", hypercorn.protocol.h11.H11Protocol, "_create_stream", _gone,
     "H11Protocol._create_stream no longer uses WSStream, stream"),
    ("hypercorn", hypercorn.protocol.h11.H11Protocol, "_handle_events", _gone,
     "H11Protocol._handle_events no longer uses RemoteProtocolError, error_status_hint"),
    ("hypercorn", TCPServer, "_read_data", None, "TCPServer._read_data is gone"),
    ("hypercorn", TCPServer, "run", _gone,
     "TCPServer.run no longer uses ProtocolWrapper, protocol, idle_task, _read_data"),
    ("hypercorn", hypercorn.protocol.h11.H11Protocol, "handle", _gone,
     "H11Protocol.handle no longer uses RawData, receive_data, _handle_events"),
    ("hypercorn", hypercorn.protocol.h11.H11Protocol, "_create_stream", lambda self, request: self.connection,
     "H11Protocol._create_stream no longer uses WSStream, stream"),
    ("hypercorn", hypercorn.protocol.ws_stream.WSStream, "_accept", _gone,
     "WSStream._accept no longer uses handshake, accept, connection"),
    ("hypercorn", hypercorn.protocol.ws_stream.Handshake, "accept", lambda self, protocol, headers: None,
     "Handshake.accept takes (protocol, headers), not (subprotocol, additional_headers)"),
    ("hypercorn", hypercorn.protocol.ws_stream.WSStream, "__slots__", (), "WSStream now has __slots__"),
    ("h11", importlib.import_module("h11").Connection, "start_next_cycle", None,
     "h11.Connection.start_next_cycle is gone"),
]


@pytest.mark.parametrize(("module", "owner", "attr", "replacement", "says"), CHANGES,
                         ids=[f"{c[0]}-{c[1].__name__}.{c[2]}" for c in CHANGES])
def test_a_changed_reach_fails_with_its_name(
    module: str, owner: Any, attr: str, replacement: Any, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if replacement is None:
        monkeypatch.delattr(owner, attr)
    else:
        monkeypatch.setattr(owner, attr, replacement, raising=False)
    name = f"trioproxy.compat.{module}"
    with pytest.raises(CompatError) as caught:
        _module(name).check()
    message = str(caught.value)
    assert message.startswith(f"{name}: ") and says in message
    assert "is untested" not in message  # the installed release: only the change is reported


# --- no process-wide change --------------------------------------------------------------------------------------


async def _websocket_echo_server(listener: trio.SocketListener, serve_one: Any, seen: dict[str, Any]) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        seen["port"] = port_of(scope)
        seen["extensions"] = set(scope.get("extensions") or {})
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": "echo " + message["text"]})
        await send({"type": "websocket.close", "code": 1000})

    stream = await listener.accept()
    await serve_one(app, stream)


async def _talk(listener: trio.SocketListener) -> str:
    host, port = listener.socket.getsockname()[:2]
    async with trio_websocket.open_websocket(host, port, "/ws", use_ssl=False) as ws:
        await ws.send_message("hello")
        reply = await ws.get_message()
    assert isinstance(reply, str)
    return reply


async def _trioproxy_connection(app: Any, stream: Any) -> None:
    await StallBoundTCPServer(Worker(app, Config()), stream, stall_s=5)


async def _hypercorn_connection(app: Any, stream: Any) -> None:
    config = Config()
    await TCPServer(wrap_app(app, config.wsgi_max_body_size, "asgi"), config, WorkerContext(None),
                    ConnectionState({}), stream)


async def test_trioproxy_leaves_hypercorn_as_it_was_for_anyone_else() -> None:
    own_stream = hypercorn.protocol.ws_stream.WSStream
    own_protocol = hypercorn.protocol.h11.H11Protocol
    with trio.fail_after(10):
        for serve_one, stream_class in ((_trioproxy_connection, ProxyWSStream), (_hypercorn_connection, None)):
            seen: dict[str, Any] = {}
            (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_websocket_echo_server, listener, serve_one, seen)
                assert await _talk(listener) == "echo hello"
            await listener.aclose()
            if stream_class is None:  # hypercorn's own server, after trioproxy served a websocket
                assert seen["port"] is None and PORT_EXTENSION not in seen["extensions"]
            else:
                assert type(seen["port"]) is stream_class
            assert "websocket.http.response" in seen["extensions"]  # hypercorn's own extension stays
    assert hypercorn.protocol.h11.WSStream is own_stream
    assert hypercorn.protocol.h11.H11Protocol is own_protocol
    assert "__setattr__" not in vars(own_protocol) and "__setattr__" not in vars(own_stream)


def test_doctor_reports_the_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    from trioproxy.ops.doctor import Report, check_dependencies

    report = Report(io.StringIO())
    check_dependencies(report)
    assert report.failed == 0 and report.lines[0][1].startswith("dependencies as tested: hypercorn ")
    monkeypatch.setattr(probe, "installed_version", lambda distribution: "99.0.0")
    report = Report(io.StringIO())
    check_dependencies(report)
    assert report.failed == 1
    assert report.lines[0][1].startswith("trioproxy.compat.hypercorn: hypercorn 99.0.0 is untested")
