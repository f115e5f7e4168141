"""``trioproxy doctor``'s websocket checks: the server's echo, on its own address and through the Hub.

"Websockets blocked by the ingress or the proxy in front" is among the most
common failures of apps behind JupyterHub. The doctor opens
``{prefix}/_trioproxy/echo`` (:mod:`.echo`, trioproxy's own: the app plays no
part) with trio-websocket, with the server's own API token (its
``access:servers!server=<user>/<name>`` scope opens the server's controls),
sends a message and expects it back:

* on the server's own address (``$JUPYTERHUB_SERVICE_URL``): does trioproxy
  itself echo?
* through the route users take (``--via URL``, else ``$JUPYTERHUB_PUBLIC_URL``):
  the Hub's proxy and whatever is in front (ingress, load balancer, nginx).

Either says exactly what went wrong: no upgrade (and the status the route
answered instead), a refusal, a redirect, a timeout, a close. The token goes
in the ``Authorization`` header only, and is never printed.
"""

from __future__ import annotations

import html
import re
import secrets
import ssl
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    ConnectionTimeout,
    DisconnectionTimeout,
    HandshakeError,
    open_websocket,
)

from ..rules.routing import ECHO
from ..settings import (
    DOCTOR_WS_CONNECT_TIMEOUT_S,
    DOCTOR_WS_ECHO_TIMEOUT_S,
    ECHO_MAX_MESSAGE_BYTES,
    AuthType,
    Settings,
)

#: What marks a page trioproxy made itself (``rules/pages.py``).
TRIOPROXY_PAGE_MARK = b'<p class="muted">trioproxy</p>'
#: How much of a page title a report quotes.
TITLE_MAX_CHARS = 120
#: nginx's lines for websockets, quoted in the fixes.
NGINX_FIX = ("pass websockets on to the Hub's proxy: nginx needs proxy_http_version 1.1; "
             'proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade"; '
             "(an ingress or load balancer: enable websockets / HTTP/1.1 upgrades for the Hub's host)")


class Reporter(Protocol):
    """Where each check's line goes (``doctor.Report``)."""

    def ok(self, what: str) -> None: ...

    def warn(self, what: str, fix: str = "") -> None: ...

    def fail(self, what: str, fix: str) -> None: ...

    def skip(self, what: str, fix: str = "") -> None: ...


class UsageProblem(ValueError):
    """A doctor option with a bad value (exit code 2, the message names it)."""


@dataclass(frozen=True)
class DoctorOptions:
    #: --via: the Hub's public address as users reach it ("" if not given).
    via: str = ""


def split_options(args: Sequence[str]) -> tuple[DoctorOptions, list[str]]:
    """The doctor's own options (``--via URL``, ``--via=URL``) out of ``args``; the rest as they were.

    Only before ``--`` (what follows is the app's command).

    Raises:
        UsageProblem: a ``--via`` without a value, or not an http(s) URL with a host.
    """
    rest: list[str] = []
    via = ""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg == "--via" or arg.startswith("--via="):
            if arg == "--via":
                if i + 1 >= len(args) or args[i + 1] == "--":
                    raise UsageProblem("--via needs a URL (the Hub's public address, e.g. https://hub.example.org)")
                value = args[i + 1]
                i += 1
            else:
                value = arg.partition("=")[2]
            parts = urllib.parse.urlsplit(value.strip())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UsageProblem(f"--via must be an http:// or https:// URL with a host, not {value[:80]!r}")
            via = value.strip()
        else:
            rest.append(arg)
        i += 1
    return DoctorOptions(via=via), rest


@dataclass(frozen=True)
class Target:
    """Where one echo is asked for."""

    #: What the report calls it.
    label: str
    host: str
    port: int
    #: The request-target: ``{prefix}/_trioproxy/echo``.
    resource: str
    tls: bool

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls else 80
        netloc = host if self.port == default else f"{host}:{self.port}"
        return f"{'wss' if self.tls else 'ws'}://{netloc}{self.resource}"


def target(label: str, base_url: str, prefix: str) -> Target | None:
    """The echo at ``base_url``'s scheme and host, under ``prefix`` ('/user/dan'); None for a URL without a host
    (its path is not used: the prefix is the path of this server wherever it is reached)."""
    parts = urllib.parse.urlsplit(base_url)
    tls = parts.scheme in ("https", "wss")
    host = parts.hostname
    if host is None:
        return None
    # A server bound to every address (0.0.0.0, ::, or '' since JupyterHub 5.3) is reached on loopback.
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError:
        return None
    return Target(label, host, port, prefix + ECHO.decode("ascii"), tls)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    #: What happened (for a failure: what failed, in a sentence).
    what: str = ""
    fix: str = ""
    #: Nothing listens there (connection refused): the server is not running.
    refused_connection: bool = False


def page_title(body: bytes | None) -> str:
    """The ``<title>`` of an HTML answer, as plain text (bounded), or ""."""
    if not body:
        return ""
    found = re.search(rb"<title>(.*?)</title>", body[:65536], re.IGNORECASE | re.DOTALL)
    if found is None:
        return ""
    text = html.unescape(found.group(1).decode("utf-8", "replace"))
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text[:TITLE_MAX_CHARS]


def _header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1", "replace")
    return ""


def describe_rejection(
    where: str, status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes | None
) -> Outcome:
    """A handshake answered without the upgrade: what that means, and the fix. Pure."""
    ours = bool(body) and TRIOPROXY_PAGE_MARK in (body or b"")
    title = page_title(body)
    said = f' ("{title}")' if title else ""
    if status == 426 and ours:  # the echo's answer to a GET (its handshake refusals have no page)
        return Outcome(False, f"{where}: the handshake reached trioproxy without its Upgrade header: "
                       "a proxy on the way strips Upgrade/Connection", NGINX_FIX)
    if 200 <= status < 300:
        return Outcome(False, f"{where} answered {status} to a websocket handshake{said}: "
                       "the proxy in front does not pass websockets", NGINX_FIX)
    if 300 <= status < 400:
        location = urllib.parse.urlsplit(_header(headers, b"location"))
        to = location.path[:TITLE_MAX_CHARS]
        if "/hub/" in to:
            return Outcome(False, f"{where} answered {status} to {to}: the Hub answered, not this server "
                           "(the Hub's proxy has no route to it: is it running, under this prefix?)",
                           "start the server from the Hub, then run the doctor again")
        scheme = f" on {location.scheme}://" if location.scheme else ""
        return Outcome(False, f"{where} answered {status} (a redirect{scheme} to {to or '?'}): "
                       "websockets do not follow redirects", "pass --via the URL users reach the Hub at "
                       "(https:// if the Hub redirects there)")
    if status in (401, 403):
        if not ours:
            return Outcome(False, f"{where} refused the handshake with {status}{said}, and not trioproxy: "
                           "something in front authenticates or filters websockets",
                           "let websocket handshakes with an Authorization header through to the Hub's proxy")
        if "Controls off" in title:
            fix = "run the doctor with the server's options: with --authtype none the echo needs --public-controls"
        else:
            fix = ("the server's token (JUPYTERHUB_API_TOKEN) must open this server: keep "
                   "access:servers!server in Spawner.server_token_scopes")
        return Outcome(False, f"{where}: trioproxy refused the server's own token with {status}{said}", fix)
    if status == 404:
        who = "trioproxy" if ours else "the route"
        return Outcome(False, f"{where}: {who} answered 404{said}: this address does not lead to this server's "
                       "trioproxy (another server at the prefix, or a trioproxy without the echo)",
                       "check the URL (--via: the Hub's address, without the server's path)")
    if status >= 500:
        return Outcome(False, f"{where} answered {status}{said}: the proxy in front could not reach the server, "
                       "or failed on the upgrade", "check the route's target and its websocket (upgrade) support")
    return Outcome(False, f"{where} refused the websocket handshake with {status}{said}: a proxy on the way "
                   "altered it (Upgrade, Connection, Sec-WebSocket-* headers)", NGINX_FIX)


async def echo(where: Target, headers: list[tuple[bytes, bytes]], ssl_context: ssl.SSLContext | None) -> Outcome:
    """Open the echo at ``where``, send one message, expect it back."""
    name = f"{where.label} ({where.url})"
    message = f"trioproxy doctor {secrets.token_hex(8)}"
    got: str | bytes | None = None
    use_ssl: bool | ssl.SSLContext = (ssl_context or ssl.create_default_context()) if where.tls else False
    try:
        async with open_websocket(
            where.host, where.port, where.resource, use_ssl=use_ssl, extra_headers=headers,
            max_message_size=ECHO_MAX_MESSAGE_BYTES, connect_timeout=DOCTOR_WS_CONNECT_TIMEOUT_S,
            disconnect_timeout=DOCTOR_WS_CONNECT_TIMEOUT_S,
        ) as ws:
            with trio.move_on_after(DOCTOR_WS_ECHO_TIMEOUT_S) as waited:
                await ws.send_message(message)
                got = await ws.get_message()
            if waited.cancelled_caught:
                return Outcome(False, f"{name}: the websocket opened, but no echo came within "
                               f"{DOCTOR_WS_ECHO_TIMEOUT_S:g} s: a proxy on the way holds its messages",
                               "check the proxy in front buffers nothing on upgraded connections")
    except ConnectionRejected as exc:
        return describe_rejection(name, exc.status_code, exc.headers, exc.body)
    except ConnectionTimeout:
        return Outcome(False, f"{name}: no answer to the websocket handshake within "
                       f"{DOCTOR_WS_CONNECT_TIMEOUT_S:g} s", "check the address is reachable from here, and "
                       "that the proxy in front answers upgrades (a firewall that drops, an HTTP/2-only hop?)")
    except ConnectionClosed as exc:
        reason = exc.reason
        code = f"{reason.code} {reason.name}" if reason is not None else "without a close code"
        return Outcome(False, f"{name}: the websocket opened, then closed ({code}) before the echo",
                       "a proxy on the way cuts websockets: check its websocket support and timeouts")
    except DisconnectionTimeout:
        if got is None:
            return Outcome(False, f"{name}: the websocket did not close in time, and no echo came",
                           "check the proxy in front passes websocket frames both ways")
    except HandshakeError as exc:
        cause = exc.__cause__
        if any(isinstance(e, ConnectionRefusedError) for e in _causes(exc)):
            return Outcome(False, f"{name}: nothing listens at {where.host}:{where.port}", "start the server",
                           refused_connection=True)
        detail = _error_text(_root(cause if cause is not None else exc))
        return Outcome(False, f"{name}: cannot connect: {detail}", _connect_fix(detail))
    except (OSError, trio.BrokenResourceError) as exc:
        detail = _error_text(_root(exc))
        return Outcome(False, f"{name}: the connection failed: {detail}", _connect_fix(detail))
    if got != message:
        return Outcome(False, f"{name}: the echo differs from the message sent: something on the way alters "
                       "websocket messages", "check the proxy in front does not rewrite websocket frames")
    return Outcome(True, f"websockets work {where.label} ({where.url} echoes)")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes, and what the exception groups among them hold (bounded)."""
    todo, seen = [exc], 0
    while todo and seen < 32:
        e = todo.pop()
        seen += 1
        yield e
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)
        if e.__cause__ is not None:
            todo.append(e.__cause__)


def _root(exc: BaseException) -> BaseException:
    """The first error at the bottom of ``exc``'s causes (what actually failed)."""
    for e in _causes(exc):
        if e.__cause__ is None and not isinstance(e, BaseExceptionGroup):
            return e
    return exc


def _error_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]


def _connect_fix(detail: str) -> str:
    if "CERTIFICATE" in detail.upper():
        return "the certificate of that address does not verify here (pass --via with the name it is issued for)"
    return "check the host and port are reachable from here (DNS, network policy)"


async def check_websockets(settings: Settings, environ: Mapping[str, str], options: DoctorOptions,
                           report: Reporter, ssl_context: ssl.SSLContext | None = None) -> None:
    """The echo on the server's own address, then through the route users take; one line each."""
    hub = settings.hub
    prefix = settings.proxy.prefix
    if hub.authtype is AuthType.NONE and not hub.public_controls:
        report.skip("websockets not checked: with --authtype none the websocket echo is off",
                    "if the server runs with --public-controls, pass it to the doctor too")
        return
    headers: list[tuple[bytes, bytes]] = []
    if hub.authtype is AuthType.OAUTH:
        if not hub.api_token:
            report.skip("websockets not checked: no JUPYTERHUB_API_TOKEN to open the echo with")
            return
        headers.append((b"authorization", f"token {hub.api_token}".encode("latin-1", "replace")))
    service_url = environ.get("JUPYTERHUB_SERVICE_URL", "")
    public = options.via or environ.get("JUPYTERHUB_PUBLIC_URL", "")
    direct_ok = False
    direct = target("on the server's own address", service_url, prefix) if service_url else None
    if direct is not None and direct.tls:
        report.skip(f"websockets not checked on JUPYTERHUB_SERVICE_URL ({direct.url}): over internal SSL the "
                    "server takes only the client certificates of the Hub and its proxy")
    elif direct is not None:
        outcome = await echo(direct, headers, ssl_context)
        if outcome.refused_connection:
            report.skip(f"websockets not checked: nothing listens at {direct.host}:{direct.port} "
                        "(JUPYTERHUB_SERVICE_URL): the server is not running here", "run the doctor while it runs")
            return
        if outcome.ok:
            direct_ok = True
            report.ok(outcome.what)
        else:
            report.fail(outcome.what + " (trioproxy itself is broken here, whatever the route)", outcome.fix)
    if not public:
        report.warn("websockets through the Hub not checked: the address users reach it at is unknown "
                    "(JUPYTERHUB_PUBLIC_URL is empty)", "pass --via https://<the Hub's address, as in the browser>")
        return
    via = target("through the Hub's route", public, prefix)
    if via is None:
        report.warn(f"websockets through the Hub not checked: {public[:80]!r} has no host",
                    "pass --via https://<the Hub's address, as in the browser>")
        return
    outcome = await echo(via, headers, ssl_context)
    if outcome.ok:
        report.ok(outcome.what)
    elif direct_ok:
        report.fail(outcome.what + " (the server itself echoes: the route in front of it is what breaks)",
                    outcome.fix)
    else:
        report.fail(outcome.what, outcome.fix)
