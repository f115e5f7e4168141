"""Where a request goes, decided from its raw path. Pure, no I/O.

Matching is on the raw (still percent-encoded) path, and the part after the
prefix is passed to the app byte for byte: ``%2F``, ``%25`` and friends
survive, unlike in the reference, which decoded and re-quoted the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

#: Paths under the prefix that trioproxy answers itself (not the app).
OAUTH_CALLBACK = b"/oauth_callback"
#: trioproxy's own endpoints outside the prefix (health, metrics): reachable on the
#: pod's port by Kubernetes probes and scrapers, never through the Hub's proxy,
#: which routes only the prefix here. Reserved even when the prefix is '/'.
OPS = b"/_trioproxy/"
#: The owner's controls under the prefix (status, restart, logs): after login, owner only.
CONTROLS = b"/_trioproxy/"
#: trioproxy's websocket echo, one of the controls (``ops/echo.py``; ``trioproxy doctor`` opens it).
ECHO = b"/_trioproxy/echo"


@dataclass(frozen=True)
class Forward:
    """Send to the app; ``target`` is the request-target for the upstream hop."""

    target: bytes


@dataclass(frozen=True)
class Redirect:
    status: int
    location: bytes


@dataclass(frozen=True)
class Internal:
    """One of trioproxy's own endpoints; ``path`` is relative to the prefix
    (absolute for those outside it). ``login``: admitted users only."""

    path: bytes
    login: bool = False


@dataclass(frozen=True)
class NotFound:
    pass


Route = Forward | Redirect | Internal | NotFound


#: What stays as it is in a path (and in a URL: ``?`` and ``#`` too); the rest is percent-encoded.
_PATH_SAFE = "/@:!$&'()*+,;=-._~%"


def prefix_bytes(prefix: str) -> bytes:
    """The prefix as it appears on the wire (already-escaped parts kept)."""
    return quote(prefix, safe=_PATH_SAFE).encode("ascii")


def default_location(default_url: str, prefix: str) -> bytes:
    """Where ``$JUPYTERHUB_DEFAULT_URL`` sends a GET of the bare prefix ('' or '/': nowhere, b"").

    As in jupyterhub-singleuser, the value is a path in the server, joined under its
    prefix: ``/lab`` and ``lab`` both become ``/user/alice/lab``; one that already
    starts with the prefix is kept (never a double prefix). A query and a fragment
    are kept; characters that may not stand in a URL are percent-encoded.

    Raises:
        ValueError: for a URL with a scheme or a host (``http://...``, ``//host/x``, ``\\\\host``).
    """
    raw = default_url.strip()
    parts = urlsplit(raw)
    if parts.scheme or raw.startswith("//") or raw.startswith("\\"):
        raise ValueError(f"must be a path in the server (like /lab), not a URL: {raw[:80]!r}")
    path = parts.path
    if path.strip("/") == "":
        return b""
    if not path.startswith("/"):
        raw = "/" + raw
    wire = quote(raw, safe=_PATH_SAFE + "?#").encode("ascii")
    p = prefix_bytes(prefix)
    if p and (wire.startswith(p + b"/") or wire == p):
        if wire.partition(b"#")[0].partition(b"?")[0].rstrip(b"/") == p:
            return b""  # the prefix itself: it would redirect to itself
        return wire
    return p + wire


def _with_query(location: bytes, query: bytes) -> bytes:
    """``location`` with the request's query added (before a fragment; after a query of its own)."""
    if not query:
        return location
    base, hash_, fragment = location.partition(b"#")
    return base + (b"&" if b"?" in base else b"?") + query + hash_ + fragment


@dataclass(frozen=True)
class Router:
    """Routes for one prefix (``/user/dan`` or '' for ``/``)."""

    prefix: bytes
    internal: frozenset[bytes] = frozenset({OAUTH_CALLBACK})
    #: Forward the whole path, prefix included (--keep-prefix), for apps that
    #: serve under the prefix themselves.
    keep_prefix: bool = False
    #: Where a GET of the bare prefix (with or without its slash) is redirected
    #: (:func:`default_location`); b"": to the app's root, as any path.
    default_url: bytes = b""

    @classmethod
    def for_prefix(
        cls, prefix: str, internal: frozenset[bytes] | None = None, *, keep_prefix: bool = False,
        default_url: bytes = b"",
    ) -> Router:
        p = prefix_bytes(prefix)
        return cls(p, frozenset({OAUTH_CALLBACK}) if internal is None else internal, keep_prefix, default_url)

    def route(self, method: str, raw_path: bytes, query: bytes, *, websocket: bool = False) -> Route:
        if raw_path.startswith(OPS):
            return Internal(raw_path)
        prefix = self.prefix
        if (b"." in raw_path or b"%2" in raw_path) and not _stays_under(raw_path, prefix):
            return NotFound()  # /user/dan/../eve/ and its encoded forms
        qs = b"?" + query if query else b""
        if raw_path.startswith(prefix):
            rest = raw_path[len(prefix) :]
            if rest in (b"", b"/") and self.default_url and method in ("GET", "HEAD") and not websocket:
                return Redirect(302, _with_query(self.default_url, query))
            if rest.startswith(b"/"):
                if rest in self.internal:
                    return Internal(rest)
                if rest.startswith(CONTROLS):
                    return Internal(rest, login=True)
                return Forward((raw_path if self.keep_prefix else rest) + qs)
            if rest == b"":
                # The bare prefix: add the slash (a 307 keeps a POST's method and body).
                return Redirect(_redirect_status(method, temporary=True), prefix + b"/" + qs)
            return NotFound()  # /user/danny when the prefix is /user/dan
        if b"@" in prefix:
            encoded = prefix.replace(b"@", b"%40")
            if raw_path.lower().startswith(encoded.lower()):
                rest = raw_path[len(encoded) :]
                if rest == b"" or rest.startswith(b"/"):
                    # Browsers and some apps encode '@' in e-mail user names;
                    # send them to the canonical form, the rest untouched.
                    return Redirect(_redirect_status(method, temporary=False), prefix + (rest or b"/") + qs)
        return NotFound()


def _redirect_status(method: str, *, temporary: bool) -> int:
    if method in ("GET", "HEAD"):
        return 302 if temporary else 301
    return 307 if temporary else 308


def _stays_under(raw_path: bytes, prefix: bytes) -> bool:
    """Does ``raw_path``, with its dot-segments resolved (``%2e`` counted as '.'),
    stay under ``prefix/``? Paths without dot-segments always do what they say."""
    path = raw_path.replace(b"%2e", b".").replace(b"%2E", b".")
    segments = path.split(b"/")
    if not any(seg in (b".", b"..") for seg in segments):
        return True
    out: list[bytes] = []
    for seg in segments[1:]:
        if seg == b"..":
            if out:
                out.pop()
        elif seg != b".":
            out.append(seg)
    resolved = b"/" + b"/".join(out)
    return resolved.startswith(prefix + b"/") or (resolved == prefix and bool(prefix))
