"""Keep an app that does not know its prefix inside it: its redirects and its cookie paths.

Pure functions on header values (bytes in, bytes out), no I/O.

trioproxy strips ``JUPYTERHUB_SERVICE_PREFIX`` before the app sees a path, so
an app that does not know its prefix answers as if it lived at ``/``: a
``Location: /login`` would send the browser out of this server (to the Hub's
404), a ``Set-Cookie: ...; Path=/`` would be stored for the whole Hub origin
and sent to every other user's server. Here both are moved under the prefix.

:func:`location` (``Location``, ``Content-Location`` and the URL of ``Refresh``):

=====================================  =========================================
the app sends                          the browser gets (prefix ``/user/alice``)
=====================================  =========================================
``/login``                             ``/user/alice/login``
``/``                                  ``/user/alice/``
``/user/alice/lab`` (already inside)   unchanged (no double prefix)
``/a/../b``                            ``/user/alice/b`` (dot-segments resolved
                                       first, as the browser would)
``http://127.0.0.1:41873/items/``      ``/user/alice/items/`` (the app's own
                                       loopback address and port, also as
                                       ``localhost``, ``[::1]``, ``0.0.0.0``)
``http://hub.example.org/x``           ``http://hub.example.org/user/alice/x`` (the
                                       request's own host, without the prefix)
``https://hub.example.org/user/alice/  unchanged (the request's host, already
x``                                    inside: jupyter-server-proxy 4.5.0 added
                                       the prefix again, its issue #574)
``//hub.example.org/x``                ``//hub.example.org/user/alice/x``
``login``, ``../x``, ``?page=2``       unchanged (relative: the browser resolves
                                       it under the prefix already)
``https://github.com/login``           unchanged (foreign)
``http://127.0.0.1:9999/``             unchanged (another port: not the app's)
``mailto:...``, ``javascript:...``     unchanged
=====================================  =========================================

With ``--keep-prefix`` the app serves under the prefix itself: the prefix is
never added, and only a URL on the app's own loopback address (which no
browser could reach) loses its origin.

:func:`set_cookie`: a ``Path`` is a path of the app, so the prefix goes in
front (``Path=/`` becomes ``Path=/user/alice/``, ``Path=/api`` becomes
``Path=/user/alice/api``), unless it is already inside the prefix; with
``--keep-prefix`` a path outside the prefix is narrowed to it. No ``Path``:
the browser's default (the directory of the request's URL) is inside the
prefix already (the bare prefix is redirected to ``prefix/`` before any app
sees it). ``Domain`` is dropped unless kept on purpose: a cookie for the
Hub's whole domain would reach every server and the Hub.

:func:`response_headers` applies all of it to an app's response head.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

Headers = list[tuple[bytes, bytes]]

#: A URL scheme (RFC 3986 §3.1) and its colon.
_SCHEME = re.compile(rb"^([A-Za-z][A-Za-z0-9+.\-]*):")
#: Schemes whose URLs name a host of ours, and their default ports.
_DEFAULT_PORTS = {b"http": b"80", b"https": b"443", b"ws": b"80", b"wss": b"443"}
#: What ends an authority (browsers read ``\`` as ``/`` in web URLs).
_AUTHORITY_END = re.compile(rb"[/\\?#]")
#: The two characters that start a scheme-relative reference, as browsers read them.
_TWO_SLASHES = (b"//", b"/\\", b"\\/", b"\\\\")
#: Dot-segments, as browsers read them (``%2e`` is a dot).
_DOTS = frozenset({b".", b"%2e"})
_DOTDOTS = frozenset({b"..", b".%2e", b"%2e.", b"%2e%2e"})
#: What precedes the URL of a ``Refresh``: the delay, a separator, ``url=`` (the last two optional).
_REFRESH_HEAD = re.compile(rb"\s*[0-9.]+\s*[;,]?\s*(?:url\s*=\s*)?", re.IGNORECASE)
#: The loopback names under which an app names itself.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "0.0.0.0", "[::]")
#: Response headers whose value is a URL for the browser.
LOCATION_HEADERS = frozenset({b"location", b"content-location"})


@dataclass(frozen=True)
class Place:
    """Where this server lives, as seen from the browser and from the app."""

    #: The prefix without its trailing slash (b"" at the root), as the browser writes it.
    prefix: bytes
    #: ``host:port`` forms of the app's own address (lower case), e.g. ``127.0.0.1:41873``.
    app_hosts: frozenset[bytes] = frozenset()
    #: The Host the browser sent (lower case, without a default port), b"" if none.
    request_host: bytes = b""
    #: The app serves under the prefix itself (--keep-prefix).
    keep_prefix: bool = False

    def inside(self, path: bytes) -> bool:
        """Is ``path`` (a path-absolute reference, maybe with query or fragment) inside the prefix?"""
        if not self.prefix:
            return True
        for prefix in _spellings(self.prefix):
            if path.startswith(prefix):
                rest = path[len(prefix) :]
                if not rest or rest[:1] in (b"/", b"?", b"#"):
                    return True
        return False

    def under(self, path: bytes) -> bytes:
        """``path`` (path-absolute) moved under the prefix, unless it is inside it already."""
        if self.keep_prefix or self.inside(path):
            return path
        return self.prefix + path


@dataclass(frozen=True)
class Rewrites:
    """Which rewrites apply (the options)."""

    #: Location, Content-Location and Refresh (--no-redirect-rewrite: none).
    redirects: bool = True
    #: Set-Cookie's Path and Domain (--no-cookie-rewrite: none).
    cookies: bool = True
    #: Keep Set-Cookie's Domain (--keep-cookie-domain).
    keep_domain: bool = False


def app_hosts(port: int, hosts: Iterable[str] = LOOPBACK_NAMES) -> frozenset[bytes]:
    """The ``host:port`` spellings under which an app on loopback ``port`` names itself.

    ``hosts`` are host names or addresses; an IPv6 address gets its brackets.
    """
    out = set()
    for host in hosts:
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        out.add(f"{host.lower()}:{port}".encode())
    return frozenset(out)


def request_host(host: bytes | None) -> bytes:
    """The browser's ``Host`` as :class:`Place` compares it: lower case, without ``:80``/``:443``."""
    if not host:
        return b""
    name, port = _host_port(host.strip().lower())
    return name if port in (b"", b"80", b"443") else name + b":" + port


def _spellings(prefix: bytes) -> tuple[bytes, ...]:
    """The prefix as the app may have written it: as given, and with ``@`` and ``%40`` swapped."""
    if b"@" in prefix:
        return (prefix, prefix.replace(b"@", b"%40"))
    if b"%40" in prefix:
        return (prefix, prefix.replace(b"%40", b"@"))
    return (prefix,)


def _host_port(authority: bytes) -> tuple[bytes, bytes]:
    """``host:port`` -> (host, port); ``[v6]:port`` keeps its brackets; no port: b""."""
    if authority.startswith(b"["):
        end = authority.find(b"]")
        if end != -1:
            rest = authority[end + 1 :]
            return authority[: end + 1], rest[1:] if rest.startswith(b":") else b""
        return authority, b""
    host, colon, port = authority.rpartition(b":")
    if colon and (port.isdigit() or not port):
        return host, port
    return authority, b""


def _split(url: bytes) -> tuple[bytes, bytes]:
    """A path-absolute reference -> (path, ``?query#fragment``)."""
    for i, c in enumerate(url):
        if c in b"?#":
            return url[:i], url[i:]
    return url, b""


def _resolve_dots(url: bytes) -> bytes:
    """A path-absolute reference with its dot-segments resolved (RFC 3986 §5.2.4, as browsers do it).

    Without dot-segments it comes back as it is.
    """
    path, tail = _split(url)
    segments = path.replace(b"\\", b"/").split(b"/")[1:]
    lowered = [s.lower() for s in segments]
    if not any(s in _DOTS or s in _DOTDOTS for s in lowered):
        return url
    out: list[bytes] = []
    for seg, low in zip(segments, lowered, strict=True):
        if low in _DOTDOTS:
            if out:
                out.pop()
        elif low not in _DOTS:
            out.append(seg)
    last = lowered[-1]
    trailing = last in _DOTS or last in _DOTDOTS
    return b"/" + b"/".join(out) + (b"/" if trailing and out else b"") + tail


def location(value: bytes, place: Place) -> bytes:
    """The app's ``Location`` (or ``Content-Location``) as the browser must get it."""
    url = value.strip()
    if not url:
        return value
    if url[:2] in _TWO_SLASHES:
        return _absolute(value, b"", url[:2], url[2:], place)
    if url.startswith(b"/"):
        if place.keep_prefix:
            return value
        moved = _path_reference(place.under(_resolve_dots(url)))
        return value if moved == url else moved
    match = _SCHEME.match(url)
    if match is None:
        return value  # relative: resolved under the prefix by the browser
    scheme = match.group(1).lower()
    rest = url[match.end() :]
    if scheme not in _DEFAULT_PORTS or rest[:2] not in _TWO_SLASHES:
        return value
    return _absolute(value, url[: match.end()], rest[:2], rest[2:], place)


def _absolute(value: bytes, scheme: bytes, slashes: bytes, rest: bytes, place: Place) -> bytes:
    """``scheme//authority/path`` (``scheme`` may be b""): the app's own origin or the request's."""
    end = _AUTHORITY_END.search(rest)
    authority, tail = (rest[: end.start()], rest[end.start() :]) if end else (rest, b"")
    host, port = _host_port(authority.rsplit(b"@", 1)[-1].lower())  # userinfo is never ours to judge
    if port == _DEFAULT_PORTS.get(scheme[:-1].lower()):
        port = b""
    path = _resolve_dots(b"/" + (tail[1:] if tail[:1] in (b"/", b"\\") else tail))
    if port and host + b":" + port in place.app_hosts:
        # The app's own loopback address: no browser can reach it, the prefix can.
        return _path_reference(place.under(path))
    if place.request_host and (host + b":" + port if port else host) == place.request_host:
        moved = place.under(path)
        if moved == path:
            return value  # already inside (jupyter-server-proxy#574), or --keep-prefix
        return scheme + slashes + authority + moved
    return value


def _path_reference(path: bytes) -> bytes:
    """A path as a reference that means it: ``//x`` (or ``/\\x``) alone would name a host (at the root,
    where nothing goes in front), so it becomes ``/.//x``, the same path (what the URL standard writes)."""
    return b"/.//" + path[2:] if path[:2] in _TWO_SLASHES else path


def refresh(value: bytes, place: Place) -> bytes:
    """The app's ``Refresh: N; url=...`` with its URL kept inside the prefix.

    Read as browsers read it (HTML's "shared declarative refresh steps"): a
    number, an optional ``;`` or ``,``, an optional ``url=``, an optional
    quote (the URL ends at its twin, if any).
    """
    match = _REFRESH_HEAD.match(value)
    if match is None:
        return value  # no delay first: not a refresh a browser follows
    start = match.end()
    quote = value[start : start + 1] if value[start : start + 1] in (b"'", b'"') else b""
    start += len(quote)
    end = value.find(quote, start) if quote else -1
    end = len(value.rstrip()) if end == -1 else end
    url = value[start:end]
    moved = location(url, place)
    if moved == url:
        return value
    return value[:start] + moved + value[end:]


def set_cookie(value: bytes, place: Place, *, keep_domain: bool = False) -> bytes:
    """The app's ``Set-Cookie`` with its ``Path`` inside the prefix and no ``Domain`` (unless kept)."""
    parts = value.split(b";")
    out = [parts[0]]
    changed = False
    for part in parts[1:]:
        name, eq, attr = part.partition(b"=")
        key = name.strip().lower()
        if key == b"domain" and not keep_domain:
            changed = True
            continue
        if key == b"path" and eq:
            path = attr.strip()
            new = _cookie_path(path, place)
            if new != path:
                changed = True
                part = name + b"=" + new
        out.append(part)
    return b";".join(out) if changed else value


def _cookie_path(path: bytes, place: Place) -> bytes:
    if not path.startswith(b"/") or not place.prefix:
        return path  # not a path: the browser uses its default, which is inside the prefix
    if place.inside(path):
        return path
    if place.keep_prefix:
        return place.prefix + b"/"
    return place.prefix + path


def response_headers(headers: Iterable[tuple[bytes, bytes]], place: Place, rewrites: Rewrites) -> Headers:
    """An app's response headers with its redirects and cookies kept inside the prefix.

    Every header keeps its place and name; only the values of ``Location``,
    ``Content-Location``, ``Refresh`` and ``Set-Cookie`` may change.
    """
    out: Headers = []
    for name, value in headers:
        if rewrites.redirects and name in LOCATION_HEADERS:
            value = location(value, place)
        elif rewrites.redirects and name == b"refresh":
            value = refresh(value, place)
        elif rewrites.cookies and name == b"set-cookie":
            value = set_cookie(value, place, keep_domain=rewrites.keep_domain)
        out.append((name, value))
    return out
