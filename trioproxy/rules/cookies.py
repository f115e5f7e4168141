"""Cookies: reading the ``Cookie`` header, writing ``Set-Cookie``, and sealing values.

Pure functions, no I/O. Names and values are handled as text; a ``Cookie``
header is split on ``;`` the way browsers send it (RFC 6265 §5.4), and the
header the app receives is rebuilt from the same pairs minus trioproxy's own,
so the app's cookies reach it byte for byte.

:class:`Sealer` makes the login and OAuth-state cookies: the value is
encrypted and authenticated (Fernet: AES-128-CBC + HMAC-SHA256, from
``cryptography``, which authlib already requires), carries its creation time,
and is bound to the cookie's name, so a value cannot be forged, read, aged
past its limit or moved to another cookie. The key comes from the cookie
secret: random per start, or configured, so logins survive a restart.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

Headers = list[tuple[bytes, bytes]]


def _segments(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str, str]]:
    """``(name, value, segment)`` for every ``;``-separated piece of every ``Cookie`` header."""
    out: list[tuple[str, str, str]] = []
    for name, value in headers:
        if name != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            part = part.strip()
            if not part:
                continue
            key, eq, val = part.partition("=")
            if not eq:
                key, val = "", key
            out.append((key.strip(), val.strip(), part))
    return out


def parse(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Every ``name=value`` pair of every ``Cookie`` header, in order.

    A pair without ``=`` is a value with an empty name (what browsers do).
    Values keep their quotes; nothing is unescaped.
    """
    return [(k, v) for k, v, _ in _segments(headers)]


def get(headers: Iterable[tuple[bytes, bytes]], name: str) -> str | None:
    """The first value of cookie ``name``, or None."""
    for key, value in parse(headers):
        if key == name:
            return value
    return None


def without(headers: Sequence[tuple[bytes, bytes]], drop: Callable[[str], bool]) -> Headers:
    """``headers`` with every cookie whose name ``drop`` accepts removed.

    The remaining cookies go in one ``Cookie`` header, in their order and as
    they were written; with none left there is no ``Cookie`` header. Headers
    without a cookie to drop come back unchanged (same list contents).
    """
    segments = _segments(headers)
    if not any(drop(key) for key, _, _ in segments):
        return list(headers)
    kept = "; ".join(seg for key, _, seg in segments if not drop(key))
    out = [(n, v) for n, v in headers if n != b"cookie"]
    if kept:
        out.append((b"cookie", kept.encode("latin-1")))
    return out


def set_cookie_name(value: bytes) -> str:
    """The cookie name a ``Set-Cookie`` value sets, as a browser reads it (RFC 6265bis §5.6).

    ``name=value; attrs``: the name, stripped. Without ``=`` the name is empty and
    the whole pair is the value, which the browser then sends back as a bare
    ``Cookie: pair``; that pair is returned, since servers read it as a name.
    """
    pair = value.decode("latin-1").split(";", 1)[0]
    name, eq, _ = pair.partition("=")
    return name.strip() if eq else pair.strip()


def without_set_cookies(
    headers: Sequence[tuple[bytes, bytes]], drop: Callable[[str], bool]
) -> tuple[Headers, list[str]]:
    """``headers`` without every ``Set-Cookie`` whose cookie name ``drop`` accepts, and those names in order.

    The other headers, other ``Set-Cookie`` ones included, stay in their order.
    """
    kept: Headers = []
    dropped: list[str] = []
    for name, value in headers:
        if name == b"set-cookie":
            cookie = set_cookie_name(value)
            if drop(cookie):
                dropped.append(cookie)
                continue
        kept.append((name, value))
    return kept, dropped


@dataclass(frozen=True)
class CookiePolicy:
    """Attributes every cookie of trioproxy gets (the Hub's rules)."""

    path: str
    secure: bool
    #: SameSite value, or '' for none.
    samesite: str = "Lax"
    domain: str = ""
    partitioned: bool = False


def policy_from_options(path: str, secure: bool, options: Mapping[str, Any]) -> CookiePolicy:
    """Apply ``JUPYTERHUB_COOKIE_OPTIONS`` to the default policy.

    Like the Hub (5+), options may add ``Secure``, set ``SameSite``,
    ``Domain`` and ``Partitioned``, but never loosen the path, HttpOnly or
    the lifetime, which trioproxy decides.
    """
    opts = {str(k).lower().replace("_", ""): v for k, v in options.items()}
    samesite = opts.get("samesite", "Lax")
    samesite = "" if samesite in (None, False, "") else str(samesite)
    if samesite and samesite.lower() not in ("lax", "strict", "none"):
        samesite = "Lax"
    if samesite.lower() == "none":
        secure = True  # browsers drop SameSite=None without Secure
    return CookiePolicy(
        path=path,
        secure=secure or bool(opts.get("secure", False)),
        samesite=samesite,
        domain=str(opts.get("domain") or ""),
        partitioned=bool(opts.get("partitioned", False)),
    )


def set_cookie(name: str, value: str, policy: CookiePolicy, *, max_age: int | None) -> bytes:
    """A ``Set-Cookie`` value; always HttpOnly. ``max_age`` None is a session cookie."""
    parts = [f"{name}={value}", f"Path={policy.path}", "HttpOnly"]
    if max_age is not None:
        parts.append(f"Max-Age={max(0, int(max_age))}")
        if max_age <= 0:
            parts.append("Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    if policy.secure:
        parts.append("Secure")
    if policy.samesite:
        parts.append(f"SameSite={policy.samesite}")
    if policy.domain:
        parts.append(f"Domain={policy.domain}")
    if policy.partitioned:
        parts.append("Partitioned")
    return "; ".join(parts).encode("latin-1")


def clear_cookie(name: str, policy: CookiePolicy) -> bytes:
    """A ``Set-Cookie`` value that deletes ``name`` at the policy's path."""
    return set_cookie(name, "", policy, max_age=0)


def derive_key(secret: bytes) -> bytes:
    """A Fernet key from any secret (32 random bytes, a hex string, a passphrase)."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"trioproxy-cookie-v1\0" + secret).digest())


class Sealer:
    """Encrypt-and-sign cookie values, bound to the cookie's name and dated."""

    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        self._fernet = Fernet(derive_key(secret))
        self._clock = clock

    def seal(self, name: str, value: str) -> str:
        plain = name.encode() + b"\0" + value.encode()
        return self._fernet.encrypt_at_time(plain, int(self._clock())).decode("ascii")

    def unseal(self, name: str, sealed: str, max_age_s: float) -> str | None:
        """The value sealed under ``name`` at most ``max_age_s`` ago, else None."""
        try:
            plain = self._fernet.decrypt_at_time(sealed.encode("ascii"), int(max_age_s), int(self._clock()))
        except (InvalidToken, UnicodeEncodeError, ValueError):
            return None
        got_name, sep, value = plain.partition(b"\0")
        if not sep or got_name != name.encode():
            return None
        try:
            return value.decode()
        except UnicodeDecodeError:
            return None
