"""Strict rules on the bytes of a request head, checked before h11 parses them. Pure, no I/O.

h11 accepts a bare LF as a line ending and unfolds obs-fold continuation
lines; node's llhttp (which configurable-http-proxy uses) and most front
proxies do not. Two parsers that disagree about where a header line or the
head ends are the stuff of request smuggling, so trioproxy refuses what h11
would have been lenient about (RFC 9112 §2.2 and §5.2 allow both refusals):

* a line of the head (the request line or a header line) ending in LF
  without CR: 400;
* a header line starting with SP or HT (obs-fold, or whitespace before the
  first header): 400;
* a request line naming an HTTP version other than 1.0 and 1.1 (``HTTP/2.0``,
  which is how the HTTP/2 prior-knowledge preface ``PRI * HTTP/2.0`` starts,
  and ``HTTP/9.9``): 505. Other malformed request lines are h11's to refuse.

:class:`HeadScan` reads a head as it arrives, piece by piece, looking only at
the bytes up to the first empty line (the end of the head as a strict parser
sees it), so a body is never scanned and a trickled head costs no more than
one that arrives whole. A head that never ends is h11's to refuse once it
holds more than ``MAX_HEADER_BYTES``: at most that and one read more is
scanned. When no line ends in a bare LF, that end is also where h11 ends the
head (h11's end is the first ``\\n\\r?\\n``).
"""

from __future__ import annotations

import re

#: (status, reason) of a refused head.
Problem = tuple[int, str]

BARE_LF: Problem = (400, "a line of the request head ends in LF without CR")
OBS_FOLD: Problem = (400, "a header line starts with whitespace (obs-fold)")
HTTP2_PREFACE: Problem = (505, "HTTP/2 is not served here; speak HTTP/1.1")

_END = b"\r\n\r\n"
#: The version at the end of a request line, as h11 would read it.
_VERSION = re.compile(rb" HTTP/([0-9])\.([0-9])\Z")
_SERVED_VERSIONS = frozenset({(b"1", b"0"), (b"1", b"1")})
_SERVED_LINE_ENDS = frozenset({b" HTTP/1.1", b" HTTP/1.0"})
#: The request line's last bytes kept while it arrives (its version is 9 of them).
_TAIL = 16
#: A line that starts with whitespace: a fold (the request line cannot: h11 refuses that).
_FOLD = re.compile(rb"\n[ \t]")


def version_problem(line_end: bytes) -> Problem | None:
    """A 505 for a request line (its last bytes, CR LF excluded) that names an HTTP version not served."""
    match = _VERSION.search(line_end)
    if match is None or (match[1], match[2]) in _SERVED_VERSIONS:
        return None
    if match[1] == b"2":
        return HTTP2_PREFACE
    return 505, f"HTTP/{match[1].decode()}.{match[2].decode()} is not supported"


class HeadScan:
    """One request head, fed as it arrives; :meth:`feed` says what is wrong with it, once.

    State is a few bytes (the last three fed, the request line's tail), never the head.
    """

    __slots__ = ("_carry", "_in_first_line", "_line", "done")

    def __init__(self) -> None:
        #: The head's end was seen, or a problem found: nothing more to check.
        self.done = False
        self._carry = b""  # the last (up to) 3 bytes fed, to see a CR LF or an end across two pieces
        self._line = b""  # the last bytes of the request line while it arrives
        self._in_first_line = True

    def feed(self, data: bytes) -> Problem | None:
        """Scan the next piece of the stream; a problem, or None (also once done)."""
        if self.done or not data:
            return None
        if not self._carry and self._in_first_line:
            end = data.find(_END)
            if end >= 0:
                return self._whole(data[: end + 4])
        carry = self._carry
        # Where the head ends in this piece: an empty line, maybe begun in the piece before.
        i = (carry + data[:3]).find(_END)
        end = i + 4 - len(carry) if i >= 0 else data.find(_END)
        if i < 0 and end >= 0:
            end += 4
        head = data if end < 0 else data[:end]  # a copy of the head's part only
        problem = self._check(carry, head)
        self._carry = (carry + head[-3:])[-3:]
        if problem is not None or end >= 0:
            self.done = True
        return problem

    def _whole(self, head: bytes) -> Problem | None:
        """The same checks on a head that came in one piece (most do): fewer steps."""
        self.done = True
        if head.count(b"\n") != head.count(b"\r\n"):
            return BARE_LF
        k = head.find(b"\r\n")
        if head[k - 9 : k] not in _SERVED_LINE_ENDS:
            problem = version_problem(head[max(0, k - _TAIL) : k])
            if problem is not None:
                return problem
        return OBS_FOLD if _FOLD.search(head) else None

    def _check(self, carry: bytes, head: bytes) -> Problem | None:
        joint = carry + head[:2]  # the bytes around the boundary with the previous piece
        # Every LF must close a CR LF (one may straddle the boundary).
        crlf = head.count(b"\r\n") + (1 if head[:1] == b"\n" and carry.endswith(b"\r") else 0)
        if head.count(b"\n") != crlf:
            return BARE_LF
        if self._in_first_line:
            k = head.find(b"\n")
            if k < 0:
                self._line = (self._line + head[-_TAIL:])[-_TAIL:]
            else:
                self._in_first_line = False
                line_end = (self._line + head[max(0, k - _TAIL) : k])
                problem = version_problem(line_end[:-1] if line_end.endswith(b"\r") else line_end)
                if problem is not None:
                    return problem
                self._line = b""
        if _FOLD.search(head) or _FOLD.search(joint):
            return OBS_FOLD
        return None
