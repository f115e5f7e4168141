"""The app's life: start, readiness, logs, restart with backoff, giving up."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import trio

from trioproxy.child import guardian as _guardian

from .conftest import PY, app_cmd, run_proxy, serve_proxy

ECHO = app_cmd("echo_app.py")


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, timeout=20)


async def test_app_that_exits_is_restarted_and_serves_again():
    with trio.fail_after(60):
        async with serve_proxy(ECHO) as p, client() as c:
            first = (await c.get(p.url + "/pid")).json()["pid"]
            for code in (1, 0):
                await c.get(p.url + f"/exit?code={code}")
                await p.wait_log(f"the app exited with code {code}")
                pid = None
                with trio.fail_after(20):
                    while True:
                        r = await c.get(p.url + "/pid")
                        if r.status_code == 200:
                            pid = r.json()["pid"]
                            break
                        assert r.status_code in (502, 503)
                        await trio.sleep(0.1)
                assert pid != first
                first = pid


async def test_repeated_failure_exits_nonzero_with_escaped_page():
    with trio.fail_after(60):
        async with (
            run_proxy(["--public-controls", "--max-restarts", "2", *app_cmd("crash_app.py", "--mode", "exit1")]) as p,
            client() as c,
        ):
            await p.wait_log("the app exited with code 1")
            r = await c.get(p.url + "/")  # down, or starting again and down within the bounded wait
            assert r.status_code == 502
            assert "exited with code 1" in r.text
            assert "fatal: boom &lt;b&gt;&amp;amp;" in r.text and "<b>&amp;" not in r.text
            with trio.fail_after(30):
                code = await p.proc.wait()
            assert code == 1
            assert "giving up" in p.log


async def test_not_ready_gets_starting_page_then_restart(jump_clock):
    # Nothing here waits on the app (it never answers): trio's clock jumps as soon as the loop idles.
    jump_clock.autojump_threshold = 0.02
    with trio.fail_after(60):
        async with (
            serve_proxy(["--ready-timeout", "8", *app_cmd("crash_app.py", "--mode", "never-ready")]) as p,
            client() as c,
        ):
            r = await c.get(p.url + "/")
            assert r.status_code == 503 and "starting" in r.text and r.headers["retry-after"]
            await p.wait_log("still waiting for the app on port", timeout=20)
            await p.wait_log("did not answer on / and showed no sign of progress for 8 s", timeout=20)
            await p.wait_log("restarting the app")


async def test_chatty_app_never_blocks_and_long_lines_are_cut():
    with trio.fail_after(60):
        async with serve_proxy(app_cmd("crash_app.py", "--mode", "chatty")) as p, client() as c:
            r = await c.get(p.url + "/")
            assert r.status_code == 200 and "chatty ok" in r.text
            assert "bytes cut]" in p.log


async def test_no_logs_silences_app_lines():
    with trio.fail_after(30):
        async with serve_proxy(["--no-logs", *ECHO]) as p, client() as c:
            assert (await c.get(p.url + "/")).status_code == 200
            assert "echo_app listening" not in p.log


async def test_origin_host_starts_the_app_on_first_request(jump_clock):
    with trio.fail_after(40):
        async with serve_proxy([*ECHO, "--prefix", "{origin_host}"]) as p, client() as c:
            await trio.sleep(1)
            assert "starting the app" not in p.log
            r = await c.get(p.url + "/x", headers={"Host": "hub.example:8443"})
            assert r.status_code == 200 and r.json()["app_prefix"] == "hub.example:8443"


async def test_ready_check_path_and_destport():
    with trio.fail_after(30):
        from .conftest import free_port

        port = free_port()
        async with (
            serve_proxy(["--destport", str(port), "--ready-check-path", "/status/204", *ECHO]) as p,
            client() as c,
        ):
            await p.wait_ready()
            assert f"on port {port}" in p.log
            r = await c.get(p.url + "/")
            assert r.status_code == 200


# --- the process guard: the app never outlives trioproxy -------------------------------------

#: trioproxy's entry point with the guard turned off (run_proxy's argv is then
#: ``PY -c CODE PY -m trioproxy ARGS``: ``sys.argv[4:]`` are the ARGS): the control.
NO_GUARD = (
    "import dataclasses, sys; from trioproxy import cli as _cli, settings as _settings; build = _settings.build; "
    "_settings.build = lambda *a, **k: (lambda s: dataclasses.replace(s, child=dataclasses.replace("
    "s.child, guard=False)))(build(*a, **k)); _cli.main(sys.argv[4:])"
)


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) from /proc, or None once the process is reaped."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    rest = stat[stat.rfind(b")") + 2 :].split()
    return rest[0].decode(), int(rest[1]), int(rest[2])


def _running_in_group(pgid: int) -> list[int]:
    """Members of process group ``pgid`` that still run (zombies left to init do not)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[2] == pgid and st[0] != "Z":
                out.append(int(entry))
    return out


def _guards_of(pid: int) -> list[int]:
    """The children of ``pid`` that run trioproxy's guard program."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (_stat(int(entry)) or ("", 0, 0))[1] == pid:
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if b"guardian.py" in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def _environ(pid: int) -> bytes:
    with open(f"/proc/{pid}/environ", "rb") as f:
        return f.read()


def _kill_quietly(pid: int, sig: int = signal.SIGKILL, group: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        (os.killpg if group else os.kill)(pid, sig)


def _fork_app(tmp_path: Path) -> tuple[list[str], Path]:
    pidfile = tmp_path / "pids.json"
    return app_cmd("fork_app.py", "--pidfile", str(pidfile), "--devnull"), pidfile


async def test_the_app_does_not_outlive_a_sigkilled_trioproxy(tmp_path: Path):
    cmd, pidfile = _fork_app(tmp_path)
    pids: dict = {}
    try:
        with trio.fail_after(40):
            async with run_proxy(["--debug", *cmd], env={"JUPYTERHUB_API_TOKEN": "tok-guard-4c2e"}) as p:
                await p.wait_ready()
                pids = json.loads(pidfile.read_text())
                pgid = pids["pgid"]
                assert {pids["pid"], pids["grandchild_pid"]} <= set(_running_in_group(pgid))
                [guard] = _guards_of(p.proc.pid)
                assert _environ(guard) == b""  # the guard holds no credential
                p.signal(signal.SIGKILL)
                await p.proc.wait()
                with trio.fail_after(5):
                    while _running_in_group(pgid):
                        await trio.sleep(0.02)
                    while (_stat(guard) or ("Z",))[0] != "Z":  # the guard exits too
                        await trio.sleep(0.02)
    finally:
        for pid in (pids.get("session_grandchild_pid"), pids.get("pgid")):
            if pid:
                _kill_quietly(pid, group=True)


async def test_without_the_guard_a_sigkilled_trioproxy_leaves_the_app_running(tmp_path: Path):
    cmd, pidfile = _fork_app(tmp_path)
    pids: dict = {}
    try:
        with trio.fail_after(40):
            async with run_proxy(cmd, argv_prefix=[PY, "-c", NO_GUARD]) as p:
                await p.wait_ready()
                pids = json.loads(pidfile.read_text())
                assert _guards_of(p.proc.pid) == []
                p.signal(signal.SIGKILL)
                await p.proc.wait()
                await trio.sleep(1.5)  # longer than the guard's grace: it would be gone by now
                assert {pids["pid"], pids["grandchild_pid"]} <= set(_running_in_group(pids["pgid"]))
    finally:
        for pid in (pids.get("session_grandchild_pid"), pids.get("pgid")):
            if pid:
                _kill_quietly(pid, group=True)


async def test_the_guard_leaves_the_shutdown_and_restarts_to_trioproxy():
    with trio.fail_after(40):
        async with run_proxy(["--debug", *ECHO]) as p, client() as c:
            await p.wait_ready()
            [guard] = _guards_of(p.proc.pid)
            first = (await c.get(p.url + "/pid")).json()
            # The app exits and is restarted: the guard forgets the old group, keeps running.
            await c.get(p.url + "/exit?code=1")
            await p.wait_log("restarting the app")
            while (await c.get(p.url + "/pid")).status_code != 200:
                await trio.sleep(0.05)
            assert _guards_of(p.proc.pid) == [guard]
            p.signal(signal.SIGTERM)
            assert await p.proc.wait() == 0
        assert _stat(guard) is None and _stat(first["pid"]) is None  # reaped by trioproxy, not left to init
        assert "done, exit code 0" in p.log
        for unwanted in ("leftover process", "process guard is gone", "process guard did not exit"):
            assert unwanted not in p.log


def _unshare_works() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    r = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, timeout=10, check=False
    )
    return r.returncode == 0


def _pid1_of(unshare_pid: int) -> int:
    with open(f"/proc/{unshare_pid}/task/{unshare_pid}/children") as f:
        return int(f.read().split()[0])


@pytest.mark.skipif(not _unshare_works(), reason="needs root and unshare --pid")
async def test_no_guard_as_pid1():
    """As PID 1 the kernel already takes every process of the namespace down with trioproxy."""
    with trio.fail_after(40):
        argv_prefix = ["unshare", "--pid", "--fork", "--mount-proc"]
        async with run_proxy(["--debug", *ECHO], argv_prefix=argv_prefix) as p, client() as c:
            await p.wait_ready()
            assert (await c.get(p.url + "/pid")).status_code == 200
            assert "running as PID 1" in p.log and "no process guard as PID 1" in p.log
            assert "process guard started" not in p.log
            # unshare does not pass signals on: stop trioproxy itself, or it outlives the test.
            os.kill(_pid1_of(p.proc.pid), signal.SIGTERM)
            assert await p.proc.wait() == 0


# --- the guard's program (pure parts) ----------------------------------------------------


def test_guardian_protocol():
    groups: set[int] = set()
    for line in (b"+100", b"+200", b"-100", b"+0", b"+1", b"+x", b"", b"*300", b"+300 "):
        _guardian.apply(groups, line)
    assert groups == {200, 300}


def test_guardian_reads_lines_split_anywhere_until_eof():
    r, w = os.pipe()
    os.write(w, b"+12\n+3")
    os.write(w, b"4\n-12\n+56")  # an unfinished last line is ignored
    os.close(w)
    groups: set[int] = set()
    _guardian.read_until_eof(r, groups)
    os.close(r)
    assert groups == {34}


def test_guardian_take_down_terms_then_kills_what_is_left():
    alive = {10: True, 20: True, 30: False}
    sent: list[tuple[list[int], signal.Signals]] = []
    now = [0.0]

    def send(pgids, sig):
        sent.append((list(pgids), sig))
        if sig == signal.SIGTERM:
            alive[10] = False  # 10 obeys SIGTERM, 20 ignores it

    def sleep(s):
        now[0] += s

    killed = _guardian.take_down([30, 20, 10], 1.0, 0.1, alive=lambda g: alive[g], send=send,
                                 clock=lambda: now[0], sleep=sleep)
    assert killed == [20]
    assert sent == [([10, 20], signal.SIGTERM), ([20], signal.SIGKILL)]
    assert 1.0 <= now[0] < 1.2
    assert _guardian.take_down([30], 1.0, 0.1, alive=lambda g: False, send=send) == []
