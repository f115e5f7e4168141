"""The bootstrap before the app's first start: the git checkout (--repo) and the conda environment (--conda-env).

Git runs against bare repositories made here (``file://`` URLs) or a closed or
silent port on loopback; conda is tests/apps/fake_conda.py behind a ``conda``
wrapper on PATH. Every I/O test is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import datetime
import functools
import html
import logging
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

from trioproxy.child import conda as _conda
from trioproxy.child import gitrepo as _gitrepo
from trioproxy.child.commands import Progress, Runner
from trioproxy.child.output import LogTail
from trioproxy.errors import BootstrapError
from trioproxy.rules.lines import LineSplitter

from .conftest import APPS, PY, app_cmd, free_port, run_proxy

INFO = app_cmd("info_app.py")
#: Test-side git: a fixed identity, no system or global configuration.
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
}
#: Loopback must not go through a proxy, nor ask a password program, set in the developer's environment.
NO_PROXY = {"no_proxy": "*", "NO_PROXY": "*", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True, timeout=30)
    return done.stdout


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, timeout=20)


@dataclass
class Upstream:
    """A bare repository (master: README.md, app.txt; dev: also dev.txt) and a work clone that pushes to it."""

    bare: Path
    work: Path

    @property
    def url(self) -> str:
        return self.bare.as_uri()

    def commit(self, files: dict[str, str | None], message: str, branch: str = "master") -> None:
        git("checkout", "-q", branch, cwd=self.work)
        for name, text in files.items():
            path = self.work / name
            if text is None:
                path.unlink()
            else:
                path.write_text(text)
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", message, cwd=self.work)
        git("push", "-q", "origin", branch, cwd=self.work)


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    bare, work = tmp_path / "upstream.git", tmp_path / "upstream-work"
    git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    git("symbolic-ref", "HEAD", "refs/heads/master", cwd=bare)
    git("init", "-q", str(work), cwd=tmp_path)
    git("checkout", "-q", "-b", "master", cwd=work)
    git("remote", "add", "origin", bare.as_uri(), cwd=work)
    (work / "README.md").write_text("upstream readme\n")
    (work / "app.txt").write_text("v1\n")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "first", cwd=work)
    git("push", "-q", "origin", "master", cwd=work)
    git("checkout", "-q", "-b", "dev", cwd=work)
    up = Upstream(bare, work)
    up.commit({"dev.txt": "dev branch\n"}, "dev work", branch="dev")
    git("checkout", "-q", "master", cwd=work)
    return up


def shallow_clone(up: Upstream, folder: Path, branch: str = "master") -> None:
    git("clone", "-q", "--depth", "1", "--branch", branch, "--no-single-branch", up.url, str(folder), cwd=folder.parent)


async def app_info(proxy) -> dict:
    async with client() as c:
        r = await c.get(proxy.url + "/")
        assert r.status_code == 200, r.text
        return r.json()


async def down_page(proxy) -> str:
    """The 502 page, once the app is down (the bootstrap failed); its text unescaped."""
    async with client() as c:
        with trio.fail_after(20):
            while True:
                r = await c.get(proxy.url + "/")
                if r.status_code == 502:
                    return r.text
                assert r.status_code == 503, r.text
                await trio.sleep(0.1)


# --- pure rules -----------------------------------------------------------------------


def test_redaction_hides_credentials_everywhere():
    redact = _gitrepo.redactor("https://dan:tok3n%2Fx@github.com/o/r.git")
    line = "fatal: unable to access 'https://dan:tok3n%2Fx@github.com/o/r.git/': tok3n/x and tok3n%2Fx"
    assert redact(line) == "fatal: unable to access 'https://***@github.com/o/r.git/': *** and ***"
    assert _gitrepo.redactor("https://ghp_abcdef@github.com/x")("$ git clone https://ghp_abcdef@github.com/x") == (
        "$ git clone https://***@github.com/x"
    )
    assert (_gitrepo.redactor("")("see http://a:b@h/ and git@github.com:o/r")
            == "see http://***@h/ and git@github.com:o/r")


def test_splitter_splits_on_newline_and_lone_carriage_return():
    s = LineSplitter(100, lone_cr=True, skip_blank=True)
    assert s.feed(b"Receiving 1%\rReceiving 2%\r") == ["Receiving 1%"]
    assert s.feed(b"\ndone\r\n\nnext") == ["Receiving 2%", "done"]
    assert s.flush() == ["next"]
    assert LineSplitter(100, lone_cr=True).feed("caf\u00e9 ".encode() + b"\xff\n") == ["caf\u00e9 \ufffd"]
    cut = LineSplitter(10, lone_cr=True)
    assert cut.feed(b"x" * 25) == [] and len(cut._buf) == 0
    assert cut.feed(b"yy\rz\n") == ["x" * 10 + " … [17 bytes cut]", "z"]


def test_git_rules():
    assert _gitrepo.clone_argv("U", "b", "/f", 1) == [
        "git", "clone", "--progress", "--depth", "1", "--branch", "b", "--no-single-branch", "--", "U", "/f"]
    assert "--depth" not in _gitrepo.clone_argv("U", "b", "/f", 0)
    # Newest commit first: f1 added, then deleted again upstream; f3 and "d/f 2" added.
    assert _gitrepo.added_paths(b"D\0f1\0A\0f3\0\0A\0d/f 2\0A\0f1\0") == ["d/f 2", "f3"]
    now = datetime.datetime(2024, 1, 2, 3, 4, 5)
    assert _gitrepo.renamed("dir/a.tar.gz", now) == "dir/a.tar__20240102030405.gz"
    assert _gitrepo.renamed("Makefile", now) == "Makefile__20240102030405"
    assert _gitrepo.same_repo("https://u:t@GitHub.com/o/r.git", "https://github.com/o/r/")
    assert not _gitrepo.same_repo("https://github.com/o/r", "https://github.com/o/other")
    env = _gitrepo.git_env({"PATH": "/bin", "GIT_TERMINAL_PROMPT": "1", "GIT_HTTP_LOW_SPEED_TIME": "5"})
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["PATH"] == "/bin" and env["GIT_HTTP_LOW_SPEED_TIME"] == "5"


def test_git_plan(tmp_path: Path):
    assert _gitrepo.plan(str(tmp_path / "missing")) == "clone"
    assert _gitrepo.plan(str(tmp_path)) == "clone"  # empty
    (tmp_path / ".trioproxy-clone").mkdir()
    assert _gitrepo.plan(str(tmp_path)) == "clone"  # a clone cut short
    (tmp_path / "f").write_text("x")
    assert _gitrepo.plan(str(tmp_path)) == "update"
    assert _gitrepo.plan(str(tmp_path / "f")) == "file"


def test_conda_rules(tmp_path: Path):
    root = tmp_path / "conda"
    for env in ("envs/x", "envs/y"):
        (root / env / "conda-meta").mkdir(parents=True)
    elsewhere = tmp_path / "other" / "z"
    info = {"root_prefix": str(root), "envs_dirs": [str(root / "envs")],
            "envs": [str(root), str(root / "envs" / "x"), str(elsewhere)]}
    assert _conda.find_prefix(info, "base") == str(root)
    assert _conda.find_prefix(info, "y") == str(root / "envs" / "y")  # in envs_dirs, though not listed
    assert _conda.find_prefix(info, "z") == str(elsewhere)
    with pytest.raises(BootstrapError, match=r"'nope' not found; conda knows: base, x, z"):
        _conda.find_prefix(info, "nope")
    assert _conda.is_path("./env") and _conda.is_path("/opt/env") and not _conda.is_path("x")
    with pytest.raises(BootstrapError, match="does not exist"):
        _conda.check_prefix(str(tmp_path / "nowhere"), "nowhere")
    data = b"junk\nA=1\0B=x=y\0_=/usr/bin/env\0PWD=/tmp\0SHLVL=2\0"
    assert _conda.parse_environ(data, {"PWD": "/home/dan"}) == {"A": "1", "B": "x=y", "PWD": "/home/dan"}


# --- the helper runner ------------------------------------------------------------------


def _runner(tail: LogTail) -> Runner:
    return Runner(os.environ, Progress(tail, logging.getLogger("test.helper"), "t", lambda s: s.replace("pw", "**")))


async def test_runner_exit_status_lines_and_timeout():
    tail = LogTail(20)
    run = _runner(tail)
    with trio.fail_after(10):
        r = await run.run(["sh", "-c", "printf 'a\\rb pw\\n' ; echo err >&2; exit 3"], timeout_s=5)
        assert r.code == 3 and run.pid is None
        assert tail.lines() == ["[t] $ sh -c 'printf '\"'\"'a\\rb **\\n'\"'\"' ; echo err >&2; exit 3'",
                                "[t] a", "[t] b **", "[t] err"]
        r = await run.run(["sh", "-c", "echo out; echo warn >&2"], timeout_s=5, capture=True, echo=False)
        assert (r.code, r.stdout) == (0, b"out\n") and tail.lines()[-1] == "[t] warn"
        assert run.progress.last == "warn"
        # Short commands, many times: the exit status is always the command's own.
        for code in range(5):
            assert (await run.run(["sh", "-c", f"exit {code}"], timeout_s=5, echo=False)).code == code
        started = trio.current_time()
        with pytest.raises(BootstrapError, match=r"took longer than 0\.3 s") as caught:
            await run.run(["sleep", "30"], timeout_s=0.3)
        assert caught.value.retry and trio.current_time() - started < 3 and run.pid is None


async def test_runner_cancelled_kills_the_command(tmp_path: Path):
    pidfile = tmp_path / "pid"
    run = _runner(LogTail(5))
    with trio.fail_after(10):
        with trio.move_on_after(1):
            await run.run(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], timeout_s=60)
        assert run.pid is None
        grandchild = int(pidfile.read_text())
        while Path(f"/proc/{grandchild}").exists() and "Z" not in _proc_state(grandchild):
            await trio.sleep(0.05)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


# --- git through trioproxy ----------------------------------------------------------------


async def test_clone_then_the_app_runs_in_the_checkout(tmp_path: Path, upstream: Upstream):
    with trio.fail_after(60):
        async with run_proxy(["--repo", upstream.url, "--repofolder", "apps/app", *INFO], cwd=str(tmp_path)) as p:
            await p.wait_ready(30)
            info = await app_info(p)
    folder = tmp_path / "apps" / "app"
    assert info["cwd"] == str(folder)
    assert {"README.md", "app.txt"} <= set(info["files"]) and "dev.txt" not in info["files"]
    assert "GIT_TERMINAL_PROMPT" not in info["env"]  # git's settings are git's only
    assert (f"$ git clone --progress --depth 1 --branch master --no-single-branch -- {upstream.url} "
            f"{folder}/.trioproxy-clone" in p.log)
    assert f"cloning {upstream.url}" in p.log
    assert git("rev-parse", "--is-shallow-repository", cwd=folder).strip() == "true"
    assert p.log.index("the checkout is ready") < p.log.index("starting the app")


async def test_update_keeps_local_work_and_takes_upstream(tmp_path: Path, upstream: Upstream):
    folder = tmp_path / "app"
    shallow_clone(upstream, folder)
    (folder / "README.md").write_text("my notes\n")  # a local edit of a tracked file
    (folder / "new.txt").write_text("mine\n")  # an untracked file upstream is about to add
    (folder / "app.txt").unlink()  # a deleted file, changed upstream meanwhile
    upstream.commit({"new.txt": "theirs\n", "app.txt": "v2\n"}, "second")
    with trio.fail_after(60):
        async with run_proxy(["--repo", upstream.url, "--repofolder", "app", *INFO], cwd=str(tmp_path)) as p:
            await p.wait_ready(30)
            info = await app_info(p)
    assert info["cwd"] == str(folder)
    assert (folder / "new.txt").read_text() == "theirs\n"
    kept = [name for name in info["files"] if name.startswith("new__") and name.endswith(".txt")]
    assert len(kept) == 1 and (folder / kept[0]).read_text() == "mine\n"
    assert f"Renamed {folder / 'new.txt'} to {folder / kept[0]} to avoid conflict with upstream" in p.log
    assert (folder / "app.txt").read_text() == "v2\n"
    assert (folder / "README.md").read_text() == "my notes\n"
    assert "Automatic commit by trioproxy" in git("log", "--format=%s", cwd=folder)
    assert git("status", "--porcelain", "--untracked-files=no", cwd=folder) == ""
    for step in ("$ git fetch", "$ git checkout origin/master -- app.txt", "commit -am", "$ git checkout master",
                 "merge --no-edit -Xours origin/master"):
        assert step in p.log


async def test_branch_on_clone_and_switch_without_stray_copies(tmp_path: Path, upstream: Upstream):
    folder = tmp_path / "app"
    shallow_clone(upstream, folder)
    with trio.fail_after(90):
        async with run_proxy(["--repo", upstream.url, "--repofolder", "app", "--repobranch", "dev", *INFO],
                             cwd=str(tmp_path)) as p:
            await p.wait_ready(30)
            switched = await app_info(p)
        async with run_proxy(["--repo", upstream.url, "--repofolder", "fresh", "--repobranch", "dev", *INFO],
                             cwd=str(tmp_path)) as p:
            await p.wait_ready(30)
            fresh = await app_info(p)
    # The reference renamed every tracked file to a __timestamp copy here (shallow clone, other branch).
    assert switched["files"] == [".git", "README.md", "app.txt", "dev.txt"]
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=folder).strip() == "dev"
    assert fresh["cwd"] == str(tmp_path / "fresh") and "dev.txt" in fresh["files"]


async def test_bad_branch_is_explained_escaped_and_trioproxy_stays_up(tmp_path: Path, upstream: Upstream):
    with trio.fail_after(60):
        async with run_proxy(["--public-controls", "--repo", upstream.url, "--repofolder", "app", "--repobranch",
                              "<b>nope&", *INFO],
                             cwd=str(tmp_path)) as p:
            page = await down_page(p)
            await p.wait_log("the app cannot start")
            await trio.sleep(0.5)
            assert p.proc.returncode is None
    assert "Remote branch &lt;b&gt;nope&amp; not found" in page and "<b>nope" not in page
    text = html.unescape(page)
    assert f"The app was not started: cloning {upstream.url} failed: git exited with code 128" in text
    assert "[git] $ git clone --progress --depth 1 --branch '<b>nope&'" in text  # the command, in the page's log lines
    assert "starting the app" not in p.log
    assert not (tmp_path / "app").exists()


async def test_credentials_in_the_url_are_never_shown(tmp_path: Path):
    url = f"http://dan:s3cr3tT0ken@127.0.0.1:{free_port()}/repo.git"  # nothing listens there
    with trio.fail_after(60):
        async with run_proxy(["--repo", url, "--repofolder", "app", *INFO], cwd=str(tmp_path), env=NO_PROXY) as p:
            page = await down_page(p)
            await p.wait_log("trying again in")
    assert "s3cr3tT0ken" not in page and "s3cr3tT0ken" not in p.log
    assert "http://***@127.0.0.1" in html.unescape(page) and "http://***@127.0.0.1" in p.log
    # One failure, one message: what happens next is said once, and it is not a restart of the app.
    assert re.search(r"Trying again in (10|9) s\.", html.unescape(page)), page
    assert "restart" not in html.unescape(page).lower()


async def _ask_for_a_password(stream: trio.SocketStream) -> None:
    """A git server that wants a login: 401 to every request."""
    async with stream:
        request = b""
        while b"\r\n\r\n" not in request:
            data = await stream.receive_some(4096)
            if not data:
                return
            request += data
        await stream.send_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n"
                              b"Content-Length: 0\r\nConnection: close\r\n\r\n")


async def test_a_password_prompt_fails_at_once(tmp_path: Path):
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, _ask_for_a_password, 0, host="127.0.0.1"))
        url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/repo.git"
        with trio.fail_after(30):
            async with run_proxy(["--repo", url, "--repofolder", "app", *INFO], cwd=str(tmp_path), env=NO_PROXY) as p:
                page = html.unescape(await down_page(p))
        nursery.cancel_scope.cancel()
    assert "terminal prompts disabled" in page and "cloning" in page


async def test_repofolder_dot_must_be_a_checkout(tmp_path: Path, upstream: Upstream):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("# mine\n")
    with trio.fail_after(60):
        async with run_proxy(["--repo", upstream.url, *INFO], cwd=str(home)) as p:
            page = html.unescape(await down_page(p))
            await p.wait_log("Fix this, then restart the app")
    assert f"--repofolder . ({home}) is not a git checkout and is not empty" in page
    assert "give --repofolder a new folder name" in page
    assert os.listdir(home) == [".bashrc"]
    assert "starting the app" not in p.log


async def test_shutdown_during_a_stalled_clone_is_prompt_and_kills_git(tmp_path: Path, upstream: Upstream):
    """A server that accepts and never answers: git would wait; SIGTERM ends it at once."""
    closed = trio.Event()

    async def silent(stream: trio.SocketStream) -> None:
        async with stream:
            while await stream.receive_some(4096):
                pass
        closed.set()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        url = f"http://127.0.0.1:{port}/repo.git"
        with trio.fail_after(40):
            async with run_proxy(["--repo", url, "--repofolder", "app", *INFO], cwd=str(tmp_path), env=NO_PROXY) as p:
                await p.wait_log("$ git clone")
                await trio.sleep(0.5)
                p.signal(15)
                with trio.fail_after(5):
                    assert await p.proc.wait() == 0
            with trio.fail_after(5):
                await closed.wait()  # git's connection was closed: git is gone
        nursery.cancel_scope.cancel()
    # A clone cut short leaves only its hidden folder, which the next start replaces.
    assert os.listdir(tmp_path / "app") == [".trioproxy-clone"]
    with trio.fail_after(30):
        async with run_proxy(["--repo", upstream.url, "--repofolder", "app", *INFO], cwd=str(tmp_path)) as p:
            await p.wait_ready(20)
            assert (await app_info(p))["files"] == [".git", "README.md", "app.txt"]


# --- conda through trioproxy -------------------------------------------------------------


@pytest.fixture
def fake_conda(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A conda installation with environment X; the environment that puts its `conda` on PATH."""
    root = tmp_path / "conda"
    (root / "conda-meta").mkdir(parents=True)
    (root / "envs" / "X" / "conda-meta").mkdir(parents=True)
    (root / "envs" / "X" / "bin").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "conda"
    wrapper.write_text(f'#!/bin/sh\nexec "{PY}" "{APPS / "fake_conda.py"}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    yield root, {"FAKE_CONDA_ROOT": str(root), "CONDA_EXE": "", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


async def test_conda_env_by_name_then_by_path_with_a_checkout(tmp_path: Path, fake_conda, upstream: Upstream):
    root, env = fake_conda
    prefix = root / "envs" / "X"
    with trio.fail_after(90):
        async with run_proxy(["--conda-env", "X", *INFO], env=env, cwd=str(tmp_path)) as p:
            await p.wait_ready(30)
            by_name = await app_info(p)
        args = ["--conda-env", str(prefix), "--repo", upstream.url, "--repofolder", "app", *INFO]
        async with run_proxy(args, env=env, cwd=str(tmp_path)) as p2:
            await p2.wait_ready(30)
            by_path = await app_info(p2)
    for info in (by_name, by_path):
        assert info["env"]["CONDA_DEFAULT_ENV"] == "X" and info["env"]["CONDA_PREFIX"] == str(prefix)
        assert info["env"]["TRIOPROXY_TEST_ACTIVATED"] == "X"
        assert info["env"]["PATH"].startswith(f"{prefix / 'bin'}{os.pathsep}")
    assert by_name["cwd"] == str(tmp_path) and by_path["cwd"] == str(tmp_path / "app")
    assert f"the app runs in the conda environment X ({prefix})" in p.log
    assert "info --json" in p.log and "info --json" not in p2.log  # a path needs no lookup
    assert "CONDA_PREFIX=" not in p.log


async def test_missing_conda_env_is_explained(tmp_path: Path, fake_conda):
    _, env = fake_conda
    with trio.fail_after(60):
        async with run_proxy(["--conda-env", "Y", *INFO], env=env, cwd=str(tmp_path)) as p:
            page = html.unescape(await down_page(p))
            await p.wait_log("the app cannot start")
            assert p.proc.returncode is None
    assert "The app was not started: conda environment 'Y' not found; conda knows: X, base" in page
    assert "conda environment 'Y' not found" in p.log
    assert "Traceback" not in p.log and "starting the app" not in p.log


async def test_missing_conda_is_explained(tmp_path: Path):
    missing = tmp_path / "nowhere" / "conda"
    with trio.fail_after(60):
        async with run_proxy(["--conda-env", "X", *INFO], env={"CONDA_EXE": str(missing)}, cwd=str(tmp_path)) as p:
            page = html.unescape(await down_page(p))
            await p.wait_log("the app cannot start")
            assert p.proc.returncode is None
    assert (f"The app was not started: {missing} was not found: --conda-env needs conda; "
            "set $CONDA_EXE to its path") in page
    assert "was not found" in p.log and "Traceback" not in p.log


def test_signal_group_reports_whether_the_group_is_there():
    import signal
    import subprocess

    from trioproxy.child.groups import group_alive, signal_group

    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert group_alive(proc.pid)
        assert signal_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
        assert not group_alive(proc.pid) and not signal_group(proc.pid, signal.SIGTERM)
    finally:
        proc.kill()
        proc.wait(timeout=5)
