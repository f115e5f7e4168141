"""The Hub's REST API, as trioproxy uses it: who owns a token, code for token, activity.

One ``httpx.AsyncClient`` for the process, owned by :class:`HubAPI` (open it
with :func:`open_hub`): no cookie jar (a Hub answer must never leak into
another call), no proxy variables from the environment (``HTTP_PROXY`` must not
capture the Hub on loopback), bounded timeouts, and with internal SSL the
server's client certificate and the Hub's CA. Errors are translated here,
once: callers see :class:`HubUnavailable` (the Hub could not be asked) or a
plain answer.

httpx is imported when the first call is made, not with this module: it is
about 50 ms of start-up (a third of it its command-line extras), and a server
without a Hub (``--authtype none``, no API token) never calls it.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import logging
import ssl
import urllib.parse
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import trio

from ..errors import HubRefused as HubRefused  # raised here
from ..errors import HubSetupError as HubSetupError
from ..errors import HubUnavailable as HubUnavailable
from ..settings import HUB_CLIENT_CLOSE_TIMEOUT_S, HubSettings
from . import tokens as _tokens

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger("trioproxy.hub")


def ssl_context(hub: HubSettings) -> ssl.SSLContext | None:
    """With internal SSL: verify the Hub against its CA and present our certificate."""
    if not (hub.ssl_certfile and hub.ssl_keyfile):
        return None
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=hub.ssl_client_ca or None)
        ctx.load_cert_chain(hub.ssl_certfile, hub.ssl_keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise HubSetupError(f"cannot load the TLS files for calls to the Hub: {exc}") from None
    return ctx


def open_hub(hub: HubSettings) -> contextlib.AbstractAsyncContextManager[HubAPI]:
    """A :class:`HubAPI` (as an async context manager) whose client is closed on exit.

    Raises :class:`HubSetupError` at once for unreadable TLS files.
    """
    return _closing(HubAPI(hub, ssl_context(hub) or True))


@contextlib.asynccontextmanager
async def _closing(api: HubAPI) -> AsyncIterator[HubAPI]:
    try:
        yield api
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(HUB_CLIENT_CLOSE_TIMEOUT_S):
            await api.aclose()


def _httpx() -> Any:
    """The httpx module, imported on first use (see the module's docstring)."""
    import httpx  # noqa: PLC0415

    return httpx


def _new_client(hub: HubSettings, verify: Any) -> httpx.AsyncClient:
    lib = _httpx()
    jar = http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    client: httpx.AsyncClient = lib.AsyncClient(
        trust_env=False,
        cookies=jar,
        verify=verify,
        timeout=lib.Timeout(hub.api_timeout_s, connect=hub.api_connect_timeout_s),
        follow_redirects=False,
    )
    return client


def _why(exc: BaseException) -> str:
    httpx = _httpx()
    if isinstance(exc, trio.TooSlowError | httpx.TimeoutException):
        return "it did not answer in time"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({exc})"
    return f"{type(exc).__name__}: {exc}"


class HubAPI:
    """Calls to ``$JUPYTERHUB_API_URL``; learns the Hub's version from its answers."""

    def __init__(self, hub: HubSettings, verify: Any = True) -> None:
        self.hub = hub
        self._verify = verify
        self._client: httpx.AsyncClient | None = None
        self._errors: tuple[type[BaseException], ...] = ()
        #: The Hub's version (from its X-JupyterHub-Version header), once known.
        self.version: str | None = None

    def _open(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = _new_client(self.hub, self._verify)
            self._errors = (_httpx().HTTPError, trio.TooSlowError, OSError, ssl.SSLError)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """``method`` on ``{api}{path}`` (or on ``path`` itself when it is a full URL).

        The one place where Hub API failures become :class:`HubUnavailable`.
        """
        url = path if "://" in path else self.hub.api_url + path
        client = self._open()
        try:
            with trio.fail_after(self.hub.api_timeout_s):
                resp = await client.request(method, url, **kw)
        except self._errors as exc:
            raise HubUnavailable(f"the Hub API at {self.hub.api_url} cannot be reached: {_why(exc)}") from None
        version = resp.headers.get("x-jupyterhub-version")
        if version:
            self.version = version
        if resp.status_code >= 500:
            shown = path if "://" not in path else urllib.parse.urlsplit(path).path
            raise HubUnavailable(f"the Hub API answered {resp.status_code} to {method} {shown}")
        return resp

    async def call_root(self) -> None:
        """``GET {api}/`` (no token needed): learns the Hub's version. Raises :class:`HubUnavailable`."""
        resp = await self._call("GET", "/")
        if self.version is None and resp.status_code == 200:
            try:
                self.version = str(resp.json().get("version") or "") or None
            except (ValueError, AttributeError):
                pass

    async def learn_version(self) -> None:
        """:meth:`call_root`, quiet on failure."""
        try:
            await self.call_root()
        except HubUnavailable as exc:
            logger.debug("Hub version unknown: %s", exc)

    async def user_for_token(self, token: str) -> dict[str, Any] | None:
        """The Hub's model of the token's owner (with its ``scopes``), or None for a token it does not honour.

        A malformed token (``_tokens.well_formed``) is None without asking: it could
        not be sent in a header anyway.
        """
        if not _tokens.well_formed(token):
            return None
        resp = await self._call("GET", "/user", headers={"Authorization": f"token {token}"})
        if resp.status_code in (401, 403, 404):
            return None
        if resp.status_code != 200:
            raise HubRefused(resp.status_code, f"the Hub answered {resp.status_code} to GET /user")
        try:
            model = resp.json()
        except ValueError:
            raise HubUnavailable("the Hub's answer to GET /user is not JSON") from None
        if not isinstance(model, dict) or not model.get("name"):
            raise HubUnavailable("the Hub's answer to GET /user has no name")
        return model

    async def token_for_code(self, code: str, redirect_uri: str, code_verifier: str) -> tuple[str, int | None]:
        """Exchange an OAuth code: ``(access_token, expires_in or None)``.

        The server's API token is the client secret (sent in the form, and as
        the Authorization header, as the Hub's own clients do).
        """
        form = {
            "client_id": self.hub.client_id,
            "client_secret": self.hub.api_token,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        resp = await self._call(
            "POST", "/oauth2/token", data=form, headers={"Authorization": f"token {self.hub.api_token}"}
        )
        try:
            reply = resp.json()
        except ValueError:
            reply = {}
        if resp.status_code != 200 or not isinstance(reply, dict) or not reply.get("access_token"):
            detail = reply.get("error_description") or reply.get("error") if isinstance(reply, dict) else None
            raise HubRefused(resp.status_code, f"the Hub refused the login code ({resp.status_code}"
                             + (f": {detail})" if detail else ")"))
        expires = reply.get("expires_in")
        return str(reply["access_token"]), int(expires) if isinstance(expires, int | float) and expires > 0 else None

    async def post_activity(self, body: dict[str, Any]) -> httpx.Response:
        """POST ``$JUPYTERHUB_ACTIVITY_URL`` (a full URL, usually under the API)."""
        return await self._call(
            "POST", self.hub.activity_url, json=body, headers={"Authorization": f"token {self.hub.api_token}"}
        )
