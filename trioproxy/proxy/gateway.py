"""What every proxied request shares: the app's state, the connection pool, the
activity tracker and the register of long-lived streams; and the gate a request
passes before it may reach the app (starting: wait a bounded time, then 503;
down: 502 with the reason and the app's last lines).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from ..child.connection import Pool, Target, TcpTarget
from ..child.supervisor import AppState, Status
from ..hub.activity import ActivityTracker
from ..metrics import Metrics
from ..rules import cookies as _cookies
from ..rules import hub_cookies as _hub_cookies
from ..rules import pages as _pages
from ..rules import rewrite as _rewrite
from ..rules import routing as _routing
from ..rules import scopes as _scopes
from ..rules.pages import Send
from ..settings import ERROR_PAGE_TAIL_LINES, OWNER_PAGE_WAIT_S, STARTING_REFRESH_S, ProxySettings, Settings
from .ws_keepalive import KeepAlive

logger = logging.getLogger("trioproxy.proxy")


def look_of(settings: Settings) -> _pages.Look:
    """The look of this process's pages: the Hub's logo and links when a Hub spawned it (its
    API token is there: ``--authtype none`` on its own, e.g. ``make demo``, has none)."""
    hub = settings.hub
    return _pages.hub_look(with_hub=bool(hub.api_token), host=hub.host, hub_prefix=hub.hub_prefix,
                           prefix=settings.proxy.prefix)



class LongLived:
    """Register of websocket bridges and event streams, so shutdown can end them at once.

    Each registers a cancel scope, and may register a ``goodbye``: a
    synchronous call that says goodbye at once (a websocket's close 1001).
    :meth:`go_away` first calls every goodbye, in one loop, then cancels every
    scope; the owners, cancelled, finish properly (close handshakes, the last
    chunk of an event stream), concurrently, each bounded. Goodbyes first:
    through the tasks, each websocket's 1001 waited for a scheduler pass per
    step of its write, behind every other task's (1,000 websockets: the last
    1001 some 80-200 ms after SIGTERM; in one loop, all of them within ~15 ms).
    """

    def __init__(self) -> None:
        self.going_away = False
        self._scopes: dict[trio.CancelScope, Callable[[], object] | None] = {}

    def __len__(self) -> int:
        return len(self._scopes)

    @contextlib.contextmanager
    def register(self, goodbye: Callable[[], object] | None = None) -> Iterator[trio.CancelScope]:
        with trio.CancelScope() as scope:
            if self.going_away:
                scope.cancel()
            self._scopes[scope] = goodbye
            try:
                yield scope
            finally:
                self._scopes.pop(scope, None)

    def go_away(self) -> int:
        self.going_away = True
        registered = list(self._scopes.items())
        said = tried = 0
        for _, goodbye in registered:
            if goodbye is not None:
                tried += 1
                try:
                    said += bool(goodbye())
                except Exception as exc:  # one broken goodbye must not keep the others waiting
                    logger.debug("shutdown: a goodbye failed: %r", exc)
        for scope, _ in registered:
            scope.cancel()
        if tried:
            logger.info("shutdown: close 1001 written at once to %d of %d websocket(s)", said, tried)
        return len(registered)


@dataclass
class Gateway:
    """Shared per-process proxy state (one instance, built by ``_run``)."""

    settings: ProxySettings
    state: AppState
    pool: Pool
    tracker: ActivityTracker
    long_lived: LongLived = field(default_factory=LongLived)
    #: Pings silent websocket clients (its watcher runs in the root nursery).
    keepalive: KeepAlive = field(init=False)
    metrics: Metrics = field(default_factory=Metrics)
    #: The app sets an ``_xsrf`` cookie of its own (jupyter-server, Voila): the
    #: login does not treat a cookie of that name as the Hub's.
    app_uses_xsrf: bool = False

    #: Anyone may see the app's output (--authtype none with --public-controls).
    logs_for_all: bool = False
    #: trioproxy's login cookie (``HubSettings.cookie_name``; '' without one).
    own_cookie: str = ""
    #: The pages' look: the Hub's logo and links (``_pages.hub_look``); plain without a Hub.
    look: _pages.Look = _pages.PLAIN

    #: Which of the app's response headers are rewritten (the options), and the prefix as browsers write it.
    rewrites: _rewrite.Rewrites = field(init=False)
    _prefix: bytes = field(init=False, default=b"")
    #: The app's loopback ``host:port`` spellings, for the address they were made for.
    _app_hosts: tuple[Target | None, frozenset[bytes]] = field(init=False, default=(None, frozenset()))
    #: __Host- cookies of the app already warned about (once each).
    _host_cookies_warned: set[str] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.keepalive = KeepAlive(self.settings.ws_ping_interval_s, self.settings.ws_ping_timeout_s)
        s = self.settings
        self.rewrites = _rewrite.Rewrites(redirects=s.rewrite_redirects, cookies=s.rewrite_cookies,
                                          keep_domain=s.keep_cookie_domain)
        self._prefix = _routing.prefix_bytes(s.prefix)

    def may_see_logs(self, scope: dict[str, Any]) -> bool:
        """The app's output is the owner's (``_scopes.control_access``, decided at admission and
        carried by the passage): other users, admins and the anonymous never see it."""
        if self.logs_for_all:
            return True
        passage = scope.get("trioproxy.passage")
        return passage is not None and passage.controls == _scopes.OWNER

    def app_set_cookies(self, headers: list[tuple[bytes, bytes]], what: str) -> list[tuple[bytes, bytes]]:
        """The app's response headers without any Set-Cookie of trioproxy's or the Hub's cookies.

        An app that could set or delete one could fix a login session on the Hub
        or on trioproxy, or log its user out. Each one dropped is logged by name
        (never its value); ``what`` names the response.
        """
        kept, dropped = _cookies.without_set_cookies(
            headers, lambda name: _hub_cookies.is_credential(name, own=self.own_cookie)
        )
        for name in dropped:
            logger.warning("%s: the app's Set-Cookie for %r was dropped (a JupyterHub or trioproxy credential cookie)",
                           what, name)
        return kept

    def app_response_headers(
        self, headers: list[tuple[bytes, bytes]], what: str, host: bytes | None = None
    ) -> list[tuple[bytes, bytes]]:
        """The app's response headers as the client gets them (every answer of the app passes here).

        Without a Set-Cookie of a credential cookie (:meth:`app_set_cookies`),
        and with the app's redirects and cookies kept inside the prefix
        (``rules/rewrite.py``: Location, Content-Location, Refresh, Set-Cookie),
        as the options say. ``host`` is the Host the browser sent (a redirect to
        it without the prefix is moved under it); a websocket's 101 needs none.
        """
        headers = self.app_set_cookies(headers, what)
        rewrites = self.rewrites
        if not (rewrites.redirects or rewrites.cookies) or not any(
            name in _REWRITTEN for name, _ in headers
        ):
            return headers
        place = _rewrite.Place(
            prefix=self._prefix,
            app_hosts=self._app_hosts_now(),
            request_host=_rewrite.request_host(host),
            keep_prefix=self.settings.keep_prefix,
        )
        out = _rewrite.response_headers(headers, place, rewrites)
        for (name, before), (_, after) in zip(headers, out, strict=True):
            if before == after:
                continue
            logger.debug("%s: the app's %s header was moved inside the prefix", what, name.decode("latin-1"))
            cookie = _cookies.set_cookie_name(before) if name == b"set-cookie" else ""
            if cookie.lower().startswith("__host-") and cookie not in self._host_cookies_warned:
                self._host_cookies_warned.add(cookie)
                logger.warning("%s: the app's cookie %r is a __Host- cookie, which browsers accept only with Path=/ "
                               "(the whole Hub's origin): with its path under the prefix they refuse it "
                               "(--no-cookie-rewrite lets it go to the whole origin)", what, cookie)
        return out

    def _app_hosts_now(self) -> frozenset[bytes]:
        """The ``host:port`` spellings of the app's current address (loopback names and its own host)."""
        address = self.state.address
        if address != self._app_hosts[0]:
            # An app on a Unix socket has no address a URL could name (its absolute URLs are on
            # the request's Host, which the rules know).
            hosts = (_rewrite.app_hosts(address.port, (*_rewrite.LOOPBACK_NAMES, address.host))
                     if isinstance(address, TcpTarget) else frozenset())
            self._app_hosts = (address, hosts)
        return self._app_hosts[1]

    async def open(self, scope: dict[str, Any], send: Send) -> Target | None:
        """The app's address once it is ready; otherwise answer ``scope`` with a page and return None."""
        state = self.state
        if state.status is Status.WAITING:
            host = _host(scope)
            state.offer_origin_host(host)
        owner = self.may_see_logs(scope)
        if state.status in (Status.STARTING, Status.WAITING):
            # A browser of the owner gets the live start-up page soon; others wait longer for the app.
            page = owner and scope["type"] == "http" and b"text/html" in (_header(scope, b"accept") or b"")
            await state.wait_settled(OWNER_PAGE_WAIT_S if page else self.settings.starting_wait_s)
        if state.status is Status.READY and state.address is not None:
            return state.address
        if state.status is Status.STOPPING:
            status = 503
            body = self.page("The server is stopping", ["This server is shutting down."], owner=owner)
            await _pages.respond(scope, send, 503, body, [(b"connection", b"close")])
        else:
            status = 503 if state.status in (Status.STARTING, Status.WAITING) else 502
            body = self.state_page(owner and scope["type"] == "http", owner)
            extra = [(b"content-security-policy", _pages.state_csp(self.look))]
            if status == 503:
                extra.append((b"retry-after", str(STARTING_REFRESH_S).encode()))
            await _pages.respond(scope, send, status, body, extra)
        self.metrics.request_done(status)
        return None

    def state_page(self, live: bool, with_output: bool) -> bytes:
        """The start-up or error page: the app's state, what trioproxy waits for and does next;
        ``with_output``: the app's last lines (the owner's); ``live``: it follows the app by the
        owner's event stream, else it reloads itself while something is under way."""
        state = self.state
        view = state.view(trio.current_time())
        tail = state.tail
        lines = tail.lines(ERROR_PAGE_TAIL_LINES) if with_output else []
        events = f"{self.settings.prefix}/_trioproxy/logs" if live else ""
        settled = state.status is Status.FAILED or (state.status is Status.DOWN and view.next_in_s is None)
        look = self.look.for_owner(with_output)
        links = ([("The JupyterHub home page (stop or start this server)", look.hub_home)]
                 if look.hub_home else [])
        if with_output:
            links.append(("The owner's controls of this server (restart, the app's whole log)", look.controls))
        return _pages.render_state(view, log_lines=lines, events=events, after=tail.count,
                                   refresh_s=None if settled else STARTING_REFRESH_S, links=links, look=look)

    def page(self, title: str, paragraphs: list[str], *, owner: bool = False,
             log_lines: Sequence[str] = ()) -> bytes:
        """One of trioproxy's pages for a proxied request, in the Hub's look (``owner``: the
        request is the owner's, whose controls the top bar links)."""
        return _pages.render(title, paragraphs, log_lines=log_lines, look=self.look.for_owner(owner))


#: The response headers :func:`_rewrite.response_headers` may change.
_REWRITTEN = frozenset({*_rewrite.LOCATION_HEADERS, b"refresh", b"set-cookie"})


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _host(scope: dict[str, Any]) -> str:
    for name, value in scope["headers"]:
        if name == b"host":
            return str(value.decode("latin-1"))
    server = scope.get("server")
    return f"{server[0]}:{server[1]}" if server else "localhost"
