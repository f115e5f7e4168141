"""JupyterHub login (``--authtype oauth``), written for Trio without the ``jupyterhub`` package.

The flow is the Hub's own (services/auth.py, HubOAuth):

* An anonymous browser navigation gets a 302 to the Hub's authorize URL with
  our client id, redirect URI, a random ``state`` and a PKCE S256 challenge.
  The login in progress lives in a sealed cookie named after its state
  (``<cookie>-oauth-state-<8 hex>``), so logins in two tabs do not collide
  and a restart of trioproxy loses none of them when the secret is kept.
  Anything else anonymous (POST, fetch, websocket, API call) gets 403.
* ``{prefix}/oauth_callback`` checks the state against its cookie, trades the
  code for a token (the server's API token is the client secret), asks the
  Hub who that is, checks they may enter, sets the login cookie (the sealed
  token) and sends them back to the page they first asked for; only ever a
  page of this server.
* Every request then carries the cookie, an ``Authorization: token ...``
  header, or, on a websocket handshake only, ``?token=``. The token's owner
  comes from the Hub (``GET /user``), cached for ``--auth-cache-ttl``.
* Who may enter: the Hub's access scopes (which carry its roles and
  sharing), the owner, members of ``$JUPYTERHUB_GROUP``, anyone with
  ``$JUPYTERHUB_ANYONE=1``. Others get a 403 page saying who they are.
* A cookie-authenticated websocket or unsafe request from another site is
  refused (``Sec-Fetch-Site``/``Origin``): the app itself needs no token.
* The app never sees our credentials: the login and state cookies,
  ``jupyterhub-session-id``, the Hub's ``_xsrf`` (unless the app uses an
  ``_xsrf`` cookie of its own), the Authorization header or ``?token=`` that
  authenticated the request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from . import _cookies, _headers, _pages, _scopes
from ._auth import Passage, Reply, browser_scheme, is_cross_site, passage, split_target
from ._hub_api import HubAPI, HubRefused, HubUnavailable
from ._metrics import Metrics
from ._pages import Send
from ._settings import HubSettings, ProxySettings
from ._tokens import TokenCache

logger = logging.getLogger(__name__)

Headers = list[tuple[bytes, bytes]]

#: Methods a cross-site page may use with the user's login cookie.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The Hub's session cookie (Path=/): it reaches us, never the app.
HUB_SESSION_COOKIE = "jupyterhub-session-id"
XSRF_COOKIE = "_xsrf"


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}".lower()
    return None


def safe_next(next_url: str, prefix: str) -> str:
    """Where to land after login: ``next_url`` if it is a page of this server, else its home."""
    home = prefix + "/"
    if (
        isinstance(next_url, str)
        and next_url.startswith(home)
        and not next_url.startswith("//")
        and "\\" not in next_url
        and not any(c in next_url for c in "\r\n\t")
    ):
        return next_url
    return home


def token_from_header(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """``Authorization: token X`` or ``bearer X`` (any case); other schemes are the app's."""
    value = _headers.get(headers, b"authorization")
    if not value:
        return None
    scheme, _, token = value.decode("latin-1").strip().partition(" ")
    if scheme.lower() in ("token", "bearer") and token.strip():
        return token.strip()
    return None


def token_from_query(query: bytes) -> str | None:
    values = parse_qs(query.decode("latin-1"), keep_blank_values=False).get("token")
    return values[0] if values else None


class HubOAuth:
    def __init__(
        self,
        hub: HubSettings,
        proxy: ProxySettings,
        api: HubAPI,
        *,
        app_uses_xsrf: Callable[[], bool] = lambda: False,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.hub = hub
        self.proxy = proxy
        self.api = api
        self.tokens = TokenCache(api.user_for_token, hub.auth_cache_ttl_s, hub.auth_cache_entries)
        self.sealer = _cookies.Sealer(hub.cookie_secret)
        self.cookie_name = hub.cookie_name
        self.state_prefix = self.cookie_name + "-oauth-state"
        self.cookie_path = "/" if hub.cookie_host_prefix else proxy.prefix + "/"
        self.home = proxy.prefix + "/"
        self.groups = frozenset(g.strip() for g in hub.group.split(",") if g.strip())
        self.trusted_origins = frozenset(o for o in (_origin(hub.public_url), _origin(hub.host)) if o)
        self.app_uses_xsrf = app_uses_xsrf

    # --- who may enter ---------------------------------------------------------------

    def allowed(self, model: dict[str, Any]) -> bool:
        name = str(model.get("name") or "")
        groups = frozenset(str(g) for g in model.get("groups") or ())
        if model.get("kind", "user") == "user":
            if self.hub.anyone:
                return True
            if self.hub.user and name == self.hub.user:
                return True
            if self.groups & groups:
                return True
        if self.hub.access_scopes:
            who = _scopes.Who(
                user=name,
                groups=groups,
                owner=self.hub.user,
                owner_groups=groups if name == self.hub.user else frozenset(),
            )
            return _scopes.grants(model.get("scopes") or (), self.hub.access_scopes, who)
        return False

    # --- cookies ---------------------------------------------------------------------

    def _own_cookie(self, name: str) -> bool:
        if name == self.cookie_name or name.startswith(self.state_prefix) or name == HUB_SESSION_COOKIE:
            return True
        return name == XSRF_COOKIE and not self.app_uses_xsrf()

    def _policy(self, headers: Sequence[tuple[bytes, bytes]], scheme: str) -> _cookies.CookiePolicy:
        secure = self.hub.cookie_host_prefix or browser_scheme(headers, scheme, self.hub.public_url) == "https"
        return _cookies.policy_from_options(self.cookie_path, secure, self.hub.cookie_options)

    def _state_cookie_name(self, state: str) -> str:
        return f"{self.state_prefix}-{hashlib.sha256(state.encode()).hexdigest()[:8]}"

    # --- every request ---------------------------------------------------------------

    async def admit(self, scope: dict[str, Any], send: Send, target: bytes) -> Passage | None:
        headers = scope["headers"]
        websocket = scope["type"] == "websocket"
        method = "GET" if websocket else scope.get("method", "GET")
        _, query = split_target(target)

        token = token_from_header(headers)
        source = "header"
        if token is None and (websocket or self.hub.allow_token_in_url):
            token = token_from_query(query)
            source = "url"
        if token is not None:
            model = await self._user(scope, send, token)
            if model is False:
                return None
            if model is None:
                logger.warning("refused a request with a token the Hub does not honour (%s)", _where(scope))
                await self._page(scope, send, 403, "403: Token not valid",
                                 ["The token sent with this request is not valid: the Hub does not know it, "
                                  "or it expired or was revoked."])
                return None
            if not self.allowed(model):
                await self._deny(scope, send, model)
                return None
            kept = [(n, v) for n, v in headers if n != b"authorization"] if source == "header" else headers
            return self._passage(kept, target, model, drop_args=("token",) if source == "url" else ())

        clear: Headers = []
        sealed = _cookies.get(headers, self.cookie_name)
        if sealed:
            token = self.sealer.unseal(self.cookie_name, sealed, self.hub.login_cookie_max_age_s)
            model = None
            if token is not None:
                model = await self._user(scope, send, token)
                if model is False:
                    return None
            if model is None:
                clear.append((b"set-cookie", _cookies.clear_cookie(self.cookie_name, self._policy(headers, scope.get("scheme", "http")))))
            else:
                if (websocket or method not in SAFE_METHODS) and is_cross_site(
                    headers, scope.get("scheme", "http"), self.trusted_origins
                ):
                    logger.warning("refused a cross-site %s for %s (%s)", "websocket" if websocket else method,
                                   model.get("name"), _where(scope))
                    await self._page(scope, send, 403, "403: Cross-site request refused",
                                     ["A page from another site tried to use your login on this server."])
                    return None
                if not self.allowed(model):
                    await self._deny(scope, send, model)
                    return None
                return self._passage(headers, target, model)

        if self._is_navigation(scope, headers, method):
            location, cookies = self._start_login(scope, headers)
            await _pages.respond(scope, send, 302, _pages.redirect_body(location),
                                 [(b"location", location), *clear, *cookies])
            return None
        await self._page(scope, send, 403, "403: Login required",
                         ["This server needs a JupyterHub login. Open it in a browser to log in, "
                          "or send an API token in an 'Authorization: token ...' header."], extra=clear)
        return None

    def _passage(
        self, headers: Sequence[tuple[bytes, bytes]], target: bytes, model: dict[str, Any], drop_args: Sequence[str] = ()
    ) -> Passage:
        kept = _cookies.without(headers, self._own_cookie)
        return passage(
            kept,
            target,
            user=model,
            forward_user_info=self.proxy.forward_user_info,
            query_user_info=self.proxy.query_user_info,
            drop_query_args=drop_args,
        )

    async def _user(self, scope: dict[str, Any], send: Send, token: str) -> dict[str, Any] | None | bool:
        """The token's owner, None if the Hub does not honour it, False once a 502 went out."""
        try:
            return await self.tokens.user(token)
        except (HubUnavailable, HubRefused) as exc:
            logger.error("cannot check a login with the Hub: %s", exc)
            await self._page(scope, send, 502, "502: JupyterHub unavailable",
                             ["trioproxy could not ask JupyterHub whether you may enter.", str(exc),
                              "Try again in a moment."])
            return False

    def _is_navigation(self, scope: dict[str, Any], headers: Sequence[tuple[bytes, bytes]], method: str) -> bool:
        if scope["type"] != "http" or method not in ("GET", "HEAD"):
            return False
        mode = _headers.get(headers, b"sec-fetch-mode")
        if mode is not None and mode.lower() not in (b"navigate", b"nested-navigate"):
            return False
        return (_headers.get(headers, b"x-requested-with") or b"").lower() != b"xmlhttprequest"

    async def _deny(self, scope: dict[str, Any], send: Send, model: dict[str, Any]) -> None:
        name = str(model.get("name"))
        kind = str(model.get("kind") or "user")
        logger.warning("refused %s %s: not allowed on this server (%s)", kind, name, _where(scope))
        owner = self.hub.user or "another user"
        hub = self.hub.host + self.hub.hub_prefix
        await self._page(
            scope, send, 403, "403: Not your server",
            [f"You are logged in to JupyterHub as {kind} {name}, but this server belongs to {owner} "
             "and JupyterHub has not given you access to it.",
             "Ask its owner to share it with you."],
            links=[("Your JupyterHub home", hub + "home"), ("Log out of JupyterHub", hub + "logout")],
        )

    async def _page(
        self,
        scope: dict[str, Any],
        send: Send,
        status: int,
        title: str,
        paragraphs: list[str],
        *,
        extra: Headers = (),  # type: ignore[assignment]
        links: Sequence[tuple[str, str]] = (),
    ) -> None:
        await _pages.respond(scope, send, status, _pages.render(title, paragraphs, links=links), list(extra))

    # --- the login --------------------------------------------------------------------

    def _start_login(self, scope: dict[str, Any], headers: Sequence[tuple[bytes, bytes]]) -> tuple[bytes, Headers]:
        state = generate_token(24)
        verifier = generate_token(64)
        raw = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string") or b""
        next_url = (raw + (b"?" + query if query else b"")).decode("latin-1")
        name = self._state_cookie_name(state)
        value = self.sealer.seal(name, json.dumps({"s": state, "n": next_url, "v": verifier}))
        policy = self._policy(headers, scope.get("scheme", "http"))
        cookies: Headers = []
        pending = [k for k, _ in _cookies.parse(headers) if k.startswith(self.state_prefix)]
        if len(pending) >= self.hub.state_cookies_max:
            cookies += [(b"set-cookie", _cookies.clear_cookie(k, policy)) for k in pending]
        cookies.append((b"set-cookie", _cookies.set_cookie(name, value, policy, max_age=self.hub.state_max_age_s)))
        params = urlencode(
            {
                "client_id": self.hub.client_id,
                "redirect_uri": self.hub.oauth_callback_url,
                "response_type": "code",
                "state": state,
                "code_challenge": create_s256_code_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        location = f"{self.hub.host}{self.hub.hub_prefix}api/oauth2/authorize?{params}"
        return location.encode("latin-1"), cookies

    async def callback(self, scope: dict[str, Any]) -> Reply:
        """``{prefix}/oauth_callback``: finish a login the Hub sent back."""
        headers = scope["headers"]
        policy = self._policy(headers, scope.get("scheme", "http"))
        args = {k: v[0] for k, v in parse_qs((scope.get("query_string") or b"").decode("latin-1")).items()}
        retry = [("Log in again", self.home)]
        if "error" in args:
            why = args.get("error_description") or args["error"]
            return self._reply(400, "400: Login failed", [f"JupyterHub did not log you in: {why}"], links=retry)
        code, state = args.get("code"), args.get("state")
        if not code:
            return self._reply(400, "400: Login failed", ["The login callback came without a code."], links=retry)
        if not state:
            return self._reply(400, "400: Login failed", ["The login callback came without a state."], links=retry)

        name = self._state_cookie_name(state)
        sealed = _cookies.get(headers, name)
        data = None
        if sealed:
            raw = self.sealer.unseal(name, sealed, self.hub.state_max_age_s)
            try:
                data = json.loads(raw) if raw else None
            except ValueError:
                data = None
        if not isinstance(data, dict) or not hmac.compare_digest(str(data.get("s", "")), state):
            if await self._logged_in(headers):
                # A login finished in another tab, or the back button: nothing to do.
                return Reply(302, [(b"location", self.home.encode("latin-1"))], _pages.redirect_body(self.home.encode()))
            logger.warning("login callback with a state that matches no login started here")
            clear = [(b"set-cookie", _cookies.clear_cookie(name, policy))] if sealed else []
            return self._reply(403, "403: Login state does not match",
                               ["This login was not started in this browser, or it took too long "
                                "(or cookies are blocked). Try logging in again."], links=retry, extra=clear)
        clear_state = (b"set-cookie", _cookies.clear_cookie(name, policy))
        try:
            token, expires_in = await self.api.token_for_code(code, self.hub.oauth_callback_url, str(data.get("v", "")))
            model = await self.api.user_for_token(token)
        except HubRefused as exc:
            self.metrics.logins["failed"] += 1
            logger.warning("login failed: %s", exc)
            return self._reply(403, "403: Login failed", [str(exc), "Try logging in again."],
                               links=retry, extra=[clear_state])
        except HubUnavailable as exc:
            self.metrics.logins["failed"] += 1
            logger.error("login failed: %s", exc)
            return self._reply(502, "502: JupyterHub unavailable",
                               ["The login could not be completed.", str(exc)], links=retry, extra=[clear_state])
        if model is None:
            return self._reply(403, "403: Login failed", ["JupyterHub did not recognise the new login."],
                               links=retry, extra=[clear_state])
        self.tokens.put(token, model)
        if not self.allowed(model):
            self.metrics.logins["denied"] += 1
            logger.warning("refused %s %s at login: not allowed on this server", model.get("kind"), model.get("name"))
            hub = self.hub.host + self.hub.hub_prefix
            kind, who = model.get("kind") or "user", model.get("name")
            return self._reply(
                403, "403: Not your server",
                [f"You are logged in to JupyterHub as {kind} {who}, but this server belongs to "
                 f"{self.hub.user or 'another user'} and JupyterHub has not given you access to it."],
                links=[("Your JupyterHub home", hub + "home"), ("Log out of JupyterHub", hub + "logout")],
                extra=[clear_state],
            )
        self.metrics.logins["ok"] += 1
        logger.info("login: %s %s", model.get("kind") or "user", model.get("name"))
        max_age = min(expires_in or self.hub.login_cookie_max_age_s, self.hub.login_cookie_max_age_s)
        login = _cookies.set_cookie(self.cookie_name, self.sealer.seal(self.cookie_name, token), policy, max_age=max_age)
        location = safe_next(str(data.get("n", "")), self.proxy.prefix).encode("latin-1")
        return Reply(302, [(b"location", location), clear_state, (b"set-cookie", login)],
                     _pages.redirect_body(location))

    async def _logged_in(self, headers: Sequence[tuple[bytes, bytes]]) -> bool:
        sealed = _cookies.get(headers, self.cookie_name)
        token = self.sealer.unseal(self.cookie_name, sealed, self.hub.login_cookie_max_age_s) if sealed else None
        if token is None:
            return False
        try:
            model = await self.tokens.user(token)
        except (HubUnavailable, HubRefused):
            return False
        return model is not None and self.allowed(model)

    def _reply(
        self, status: int, title: str, paragraphs: list[str], *, links: Sequence[tuple[str, str]] = (),
        extra: Headers = (),  # type: ignore[assignment]
    ) -> Reply:
        return Reply(status, list(extra), _pages.render(title, paragraphs, links=links))


def _where(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    path = scope.get("path", "")
    return f"{path} from {client[0]}" if client else path
