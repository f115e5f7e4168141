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
