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
  and the token's own scopes come from the Hub (``GET /user``), cached for
  ``--auth-cache-ttl``. A malformed token (not visible ASCII, a space or a
  control character, longer than ``MAX_TOKEN_BYTES``) is a 403; the Hub is
  not asked.
* Who may enter (``_scopes.admits``): with access scopes (JupyterHub 2+), a
  token whose scopes grant this server, and nothing else: a name never opens
  it, the owner's included, so the owner's token for another server, a
  read-only token or one with no access scope is refused.
  ``$JUPYTERHUB_GROUP`` and ``$JUPYTERHUB_ANYONE=1`` admit members (or
  anyone) with a general-purpose token only (one that opens their own
  servers, ``access:servers!user=<them>``), never a token the Hub issued for
  another server. Without access scopes (older Hubs): the owner, the group,
  anyone by name. Others get a 403 page saying who they are and why.
* The owner's controls (``_scopes.control_access``, computed here into the
  passage): the owner with a token that passed the rule above; admins the
  scopes admit get the status only.
* A cookie-authenticated websocket or unsafe request from another site is
  refused (``Sec-Fetch-Site``/``Origin``): the app itself needs no token.
* The app never sees a credential (``_auth.passage``): no JupyterHub or
  trioproxy login or state cookie of any server (``_hub_cookies``), no
  Hub ``_xsrf`` (unless the app uses an ``_xsrf`` cookie of its own), no
  ``?token=`` (whatever ``$JUPYTERHUB_ALLOW_TOKEN_IN_URL`` says), not the
  Authorization header that authenticated the request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from ..errors import HubRefused, HubUnavailable
from ..hub import tokens as _tokens
from ..hub.api import HubAPI
from ..hub.tokens import TokenCache
from ..metrics import Metrics
from ..rules import cookies as _cookies
from ..rules import headers as _headers
from ..rules import pages as _pages
from ..rules import scopes as _scopes
from ..rules.pages import Send
from ..settings import OAUTH_STATE_CHARS, PKCE_VERIFIER_CHARS, HubSettings, ProxySettings
from .passage import (
    TOKEN_ARG,
    Passage,
    Reply,
    browser_scheme,
    is_cross_site,
    passage,
    split_target,
)

logger = logging.getLogger("trioproxy.auth")

Headers = list[tuple[bytes, bytes]]

#: Methods a cross-site page may use with the user's login cookie.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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
    values = parse_qs(query.decode("latin-1"), keep_blank_values=False).get(TOKEN_ARG)
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
        self.door = _scopes.Door(owner=hub.user, access_scopes=hub.access_scopes, groups=self.groups,
                                 anyone=hub.anyone)
        self.trusted_origins = frozenset(o for o in (_origin(hub.public_url), _origin(hub.host)) if o)
        self.app_uses_xsrf = app_uses_xsrf
        #: The login's pages, in the Hub's look (its logo and home; no owner's controls: not known yet).
        self.look = _pages.hub_look(with_hub=True, host=hub.host, hub_prefix=hub.hub_prefix, prefix=proxy.prefix)

    # --- who may enter ---------------------------------------------------------------

    def allowed(self, model: dict[str, Any]) -> bool:
        """May the bearer of the token the Hub described as ``model`` enter (``_scopes.admits``)?"""
        return _scopes.admits(model, self.door) is not None

    # --- cookies ---------------------------------------------------------------------

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
            if not _tokens.well_formed(token):
                await self._malformed(scope, send)
                return None
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
            logger.debug("admitted %s %s with a token in the %s (%s)", model.get("kind") or "user",
                         model.get("name"), "Authorization header" if source == "header" else "URL", _where(scope))
            return self._passage(kept, target, model, source, token)

        clear: Headers = []
        sealed = _cookies.get(headers, self.cookie_name)
        if sealed:
            token = self.sealer.unseal(self.cookie_name, sealed, self.hub.login_cookie_max_age_s)
            model = None
            if token is not None and _tokens.well_formed(token):
                model = await self._user(scope, send, token)
                if model is False:
                    return None
            if model is None:
                logger.debug("the login cookie is no longer valid: cleared (%s)", _where(scope))
                policy = self._policy(headers, scope.get("scheme", "http"))
                clear.append((b"set-cookie", _cookies.clear_cookie(self.cookie_name, policy)))
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
                assert token is not None
                logger.debug("admitted %s %s with the login cookie (%s)", model.get("kind") or "user",
                             model.get("name"), _where(scope))
                return self._passage(headers, target, model, "cookie", token)

        if self._is_navigation(scope, headers, method):
            logger.debug("not logged in: a browser, sent to the Hub to log in (%s)", _where(scope))
            location, cookies = self._start_login(scope, headers)
            await _pages.respond(scope, send, 302, _pages.redirect_body(location),
                                 [(b"location", location), *clear, *cookies])
            return None
        logger.debug("not logged in and not a browser's navigation: 403 (%s)", _where(scope))
        await self._page(scope, send, 403, "403: Login required",
                         ["This server needs a JupyterHub login. Open it in a browser to log in, "
                          "or send an API token in an 'Authorization: token ...' header."], extra=clear)
        return None

    def _passage(
        self, headers: Sequence[tuple[bytes, bytes]], target: bytes, model: dict[str, Any], credential: str, token: str
    ) -> Passage:
        return passage(
            headers,
            target,
            user=model,
            forward_user_info=self.proxy.forward_user_info,
            query_user_info=self.proxy.query_user_info,
            own_cookie=self.cookie_name,
            strip_xsrf=not self.app_uses_xsrf(),
            credential=credential,
            login_digest=_tokens.digest(token),
            controls=_scopes.control_access(model, self.door),
        )

    async def _malformed(self, scope: dict[str, Any], send: Send) -> None:
        logger.warning("refused a request with a malformed token (%s)", _where(scope))
        await self._page(scope, send, 403, "403: Token not valid",
                         ["The token sent with this request is malformed: a JupyterHub token is a short string "
                          "of visible ASCII characters."])

    async def _user(self, scope: dict[str, Any], send: Send, token: str) -> dict[str, Any] | Literal[False] | None:
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

    def _why_not(self, model: dict[str, Any]) -> list[str]:
        """The 403 page's explanation (names only, never a token or its scopes)."""
        name = str(model.get("name"))
        kind = str(model.get("kind") or "user")
        owner = self.hub.user or "another user"
        if kind == "user" and name == self.hub.user and self.door.access_scopes:
            return [f"You are logged in to JupyterHub as {name}, the owner of this server, but the token sent "
                    "with this request does not grant access to this server: JupyterHub issued it for "
                    "another server, or with scopes that do not include access to this one.",
                    "Open this server from your JupyterHub home to log in to it, or use an API token "
                    "with access to your servers."]
        return [f"You are logged in to JupyterHub as {kind} {name}, but this server belongs to {owner} "
                "and the token sent with this request does not grant access to it: JupyterHub has not "
                "given you access to it, or issued this token for another server.",
                "Ask its owner to share it with you."]

    async def _deny(self, scope: dict[str, Any], send: Send, model: dict[str, Any]) -> None:
        logger.warning("refused %s %s: no access to this server (%s)", model.get("kind") or "user",
                       model.get("name"), _where(scope))
        hub = self.hub.host + self.hub.hub_prefix
        await self._page(
            scope, send, 403, "403: Not your server", self._why_not(model),
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
        body = _pages.render(title, paragraphs, links=links, look=self.look)
        await _pages.respond(scope, send, status, body, list(extra))

    # --- the login --------------------------------------------------------------------

    def _start_login(self, scope: dict[str, Any], headers: Sequence[tuple[bytes, bytes]]) -> tuple[bytes, Headers]:
        state = generate_token(OAUTH_STATE_CHARS)
        verifier = generate_token(PKCE_VERIFIER_CHARS)
        raw = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string") or b""
        query = _headers.strip_query_arg(query, TOKEN_ARG)
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
                return Reply(
                    302, [(b"location", self.home.encode("latin-1"))], _pages.redirect_body(self.home.encode())
                )
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
            return self._reply(
                403, "403: Not your server", self._why_not(model),
                links=[("Your JupyterHub home", hub + "home"), ("Log out of JupyterHub", hub + "logout")],
                extra=[clear_state],
            )
        self.metrics.logins["ok"] += 1
        logger.info("login: %s %s", model.get("kind") or "user", model.get("name"))
        max_age = min(expires_in or self.hub.login_cookie_max_age_s, self.hub.login_cookie_max_age_s)
        login = _cookies.set_cookie(
            self.cookie_name, self.sealer.seal(self.cookie_name, token), policy, max_age=max_age
        )
        location = safe_next(str(data.get("n", "")), self.proxy.prefix).encode("latin-1")
        return Reply(302, [(b"location", location), clear_state, (b"set-cookie", login)],
                     _pages.redirect_body(location))

    async def _logged_in(self, headers: Sequence[tuple[bytes, bytes]]) -> bool:
        sealed = _cookies.get(headers, self.cookie_name)
        token = self.sealer.unseal(self.cookie_name, sealed, self.hub.login_cookie_max_age_s) if sealed else None
        if token is None or not _tokens.well_formed(token):
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
        return Reply(status, list(extra), _pages.render(title, paragraphs, links=links, look=self.look))


def _where(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    path = scope.get("path", "")
    return f"{path} from {client[0]}" if client else path
