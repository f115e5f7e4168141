"""/proc readers (trioproxy/_procfs.py): the pure parsers, and a real listening child."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from trioproxy.child import procfs as _procfs

NET_TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2135 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0 100 0 0 10 0
   1: 0100007F:94E2 0100007F:B8B3 06 00000000:00000000 03:0000010A 00000000     0        0 0 3 0
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0 100 0 0 10 0
"""
NET_TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:C0ED 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 10232 1 0 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 11 1 0 100 0 0 10 0
"""  # noqa: E501 (verbatim /proc/net/tcp6 lines, as the kernel writes them)


def test_net_tcp_tables_give_listeners_only() -> None:
    assert _procfs.parse_net_tcp(NET_TCP) == [
        _procfs.Listener("127.0.0.1", 8501, 4242),
        _procfs.Listener("0.0.0.0", 8080, 77),
    ]
    assert _procfs.parse_net_tcp(NET_TCP6) == [
        _procfs.Listener("::1", 49389, 10232),
        _procfs.Listener("127.0.0.1", 8081, 11),
    ]
    assert _procfs.parse_net_tcp("header only\n garbage line\n") == []


def test_stat_with_an_awkward_command_name() -> None:
    stat = _procfs.parse_stat(b"123 (a b) c)) S 1 123 123 0 -1")
    assert stat == _procfs.Stat(123, "S", 1, 123)
    assert _procfs.parse_stat(b"") is None
    assert _procfs.parse_stat(b"x (y) S") is None


def test_socket_links() -> None:
    assert _procfs.socket_inode("socket:[12345]") == 12345
    assert _procfs.socket_inode("pipe:[1]") is None
    assert _procfs.socket_inode("/dev/null") is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")
def test_finds_the_port_a_process_group_listens_on() -> None:
    code = (
        "import socket, sys, time\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
        "print(s.getsockname()[1], flush=True); time.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, process_group=0)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        found = _procfs.listening_ports(child.pid)
        assert [(entry.host, entry.port) for entry in found] == [("127.0.0.1", port)]
        # Another group (ours) does not hold that socket.
        assert port not in [entry.port for entry in _procfs.listening_ports(os.getpgrp())]
        assert child.pid in _procfs.group_members(child.pid)
    finally:
        child.kill()
        child.wait(timeout=10)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")
def test_finds_every_listener_of_the_group_and_only_listeners() -> None:
    # The leader listens on IPv4 and holds a connected (not listening) socket; a forked child,
    # in the same group, listens on IPv6 loopback and on the IPv6 wildcard. All three are
    # found (lowest port first); the connection is not; a process of another group is ignored.
    code = (
        "import os, socket, sys, time\n"
        "a = socket.create_server(('127.0.0.1', 0))\n"
        "c = socket.create_connection(a.getsockname()); peer, _ = a.accept()\n"
        "r, w = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    b = socket.create_server(('::1', 0), family=socket.AF_INET6)\n"
        "    d = socket.create_server(('::', 0), family=socket.AF_INET6, dualstack_ipv6=True)\n"
        "    os.write(w, f'{b.getsockname()[1]} {d.getsockname()[1]}'.encode()); time.sleep(30); os._exit(0)\n"
        "print(a.getsockname()[1], os.read(r, 100).decode(), c.getsockname()[1], flush=True); time.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, process_group=0)
    try:
        assert child.stdout is not None
        v4, v6, wildcard, client = map(int, child.stdout.readline().split())
        found = _procfs.listening_ports(child.pid)
        expected = sorted([("127.0.0.1", v4), ("::1", v6), ("::", wildcard)], key=lambda entry: entry[1])
        assert [(entry.host, entry.port) for entry in found] == expected
        assert client not in [entry.port for entry in found]
        assert len(_procfs.group_members(child.pid)) == 2
    finally:
        os.killpg(child.pid, 9)
        child.wait(timeout=10)
