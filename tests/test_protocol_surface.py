"""The protocol surface of the pod port (issue 10), on raw sockets to trioproxy (in-process).

HTTP/1.1 only (no HTTP/2 by prior knowledge, by h2c upgrade or by ALPN), a
strict request head (no bare LF, no obs-fold) wherever a head can arrive, the
headers on trioproxy's own responses (and only on those), and connections that
end when an answer or an HTTP/1.0 request says so. ``tests/apps/bad_app.py``
records every request line it receives (``/seen``), so a test can tell what
reached the app.

The scanner of :mod:`trioproxy.rules.head` is also tested alone, split at every
byte, since a head may arrive in any number of pieces.

Loopback only; every I/O test is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl

import httpx
import pytest
import trio

from trioproxy.rules import head as _head

from . import rawnet
from .conftest import app_cmd, serve_proxy

BAD = app_cmd("bad_app.py")
#: Far below the keep-alive timeout (75 s): a connection still open after this was left open.
CLOSE_BOUND_S = 5.0
OWN = {b"content-security-policy": b"frame-ancestors 'self'", b"x-content-type-options": b"nosniff"}


async def seen_requests(p) -> list[str]:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as c:
        r = await c.get(p.url + "/seen")
        assert r.status_code == 200, r.text
        return r.json()["requests"]


def no_traceback(p) -> None:
    assert "Traceback" not in p.log, p.log[p.log.find("Traceback") - 300 :][:4000]


async def one_exchange(p, data: bytes) -> tuple[list[rawnet.Response], bytes, bool]:
    with trio.fail_after(15):
        return await rawnet.exchange(p.port, data, quiet=CLOSE_BOUND_S)


# --- the head scanner alone -----------------------------------------------------------------------

GOOD_HEADS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /x HTTP/1.0\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nX-Tab: a\tb\r\n\r\nbo\ndy\n \n",  # LFs in the body
    b"GET /" + b"u" * 3000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / http/1.1\r\nHost: a\r\n\r\n",  # malformed, but h11's to refuse (400), not a version it names
]
BAD_HEADS = [
    (b"GET / HTTP/1.1\nHost: a\r\n\r\n", _head.BARE_LF),
    (b"GET / HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n", _head.BARE_LF),
    (b"GET / HTTP/1.1\r\nHost: a\r\n\n", _head.BARE_LF),
    (b"GET / HTTP/1.1\r\nHost: a\n\r\n", _head.BARE_LF),
    (b"GET / HTTP/1.1\nHost: a\n\n", _head.BARE_LF),
    (b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", _head.BARE_LF),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n", _head.OBS_FOLD),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\tfolded\r\n\r\n", _head.OBS_FOLD),
    (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", _head.OBS_FOLD),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", _head.HTTP2_PREFACE),
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", _head.HTTP2_PREFACE),
    (b"GET / HTTP/9.9\r\nHost: a\r\n\r\n", (505, "HTTP/9.9 is not supported")),
]


def scan(pieces: list[bytes]) -> _head.Problem | None:
    scanner = _head.HeadScan()
    for piece in pieces:
        problem = scanner.feed(piece)
        if problem is not None:
            return problem
    return None


@pytest.mark.parametrize("head", GOOD_HEADS)
def test_a_strict_head_passes_in_any_pieces(head: bytes) -> None:
    assert scan([head]) is None
    for i in range(len(head) + 1):
        assert scan([head[:i], head[i:]]) is None, i
    assert scan([head[i : i + 1] for i in range(len(head))]) is None


@pytest.mark.parametrize(("head", "problem"), BAD_HEADS)
def test_a_lenient_head_is_refused_in_any_pieces(head: bytes, problem: _head.Problem) -> None:
    assert scan([head]) == problem
    for i in range(len(head) + 1):
        assert scan([head[:i], head[i:]]) == problem, i
    assert scan([head[i : i + 1] for i in range(len(head))]) == problem


def test_the_scan_stops_at_the_end_of_the_head() -> None:
    scanner = _head.HeadScan()
    assert scanner.feed(b"GET / HTTP/1.1\r\nHost: a\r\n") is None and not scanner.done
    assert scanner.feed(b"\r\nbody\nwith\n bare LFs") is None and scanner.done
    assert scanner.feed(b"X\n\n") is None


# --- HTTP/1.1 only ------------------------------------------------------------------------------

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: An empty SETTINGS frame, as an HTTP/2 client sends right after the preface.
H2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
H2C = (b"GET /user/test/h2c-%d HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
       b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")


async def test_http2_prior_knowledge_gets_505_and_the_connection_closes():
    with trio.fail_after(60):
        async with serve_proxy(BAD) as p:
            await p.wait_ready()
            for data in (H2_PREFACE, H2_PREFACE + H2_SETTINGS):
                responses, rest, eof = await one_exchange(p, data)
                assert [r.status for r in responses] == [505], (responses, rest[:40])
                assert rest == b"" and eof
                assert responses[0].header(b"connection") == b"close"
            assert not any("PRI" in line for line in await seen_requests(p))
            no_traceback(p)


async def test_an_h2c_upgrade_is_served_as_plain_http11_and_never_reaches_the_app_as_an_upgrade(jump_clock):
    """Like nginx: the offer is ignored (no 101, no HTTP/2), the request is answered in HTTP/1.1, and the
    connection goes on in HTTP/1.1. The app sees a plain request: no Upgrade, no HTTP2-Settings."""
    with trio.fail_after(60):
        async with serve_proxy(BAD) as p:
            await p.wait_ready()
            post = (b"POST /user/test/h2c-post HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                    b"Upgrade: foo, H2C\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 2\r\n\r\nhi")
            data = H2C % 1 + post + rawnet.request("GET", "/user/test/h2c-after") + H2C % 2
            responses, rest, eof = await one_exchange(p, data)
            assert [r.status for r in responses] == [200, 200, 200, 200], (responses, rest[:60])
            assert not eof  # still an HTTP/1.1 keep-alive connection
            targets = [json.loads(r.body)["target"] for r in responses]
            assert targets == ["/h2c-1", "/h2c-post", "/h2c-after", "/h2c-2"]
            for r in responses:
                names = {name for name, _ in json.loads(r.body)["headers"]}
                assert not names & {"upgrade", "http2-settings", "connection"}, names
            assert json.loads(responses[1].body)["body_len"] == 2
            no_traceback(p)


def _self_signed(tmp_path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return str(certfile), str(keyfile)


async def test_tls_offers_only_http11_by_alpn(tmp_path):
    certfile, keyfile = _self_signed(tmp_path)
    env = {"JUPYTERHUB_SSL_CERTFILE": certfile, "JUPYTERHUB_SSL_KEYFILE": keyfile}
    with trio.fail_after(60):
        async with serve_proxy(BAD, env=env) as p:
            await p.wait_ready()
            for offered in (["h2", "http/1.1"], ["h2"]):
                context = ssl.create_default_context(cafile=certfile)
                context.set_alpn_protocols(offered)
                tcp = await trio.open_tcp_stream("127.0.0.1", p.port)
                stream = trio.SSLStream(tcp, context, server_hostname="127.0.0.1", https_compatible=True)
                await stream.do_handshake()
                assert stream.selected_alpn_protocol() == ("http/1.1" if "http/1.1" in offered else None)
                await stream.send_all(rawnet.request("GET", "/user/test/alpn", close=True))
                raw = b""
                while chunk := await stream.receive_some():
                    raw += chunk
                assert raw.startswith(b"HTTP/1.1 200 "), raw[:100]
                await stream.aclose()
            no_traceback(p)


# --- strict heads -----------------------------------------------------------------------------------

LENIENT = [
    ("a bare LF ending the request line", b"GET /user/test/lf-line HTTP/1.1\nHost: a\r\n\r\n"),
    ("a bare LF ending a header line", b"GET /user/test/lf-header HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n"),
    ("a bare LF ending the head", b"GET /user/test/lf-end HTTP/1.1\r\nHost: a\r\n\n"),
    ("LF CR LF ending the head", b"GET /user/test/lf-crlf HTTP/1.1\r\nHost: a\n\r\n"),
    ("bare LFs only", b"GET /user/test/lf-only HTTP/1.1\nHost: a\n\n"),
    ("a bare LF hiding a framing header",
     (b"POST /user/test/lf-te HTTP/1.1\r\nHost: a\r\nX-A: 1\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n"
      b"\r\n0\r\n\r\n")),
    ("obs-fold with spaces", b"GET /user/test/fold-sp HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  2\r\n\r\n"),
    ("obs-fold with a tab", b"GET /user/test/fold-tab HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\t2\r\n\r\n"),
    ("whitespace before the first header", b"GET /user/test/fold-first HTTP/1.1\r\n Host: a\r\n\r\n"),
]


def _assert_refused(name: str, responses: list[rawnet.Response], rest: bytes, eof: bool, before: int = 0) -> None:
    statuses = [r.status for r in responses]
    assert statuses == [200] * before + [400], (name, statuses, rest[:60])
    assert responses[-1].header(b"connection") == b"close", name
    assert rest == b"" and eof, (name, rest[:60], eof)


async def test_a_bare_lf_or_obs_fold_in_any_request_head_is_a_400_and_the_connection_closes():
    with trio.fail_after(120):
        async with serve_proxy(BAD) as p:
            await p.wait_ready()
            for name, data in LENIENT:
                # The first request of a connection, in one piece...
                _assert_refused(name, *await one_exchange(p, data))
                # ...trickled one byte at a time (the scan sees each piece once)...
                conn = await rawnet.connect(p.port)
                with trio.fail_after(15):
                    try:
                        for i in range(len(data)):
                            await conn.send(data[i : i + 1])
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass  # refused before the end of the head: fine
                    response = await conn.response()
                    assert response.status == 400 and await conn.read_to_eof() == b"", name
                await conn.aclose()
                # ...pipelined behind a good request (in the bytes h11 holds when the next cycle starts)...
                good = rawnet.request("GET", "/user/test/good-before")
                _assert_refused(name, *await one_exchange(p, good + data), before=1)
                # ...and on a keep-alive connection, after an answer.
                conn = await rawnet.connect(p.port)
                with trio.fail_after(15):
                    await conn.send(good)
                    assert (await conn.response()).status == 200
                    await conn.send(data)
                    response = await conn.response()
                    assert response.status == 400 and await conn.read_to_eof() == b"", name
                await conn.aclose()
            got = "\n".join(await seen_requests(p))
            for name, data in LENIENT:
                marker = data.split(b" ", 2)[1].decode()
                assert marker not in got, f"{name}: reached the app"
            no_traceback(p)


async def test_a_strict_head_in_pieces_split_anywhere_is_served():
    """The control: CR LF split from its LF, or the end of the head split, across reads."""
    head = rawnet.request("GET", "/user/test/split", headers=[("X-A", "1"), ("X-B", "2")])
    with trio.fail_after(120):
        async with serve_proxy(BAD) as p:
            await p.wait_ready()
            conn = await rawnet.connect(p.port)
            for i in range(1, len(head)):
                with trio.fail_after(15):
                    await conn.send(head[:i])
                    await trio.sleep(0.005)  # two reads, most of the time
                    await conn.send(head[i:])
                    response = await conn.response()
                    assert response.status == 200, (i, response)
            await conn.aclose()
            no_traceback(p)


# --- trioproxy's own responses --------------------------------------------------------------------


async def test_own_responses_carry_frame_ancestors_and_nosniff_and_the_apps_do_not(jump_clock):
    with trio.fail_after(60):
        async with serve_proxy(BAD) as p:
            await p.wait_ready()
            own = {
                "a 404 outside the prefix": rawnet.request("GET", "/elsewhere"),
                "the Quart 404 of an unknown endpoint": rawnet.request("GET", "/_trioproxy/nothing"),
                "liveness (Quart)": rawnet.request("GET", "/_trioproxy/live"),
                "readiness (Quart)": rawnet.request("GET", "/_trioproxy/ready"),
                "the redirect of the bare prefix": rawnet.request("GET", "/user/test"),
                "a refused request (a page of _front)": rawnet.request("GET", "/user/test/x", host="exa mple"),
                "the oauth callback (no login in progress)": rawnet.request("GET", "/user/test/oauth_callback"),
            }
            for name, data in own.items():
                responses, _, _ = await one_exchange(p, data)
                assert len(responses) == 1, name
                for header, value in OWN.items():
                    assert responses[0].header_list(header) == [value], (name, responses[0].headers)
            responses, _, _ = await one_exchange(p, rawnet.request("GET", "/user/test/app"))
            assert responses[0].status == 200 and json.loads(responses[0].body)["target"] == "/app"
            assert not {name for name, _ in responses[0].headers} & set(OWN), responses[0].headers
            no_traceback(p)


async def test_own_pages_sent_on_the_way_to_the_app_carry_them_too(jump_clock):
    """The 502 page trioproxy answers for an app that broke the protocol."""
    with trio.fail_after(60):
        async with serve_proxy(BAD) as p:
            await p.wait_ready()
            responses, _, _ = await one_exchange(p, rawnet.request("GET", "/user/test/not-http"))
            assert [r.status for r in responses] == [502]
            for header, value in OWN.items():
                assert responses[0].header_list(header) == [value], responses[0].headers


# --- connections that end ------------------------------------------------------------------------


async def test_own_answers_with_connection_close_close_the_connection():
    """EOF right behind the body, not when the client (or the keep-alive timeout) gives up."""
    with trio.fail_after(90):
        async with serve_proxy(BAD) as p:
            await p.wait_ready()
            for target in ("/_trioproxy/live", "/_trioproxy/ready", "/_trioproxy/nothing", "/elsewhere",
                           "/user/test/oauth_callback", "/user/test"):
                conn = await rawnet.connect(p.port)
                with trio.fail_after(15):
                    await conn.send(rawnet.request("GET", target, close=True))
                    response = await conn.response()
                    assert response.header(b"connection") == b"close", (target, response.headers)
                    with trio.move_on_after(CLOSE_BOUND_S) as waited:
                        rest = await conn.read_to_eof()
                    assert not waited.cancelled_caught, f"{target}: the connection was left open"
                    assert rest == b"", target
                await conn.aclose()
            no_traceback(p)


async def test_a_request_that_ends_its_connection_is_its_last():
    """An HTTP/1.0 request (without keep-alive) or one with Connection: close, with more bytes behind it:
    the app gets the one request, the client its one answer, then EOF; what followed is never read."""
    with trio.fail_after(90):
        async with serve_proxy(BAD) as p:
            await p.wait_ready()
            cases = {
                "HTTP/1.0": b"GET /user/test/last-10 HTTP/1.0\r\nHost: a\r\n\r\n",
                "HTTP/1.0 with a body": b"POST /user/test/last-10b HTTP/1.0\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
                "HTTP/1.1, Connection: close": rawnet.request("GET", "/user/test/last-11", close=True),
            }
            after = (b"GET /user/test/never-1 HTTP/1.0\r\n\r\n"
                     + rawnet.request("GET", "/user/test/never-2") + b"garbage\r\n\r\n")
            for name, data in cases.items():
                responses, rest, eof = await one_exchange(p, data + after)
                assert [r.status for r in responses] == [200], (name, responses, rest[:60])
                assert json.loads(responses[0].body)["target"].startswith("/last-"), name
                assert responses[0].header(b"connection") == b"close", name
                assert rest == b"" and eof, (name, rest[:60], eof)
            # The same bytes sent after the request, while the app answers it.
            conn = await rawnet.connect(p.port)
            with trio.fail_after(15):
                await conn.send(b"GET /user/test/last-late HTTP/1.0\r\n\r\n")
                await conn.send(after)
                response = await conn.response()
                assert response.status == 200 and await conn.read_to_eof() == b""
            await conn.aclose()
            got = await seen_requests(p)
            assert not [line for line in got if "never-" in line], got
            assert len([line for line in got if "/last-" in line]) == len(cases) + 1, got
            no_traceback(p)
