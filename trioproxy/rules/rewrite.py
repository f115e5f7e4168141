"""Keep an app that does not know its prefix inside it: its redirects and its cookie paths.

Pure functions on header values (bytes in, bytes out), no I/O.

trioproxy strips ``JUPYTERHUB_SERVICE_PREFIX`` before the app sees a path, so
an app that does not know its prefix answers as if it lived at ``/``: a
``Location: /login`` would send the browser out of this server (to the Hub's
404), a ``Set-Cookie: ...; Path=/`` would be stored for the whole Hub origin
and sent to every other user's server. Here both are moved under the prefix.

:func:`location` (also for ``Content-Location`` and the URL of ``Refresh``):

=====================================  =========================================
the app sends                          the browser gets (prefix ``/user/alice``)
=====================================  =========================================
``/login``                             ``/user/alice/login``
``/``                                  ``/user/alice/``
``/user/alice/lab`` (already inside)   unchanged (no double prefix)
``http://127.0.0.1:41873/items/``      ``/user/alice/items/`` (the app's own address)
``http://hub.example.org/x``           ``http://hub.example.org/user/alice/x`` (the
                                       request's own host, without the prefix)
``//hub.example.org/x``                ``//hub.example.org/user/alice/x``
``login``, ``../x``, ``?page=2``       unchanged (relative: the browser resolves
                                       it under the prefix already)
``https://github.com/login``           unchanged (foreign)
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
prefix already. ``Domain`` is dropped unless kept on purpose: a cookie for
the Hub's whole domain would reach every server and the Hub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: A URL scheme (RFC 3986 §3.1) and its colon.
_SCHEME = re.compile(rb"^([A-Za-z][A-Za-z0-9+.\-]*):")
#: Schemes whose URLs name a host of ours.
_WEB_SCHEMES = frozenset({b"http", b"https", b"ws", b"wss"})
#: ``Refresh: 5; url=/x`` (quotes optional, any case).
_REFRESH = re.compile(rb"^(\s*\d*\s*[;,]\s*url\s*=\s*)(['\"]?)(.*?)(\2)(\s*)$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Place:
    """Where this server lives, as seen from the browser and from the app."""

    #: The prefix without its trailing slash (b"" at the root), as the browser writes it.
    prefix: bytes
    #: ``host:port`` forms of the app's own address (lower case), e.g. ``127.0.0.1:41873``.
    app_hosts: frozenset[bytes] = frozenset()
    #: The Host the browser sent (lower case), b"" if none.
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


def app_hosts(port: int, hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "[::1]", "0.0.0.0")) -> frozenset[bytes]:
    """The ``host:port`` spellings under which an app on loopback ``port`` names itself."""
    return frozenset(f"{h}:{port}".encode() for h in hosts)


def _spellings(prefix: bytes) -> tuple[bytes, ...]:
    """The prefix as the app may have written it: as given, and with ``@`` and ``%40`` swapped."""
    if b"@" in prefix:
        return (prefix, prefix.replace(b"@", b"%40"))
    if b"%40" in prefix.lower():
        return (prefix, re.sub(rb"%40", b"@", prefix, flags=re.IGNORECASE))
    return (prefix,)


def _split_authority(rest: bytes) -> tuple[bytes, bytes]:
    """``//host:port/path?q`` (without the ``//``) -> (host:port, /path?q)."""
    end = len(rest)
    for mark in (b"/", b"?", b"#"):
        i = rest.find(mark)
        if i != -1:
            end = min(end, i)
    return rest[:end], rest[end:]


def _path_of(tail: bytes) -> bytes:
    """What follows an authority, as a path-absolute reference (``?q`` becomes ``/?q``)."""
    return tail if tail.startswith(b"/") else b"/" + tail


def location(value: bytes, place: Place) -> bytes:
    """The app's ``Location`` (or ``Content-Location``) as the browser must get it."""
    url = value.strip()
    if not url:
        return value
    if url.startswith(b"//"):
        return _absolute(value, b"", url[2:], place)
    if url.startswith(b"/"):
        moved = place.under(url)
        return value if moved == url else moved
    match = _SCHEME.match(url)
    if match is None:
        return value  # relative: resolved under the prefix by the browser
    scheme = match.group(1).lower()
    rest = url[match.end() :]
    if scheme not in _WEB_SCHEMES or not rest.startswith(b"//"):
        return value
    return _absolute(value, url[: match.end()], rest[2:], place)


def _absolute(value: bytes, scheme: bytes, rest: bytes, place: Place) -> bytes:
    authority, tail = _split_authority(rest)
    host = authority.rsplit(b"@", 1)[-1].lower()  # userinfo is never ours to keep or judge
    if host in place.app_hosts:
        # The app's own loopback address: no browser can reach it, the prefix can.
        return place.under(_path_of(tail))
    if place.request_host and host == place.request_host:
        path = _path_of(tail)
        moved = place.under(path)
        if moved == path and tail == path:
            return value
        return scheme + b"//" + authority + moved
    return value


def refresh(value: bytes, place: Place) -> bytes:
    """The app's ``Refresh: N; url=...`` with its URL kept inside the prefix."""
    match = _REFRESH.match(value)
    if match is None:
        return value
    head, quote, url, _, tail = match.groups()
    moved = location(url, place)
    if moved == url:
        return value
    return head + quote + moved + quote + tail


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
