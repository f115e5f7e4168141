"""A small fake JupyterHub API, for what a real Hub cannot be made to do on cue:
go down, answer 500, answer slowly, refuse activity, revoke a token mid-test.

It speaks just enough of the Hub's API for trioproxy: the API root (version),
``GET /user``, the OAuth authorize redirect (as if a user were logged in to
the Hub) and token endpoint (with PKCE S256 checked), and activity posts.
Everything it receives is recorded. The real-Hub tests (``tests/hub.py``)
cover the real flows; this one is only for faults.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from .conftest import free_port

VERSION = "6.1.1"
API_TOKEN = "server-api-token-0123456789"
CLIENT_ID = "jupyterhub-user-dan"


@dataclass
class FakeHub:
    port: int
    #: token -> user model
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: who the Hub's (imaginary) login session belongs to, for authorize
    session_user: str = "dan"
    #: "ok", "500" (every API call), "slow" (every API call hangs)
    mode: str = "ok"
    #: status for activity posts
    activity_status: int = 200
    activity: list[tuple[float, Any]] = field(default_factory=list)
    user_calls: int = 0
    token_calls: list[dict[str, str]] = field(default_factory=list)
    _codes: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # code -> (user, challenge, redirect)
    _cancel: trio.CancelScope | None = None
    _nursery: trio.Nursery | None = None
    _stopped: trio.Event = field(default_factory=trio.Event)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hub/api"

    def add_user(self, name: str, *, groups: list[str] = (), scopes: list[str] | None = None, kind: str = "user",  # type: ignore[assignment]
                 admin: bool = False) -> str:
        """A new token of ``name``; by default a general-purpose one (it opens ``name``'s own servers)."""
        token = f"tok-{name}-{secrets.token_hex(4)}"
        if scopes is None:
            scopes = [f"access:servers!user={name}", f"read:users:name!user={name}"]
        self.tokens[token] = {"kind": kind, "name": name, "admin": admin, "groups": list(groups), "scopes": scopes,
                              "session_id": "s"}
        return token

    def env(self, *, prefix: str = "/user/dan/", user: str = "dan", proxy_port: int, **extra: str) -> dict[str, str]:
        """The environment a Spawner would give trioproxy, pointing at this fake Hub."""
        env = {
            "JUPYTERHUB_API_TOKEN": API_TOKEN,
            "JUPYTERHUB_CLIENT_ID": CLIENT_ID,
            "JUPYTERHUB_API_URL": self.api_url,
            "JUPYTERHUB_BASE_URL": "/",
            "JUPYTERHUB_HOST": f"http://127.0.0.1:{self.port}",
            "JUPYTERHUB_SERVICE_PREFIX": prefix,
            "JUPYTERHUB_OAUTH_CALLBACK_URL": f"http://127.0.0.1:{proxy_port}{prefix}oauth_callback",
            "JUPYTERHUB_USER": user,
            "JUPYTERHUB_SERVER_NAME": "",
            "JUPYTERHUB_ACTIVITY_URL": f"{self.api_url}/users/{user}/activity",
            "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps(
                [f"access:servers!server={user}/", f"access:servers!user={user}"]
            ),
        }
        env.update(extra)
        return env

    async def start(self) -> None:
        """Serve (again, after :meth:`stop`) on the same port."""
        assert self._nursery is not None
        await self._nursery.start(self._serve)

    async def stop(self) -> None:
        """Stop serving: the port refuses connections, open ones are cut."""
        if self._cancel is not None:
            self._cancel.cancel()
            with trio.fail_after(5):
                await self._stopped.wait()

    async def _serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        config = Config()
        config.bind = [f"127.0.0.1:{self.port}"]
        config.accesslog = None
        config.errorlog = None
        self._stopped = trio.Event()
        try:
            with trio.CancelScope() as self._cancel:
                await serve(self, config, task_status=task_status)  # type: ignore[arg-type]
        finally:
            self._cancel = None
            self._stopped.set()

    # --- the ASGI app ------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        status, headers, payload = await self.handle(scope, body)
        headers = [(b"x-jupyterhub-version", VERSION.encode()), *headers]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def handle(self, scope: dict[str, Any], body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        path = scope["path"]
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        token = auth.split(" ", 1)[1] if " " in auth else ""
        if path == "/hub/api/oauth2/authorize":
            return self._authorize(query)
        if self.mode == "slow":
            await trio.sleep_forever()
        if self.mode == "500":
            return 500, [], b'{"message": "boom"}'
        if path == "/hub/api/":
            return 200, [(b"content-type", b"application/json")], json.dumps({"version": VERSION}).encode()
        if path == "/hub/api/user":
            self.user_calls += 1
            model = self.tokens.get(token)
            if model is None:
                return 403, [], b'{"status": 403, "message": "Forbidden"}'
            return 200, [(b"content-type", b"application/json")], json.dumps(model).encode()
        if path == "/hub/api/oauth2/token":
            return self._token({k: v[0] for k, v in parse_qs(body.decode()).items()})
        if path.startswith("/hub/api/users/") and path.endswith("/activity"):
            if token != API_TOKEN:
                return 403, [], b"{}"
            self.activity.append((trio.current_time(), json.loads(body or b"null")))
            return self.activity_status, [], b"{}"
        return 404, [], b"{}"

    def _authorize(self, q: dict[str, str]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code":
            return 400, [], b"bad authorize request"
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return 400, [], b"no PKCE"
        code = secrets.token_urlsafe(8)
        self._codes[code] = (self.session_user, q["code_challenge"], q["redirect_uri"])
        location = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]})
        return 302, [(b"location", location.encode())], b""

    def _token(self, form: dict[str, str]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        self.token_calls.append(form)
        code = form.get("code", "")
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != API_TOKEN or code not in self._codes:
            return 400, [], b'{"error": "invalid_grant", "error_description": "bad code"}'
        user, challenge, redirect = self._codes.pop(code)
        verifier = form.get("code_verifier", "")
        computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if computed != challenge or form.get("redirect_uri") != redirect:
            return 400, [], b'{"error": "invalid_grant", "error_description": "PKCE or redirect mismatch"}'
        token = next((t for t, m in self.tokens.items() if m["name"] == user), None) or self.add_user(user)
        return 200, [(b"content-type", b"application/json")], json.dumps(
            {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
        ).encode()


@contextlib.asynccontextmanager
async def fake_hub() -> AsyncIterator[FakeHub]:
    hub = FakeHub(free_port())
    async with trio.open_nursery() as nursery:
        hub._nursery = nursery
        await hub.start()
        try:
            yield hub
        finally:
            nursery.cancel_scope.cancel()
