"""RFC 6455 framing (trioproxy.rules.frames), pure: fixed vectors, then hypothesis.

Budget: ``FUZZ_EXAMPLES`` examples per property (200 by default), as tests/test_fuzz.py.
"""

from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trioproxy.rules import frames as F

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_rfc_examples() -> None:
    # RFC 6455 §5.7: "Hello", unmasked and masked with 37 fa 21 3d; a 256-byte and a 64 KiB binary header.
    assert F.encode(F.Opcode.TEXT, b"Hello") == bytes.fromhex("810548656c6c6f")
    masked = bytes.fromhex("818537fa213d7f9f4d5158")
    assert F.encode(F.Opcode.TEXT, b"Hello", mask_key=bytes.fromhex("37fa213d")) == masked
    assert F.encode(F.Opcode.CONTINUATION, b"lo", fin=True) == bytes.fromhex("80026c6f")
    assert F.encode_header(F.Opcode.BINARY, 256) == bytes.fromhex("827e0100")
    assert F.encode_header(F.Opcode.BINARY, 65536) == bytes.fromhex("827f0000000000010000")
    h = F.parse_header(masked)
    assert h == F.FrameHeader(fin=True, rsv=0, opcode=1, length=5, mask_key=bytes.fromhex("37fa213d"), length_bytes=0)
    assert h.size == 6 and h.masked
    assert F.FrameReader().feed(masked) == [(h, b"Hello")]
    # RFC 6455 §1.3's handshake example.
    assert F.accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_header_fields_exact() -> None:
    h = F.parse_header(bytes([0b0111_0011, 0x7E, 0x00, 0x05]))  # no FIN, RSV1-3, opcode 3, 16-bit 5
    assert h is not None
    assert (h.fin, h.rsv1, h.rsv2, h.rsv3, h.opcode, h.length, h.masked, h.size) == (
        False, True, True, True, 3, 5, False, 4)
    assert F.violation(h) == "reserved opcode 0x3"
    assert F.violation(F.parse_header(bytes([0x82, 0x7E, 0x00, 0x05]))) == "a length not in its shortest encoding"
    top = F.parse_header(bytes([0x82, 0x7F]) + (1 << 63).to_bytes(8, "big"))
    assert top is not None and top.length == 1 << 63
    assert F.violation(top) == "a 64-bit length with its most significant bit set"
    assert F.violation(F.parse_header(F.encode_header(F.Opcode.PING, 0, fin=False))) == "a fragmented control frame"
    assert F.violation(F.parse_header(F.encode_header(F.Opcode.CLOSE, 126))) == "a control frame with 126 payload bytes"
    assert F.violation(F.parse_header(F.encode_header(F.Opcode.BINARY, 70000, rsv=0b100))) is None


def test_close_payloads() -> None:
    assert F.close_payload(1001, b"bye") == b"\x03\xe9bye"
    assert F.parse_close(b"\x03\xe9bye") == (1001, b"bye")
    assert F.parse_close(b"") == (None, b"") and F.parse_close(b"\x03") == (None, b"")


def test_encode_refuses_what_no_header_can_say() -> None:
    for kw in ({"opcode": 16, "length": 0}, {"opcode": 1, "length": 1 << 64}, {"opcode": 1, "length": -1}):
        with pytest.raises(ValueError):
            F.encode_header(**kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        F.encode_header(1, 0, mask_key=b"abc")


# Payload lengths around the encodings' edges (125/126, 65535/65536) as well as small ones.
_sizes = st.one_of(st.integers(0, 300), st.sampled_from([125, 126, 127, 65535, 65536, 65537]))
_payloads = _sizes.flatmap(lambda n: st.binary(min_size=n, max_size=n))
_frames = st.tuples(
    st.integers(0, 15), st.booleans(), st.integers(0, 7), st.none() | st.binary(min_size=4, max_size=4), _payloads
)


@fuzz
@given(_frames)
def test_round_trip(frame: tuple[int, bool, int, bytes | None, bytes]) -> None:
    opcode, fin, rsv, key, payload = frame
    wire = F.encode(opcode, payload, fin=fin, rsv=rsv, mask_key=key)
    h = F.parse_header(wire)
    assert h is not None
    assert (h.opcode, h.fin, h.rsv, h.mask_key, h.length) == (opcode, fin, rsv, key, len(payload))
    assert h.size == F.header_size(wire[:2]) == len(wire) - len(payload)
    assert h.length_bytes == (0 if len(payload) < 126 else 2 if len(payload) < 65536 else 8)
    assert F.encode_header(opcode, len(payload), fin=fin, rsv=rsv, mask_key=key) == wire[: h.size]
    body = wire[h.size :]
    assert (F.mask(key, body) if key else body) == payload
    # Every strict prefix of a header is "not yet", whatever follows is not looked at.
    assert all(F.parse_header(wire[:i]) is None for i in range(h.size))


@fuzz
@given(st.lists(_frames, min_size=1, max_size=6), st.lists(st.integers(0, 1 << 17), max_size=12))
def test_split_anywhere(frames: list[tuple[int, bool, int, bytes | None, bytes]], cuts: list[int]) -> None:
    wire = b"".join(F.encode(op, p, fin=fin, rsv=rsv, mask_key=key) for op, fin, rsv, key, p in frames)
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    reader = F.FrameReader()
    got = []
    for a, b in itertools.pairwise(points):
        got += reader.feed(wire[a:b])
    assert reader.pending == 0
    assert [(h.opcode, h.fin, h.rsv, h.mask_key, p) for h, p in got] == [
        (op, fin, rsv, key, p) for op, fin, rsv, key, p in frames]


@fuzz
@given(st.binary(min_size=4, max_size=4), st.binary(max_size=2000))
def test_mask_is_an_involution(key: bytes, data: bytes) -> None:
    once = F.mask(key, data)
    assert len(once) == len(data) and F.mask(key, once) == data
    assert once == bytes(b ^ key[i % 4] for i, b in enumerate(data))


@fuzz
@given(st.binary(max_size=20))
def test_any_bytes_parse_or_wait(data: bytes) -> None:
    h = F.parse_header(data)
    if h is None:
        assert len(data) < F.header_size(data)
    else:
        assert h.size == F.header_size(data) <= len(data)
        assert F.encode_header(h.opcode, h.length, fin=h.fin, rsv=h.rsv, mask_key=h.mask_key) == data[: h.size] or (
            F.violation(h) == "a length not in its shortest encoding")


# --- FrameTracker: one direction of the relay, from the headers alone -------------------------------------------

LIMIT = 70000
KEY = b"\x01\x02\x03\x04"


def _wire(frames: list[tuple[int, bool, bytes]], *, masked: bool) -> tuple[bytes, list[int]]:
    """Frames on the wire, and the offset where each ends."""
    out, ends = b"", []
    for op, fin, payload in frames:
        out += F.encode(op, payload, fin=fin, mask_key=KEY if masked else None)
        ends.append(len(out))
    return out, ends


def _feed(t: F.FrameTracker, wire: bytes, cuts: list[int]) -> tuple[bytes, list[int]]:
    """Feed ``wire`` in pieces; what passed, and every boundary reported (as offsets in what passed)."""
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    out, boundaries = b"", []
    for a, b in itertools.pairwise(points):
        got = t.feed(wire[a:b])
        if t.boundary >= 0:
            boundaries.append(len(out) + t.boundary)
        out += got
    return out, boundaries


# Well-formed messages: each a list of frames (data, then continuations), with control frames among them.
_payload = st.one_of(st.binary(max_size=40), st.sampled_from([b"x" * 125, b"y" * 126, b"z" * 65536]))
_control = st.tuples(st.sampled_from([F.Opcode.PING, F.Opcode.PONG]), st.just(True), st.binary(max_size=125))


@st.composite
def _conversation(draw: st.DrawFn) -> list[tuple[int, bool, bytes]]:
    frames: list[tuple[int, bool, bytes]] = []
    for _ in range(draw(st.integers(1, 5))):
        parts = draw(st.lists(_payload, min_size=1, max_size=3))
        if sum(map(len, parts)) > LIMIT:
            parts = parts[:1]
        op = draw(st.sampled_from([F.Opcode.TEXT, F.Opcode.BINARY]))
        for i, part in enumerate(parts):
            frames.append((op if i == 0 else F.Opcode.CONTINUATION, i == len(parts) - 1, part))
            if draw(st.booleans()):
                frames.append(draw(_control))
    return frames


@fuzz
@given(_conversation(), st.lists(st.integers(0, 1 << 18), max_size=12), st.booleans())
def test_tracker_passes_every_sound_byte_and_sees_every_boundary(
    frames: list[tuple[int, bool, bytes]], cuts: list[int], from_client: bool
) -> None:
    wire, ends = _wire(frames, masked=from_client)
    t = F.FrameTracker(from_client=from_client, limit=LIMIT)
    out, boundaries = _feed(t, wire, cuts)
    assert out == wire and t.error is None and not t.closed and t.at_boundary
    assert set(boundaries) <= set(ends)  # a boundary reported is always a frame's end...
    data = [f for f in frames if f[0] < 8]
    assert t.messages == sum(fin for _, fin, _ in data)
    assert t.payload == sum(len(p) for _, _, p in data)
    # ...and fed one byte at a time, every frame's end is reported.
    t = F.FrameTracker(from_client=from_client, limit=LIMIT)
    out, boundaries = _feed(t, wire, list(range(len(wire)))) if len(wire) < 3000 else (wire, ends)
    assert out == wire and boundaries == ends


#: (what, the bad frame's (opcode, fin, rsv, masked?, payload, announced length), the code)
_BREACHES = [
    ("unmasked from a client / masked from a server", (F.Opcode.TEXT, True, 0, "wrong", b"hi", None), 1002),
    ("RSV1", (F.Opcode.TEXT, True, 0b100, "right", b"hi", None), 1002),
    ("RSV3", (F.Opcode.BINARY, True, 0b001, "right", b"hi", None), 1002),
    ("reserved data opcode", (0x3, True, 0, "right", b"hi", None), 1002),
    ("reserved control opcode", (0xB, True, 0, "right", b"", None), 1002),
    ("a fragmented ping", (F.Opcode.PING, False, 0, "right", b"p", None), 1002),
    ("a 126-byte ping", (F.Opcode.PING, True, 0, "right", b"p" * 126, None), 1002),
    ("a continuation of nothing", (F.Opcode.CONTINUATION, True, 0, "right", b"x", None), 1002),
    ("a frame over the limit, only its header", (F.Opcode.BINARY, True, 0, "right", b"", LIMIT + 1), 1009),
    ("2**63 - 1 announced", (F.Opcode.BINARY, True, 0, "right", b"", 2**63 - 1), 1009),
]


@pytest.mark.parametrize(("what", "bad", "code"), _BREACHES, ids=[b[0] for b in _BREACHES])
@pytest.mark.parametrize("from_client", [True, False])
def test_tracker_stops_at_a_bad_header(what: str, bad: tuple, code: int, from_client: bool) -> None:
    op, fin, rsv, masked, payload, length = bad
    key = KEY if (masked == "right") == from_client else None
    good, _ = _wire([(F.Opcode.TEXT, True, b"ok"), (F.Opcode.PING, True, b"")], masked=from_client)
    wire = good + F.encode(op, payload, fin=fin, rsv=rsv, mask_key=key, length=length) + good
    for step in (1, 3, len(wire)):
        t = F.FrameTracker(from_client=from_client, limit=LIMIT)
        out = b"".join(t.feed(wire[i : i + step]) for i in range(0, len(wire), step))
        assert out == good, (what, step)  # nothing of the bad header, nothing after it
        assert t.error is not None and t.error[0] == code and t.stopped and t.at_boundary
        assert t.feed(good) == b""


def test_tracker_sizes_from_the_headers_of_a_fragmented_message() -> None:
    t = F.FrameTracker(from_client=False, limit=1000)
    first = F.encode(F.Opcode.BINARY, b"a" * 600, fin=False)
    assert t.feed(first) == first
    # The next fragment announces 600 more: refused at its header, before any of its payload.
    assert t.feed(F.encode_header(F.Opcode.CONTINUATION, 600)) == b""
    assert t.error == (1009, "message too big")
    # A new message inside an open one, and a message exactly at the limit.
    t = F.FrameTracker(from_client=False, limit=1000)
    assert t.feed(first) == first and t.feed(F.encode(F.Opcode.TEXT, b"b")) == b""
    assert t.error is not None and t.error[0] == 1002
    t = F.FrameTracker(from_client=False, limit=1000)
    whole = F.encode(F.Opcode.BINARY, b"a" * 600, fin=False) + F.encode(F.Opcode.CONTINUATION, b"b" * 400)
    assert t.feed(whole) == whole and t.error is None and t.messages == 1


def test_tracker_after_a_close_frame_passes_nothing() -> None:
    for from_client in (True, False):
        key = KEY if from_client else None
        close = F.encode(F.Opcode.CLOSE, F.close_payload(1000, b"bye"), mask_key=key)
        after = F.encode(F.Opcode.TEXT, b"late", mask_key=key)
        t = F.FrameTracker(from_client=from_client, limit=LIMIT)
        assert t.feed(close[:3]) == b"" or not from_client  # a masked header is 6 bytes: held
        t = F.FrameTracker(from_client=from_client, limit=LIMIT)
        assert t.feed(close[:4]) + t.feed(close[4:] + after) == close
        assert t.closed and t.stopped and t.feed(after) == b""


@fuzz
@given(_conversation(), st.integers(0, 10), st.lists(st.integers(0, 1 << 18), max_size=6))
def test_tracker_takes_out_the_pong_to_its_ping(
    frames: list[tuple[int, bool, bytes]], where: int, cuts: list[int]
) -> None:
    token = b"trioproxy-test"
    pong = F.encode(F.Opcode.PONG, token, mask_key=b"\x09\x08\x07\x06")
    wire, ends = _wire(frames, masked=True)
    at = ([0, *ends])[where % (len(ends) + 1)]
    t = F.FrameTracker(from_client=True, limit=LIMIT)
    t.pong = token
    # The pong arrives whole in one piece (cuts elsewhere only).
    first, rest = wire[:at] + pong, wire[at:]
    out = b"".join(t.feed(piece) for piece in _pieces(first, cuts, keep_tail=len(pong)))
    out += b"".join(t.feed(piece) for piece in _pieces(rest, cuts))
    assert out == wire and t.answered == 1 and t.pong is None
    # A second pong with the same payload is not ours any more: it passes.
    again = F.encode(F.Opcode.PONG, token, mask_key=KEY)
    assert t.feed(again) == again
    # Neither does a pong with another payload, nor an unmasked one from the server's side.
    t = F.FrameTracker(from_client=True, limit=LIMIT)
    t.pong = token
    other = F.encode(F.Opcode.PONG, b"the app's", mask_key=KEY)
    assert t.feed(other) == other and t.pong == token


def _pieces(data: bytes, cuts: list[int], keep_tail: int = 0) -> list[bytes]:
    """``data`` cut at ``cuts``, none of them in its last ``keep_tail`` bytes."""
    limit = len(data) - keep_tail
    points = sorted({c % (limit + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def test_tracker_boundaries_with_a_pong_taken_out() -> None:
    token = b"tp"
    t = F.FrameTracker(from_client=True, limit=LIMIT)
    t.pong = token
    a = F.encode(F.Opcode.TEXT, b"one", mask_key=KEY)
    pong = F.encode(F.Opcode.PONG, token, mask_key=KEY)
    b = F.encode(F.Opcode.TEXT, b"two", mask_key=KEY)
    out = t.feed(a + pong + b[:3])
    assert out == a and t.boundary == len(a) and not t.at_boundary  # b's header is held: 6 bytes
    out = t.feed(b[3:])
    assert out == b and t.boundary == len(b) and t.at_boundary


@fuzz
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=8), st.booleans(), st.integers(0, 300))
def test_tracker_on_any_bytes_in_any_pieces(data: bytes, cuts: list[int], from_client: bool, limit: int) -> None:
    """Hostile input: never an exception; what passes is a prefix of the input, the same however it is
    cut, and it ends at a frame boundary whenever the tracker stops."""
    whole = F.FrameTracker(from_client=from_client, limit=limit)
    once = whole.feed(data)
    t = F.FrameTracker(from_client=from_client, limit=limit)
    pieces, _ = _feed(t, data, cuts)
    assert pieces == once and data.startswith(once)
    assert (t.error, t.closed, t.messages, t.payload) == (whole.error, whole.closed, whole.messages, whole.payload)
    if t.stopped:
        assert t.at_boundary and t.feed(b"\x81\x80" + KEY) == b""


# --- FrameTracker.skip: payload bytes moved unseen (the relay's big reads) -------------------------------------


def _feed_skipping(t: F.FrameTracker, wire: bytes, cuts: list[int], skips: list[int]) -> tuple[bytes, list[int]]:
    """Like :func:`_feed`, but wherever the tracker has payload ``passing``, the next of ``skips`` (taken
    modulo it, plus one) bytes go by unseen through :meth:`FrameTracker.skip` instead of being fed."""
    points = sorted({c % (len(wire) + 1) for c in cuts} | {len(wire)})
    out, boundaries, at, todo = b"", [], 0, list(skips)
    while at < len(wire):
        if t.passing and todo:
            n = todo.pop() % t.passing + 1
            t.skip(n)
            got = wire[at : at + n]
        else:
            end = next(p for p in points if p > at)
            got = t.feed(wire[at:end])
            n = end - at
        if t.boundary >= 0:
            boundaries.append(len(out) + t.boundary)
        out += got
        at += n
        if t.stopped:
            break
    return out, boundaries


@fuzz
@given(_conversation(), st.lists(st.integers(0, 1 << 18), max_size=12), st.lists(st.integers(0, 1 << 17)),
       st.booleans())
def test_tracker_skip_is_feeding_unseen(
    frames: list[tuple[int, bool, bytes]], cuts: list[int], skips: list[int], from_client: bool
) -> None:
    wire, ends = _wire(frames, masked=from_client)
    fed = F.FrameTracker(from_client=from_client, limit=LIMIT)
    t = F.FrameTracker(from_client=from_client, limit=LIMIT)
    out, boundaries = _feed_skipping(t, wire, cuts, skips)
    assert out == wire and t.error is None and t.at_boundary and t.passing == 0
    assert set(boundaries) <= set(ends)
    fed.feed(wire)
    assert (t.messages, t.payload, t.closed) == (fed.messages, fed.payload, fed.closed)


@fuzz
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=8), st.lists(st.integers(0, 400)),
       st.booleans(), st.integers(0, 300))
def test_tracker_skip_on_any_bytes(
    data: bytes, cuts: list[int], skips: list[int], from_client: bool, limit: int
) -> None:
    """Hostile input: skipping what is passing never changes the verdict, what passes, or the counts."""
    whole = F.FrameTracker(from_client=from_client, limit=limit)
    once = whole.feed(data)
    t = F.FrameTracker(from_client=from_client, limit=limit)
    out, _ = _feed_skipping(t, data, cuts, skips)
    assert out == once
    assert (t.error, t.closed, t.messages, t.payload) == (whole.error, whole.closed, whole.messages, whole.payload)


def test_tracker_skip_bounds() -> None:
    t = F.FrameTracker(from_client=False, limit=LIMIT)
    frame = F.encode(F.Opcode.BINARY, bytes(1000))
    assert t.passing == 0
    with pytest.raises(ValueError):
        t.skip(1)
    assert t.feed(frame[:10]) == frame[:10] and t.passing == 994  # a 4-byte header, 6 payload bytes
    with pytest.raises(ValueError):
        t.skip(995)
    t.skip(994)
    assert t.at_boundary and t.boundary == 994 and t.passing == 0 and t.messages == 1
    t.feed(F.encode(F.Opcode.CLOSE, b"\x03\xe8"))
    assert t.closed and t.passing == 0
    held = F.FrameTracker(from_client=False, limit=LIMIT)
    held.feed(frame[:1])  # a header begun: nothing is passing until it is whole
    assert held.passing == 0
