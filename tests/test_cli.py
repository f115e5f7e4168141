"""The command line as a user meets it: exit codes, --help, --version, bad input."""

from __future__ import annotations

import subprocess
import sys

import click
import httpx
import trio

from trioproxy import __version__

from .conftest import free_port, run_proxy


def cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trioproxy", *args], capture_output=True, text=True, timeout=timeout)


def test_version():
    r = cli("--version")
    assert r.returncode == 0 and __version__ in r.stdout


def test_help_names_options_and_environment():
    r = cli("--help")
    assert r.returncode == 0
    for word in ("--destport", "--ready-check-path", "--force-alive", "--force-keep-alive", "--shutdown-timeout",
                 "JUPYTERHUB_SERVICE_PREFIX", "JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_ACTIVITY_URL", "{origin_host}"):
        assert word in r.stdout, word


def test_help_in_sections_with_every_option_in_one():
    from trioproxy import cli as _cli

    r = cli("--help")
    assert r.returncode == 0
    titles = [title for title, _ in _cli.SECTIONS]
    at = [r.stdout.index(title + ":\n") for title in titles]
    assert at == sorted(at)  # each section, in order
    assert "More options" not in r.stdout
    names = [name for _, names in _cli.SECTIONS for name in names]
    assert len(names) == len(set(names))
    assert {p.name for p in _cli._command.params if isinstance(p, click.Option)} | {"help"} == set(names)
    reference = r.stdout[at[0]:at[1]]
    for option in ("--destport", "--ready-timeout", "--aiohttp-request-timeout", "--conda-env", "--debug"):
        assert option in reference, option
    assert "--keep-prefix" not in reference and "--shutdown-timeout" not in reference
    for option in ("--app-stderr-level", "--access-log", "--log-format", "--metrics-public", "--keep-prefix"):
        assert option in r.stdout, option


def test_doctor_has_its_own_help():
    for args in (("doctor", "--help"), ("doctor", "-h"), ("doctor", "--authtype", "none", "--help")):
        r = cli(*args)
        assert r.returncode == 0 and r.stdout.startswith("Usage: trioproxy doctor"), args
        assert "FAIL" in r.stdout and "--ready-check-path" not in r.stdout
    r = cli("--help")  # the main help still names doctor
    assert r.stdout.startswith("Usage: trioproxy [OPTIONS] COMMAND...") and "trioproxy doctor" in r.stdout


def test_a_misspelt_substitution_is_named_with_a_suggestion():
    r = cli("--authtype", "none", "--", "python3", "-m", "http.server", "{prot}")
    assert r.returncode == 2 and "{prot}" in r.stderr and "did you mean {port}?" in r.stderr


def test_a_missing_executable_exits_2_at_once(tmp_path):
    plain = tmp_path / "plain.sh"
    plain.write_text("#!/bin/sh\n")
    for program, why in (("no-such-program-trioproxy", "'no-such-program-trioproxy' was not found on PATH"),
                         ("./no-such-script", "'./no-such-script' was not found"),
                         (str(plain), "is not executable")):
        r = cli("--authtype", "none", "--", program, "{port}", timeout=10)
        assert r.returncode == 2 and why in r.stderr, (program, r.stderr)
        assert "Traceback" not in r.stderr and "listening" not in r.stderr


async def test_a_command_found_missing_only_when_started_fails_at_once_with_2(tmp_path):
    """A first word known only once rendered (or, likewise, after --repo/--conda-env's bootstrap):
    the first start fails and trioproxy gives up at once, exit code 2, without restarts."""
    missing = tmp_path / "not-here"
    with trio.fail_after(20):
        async with run_proxy(["--presentation-path", str(missing), "--", "{presentation_path}", "{port}"],
                             wait_listening=False) as p:
            code = await p.proc.wait()
    assert code == 2, p.log
    assert f"giving up: the command {str(missing)!r} was not found" in p.log
    assert "restarting the app" not in p.log and p.log.count("starting the app") == 1

    r = cli("--bogus", "python3", "-m", "http.server")
    assert r.returncode == 2 and "--bogus" in r.stderr
    r = cli("--authtype", "none", "--", "python3", "-c", "open('/tmp/should-not-run','w')", "{nope}")
    assert r.returncode == 2 and "{nope}" in r.stderr
    r = cli("--authtype", "none", "--", "python3", "-c", '{"a": 1}')
    assert r.returncode == 2 and "{{" in r.stderr


def test_python_dash_m_main_spelling_works():
    r = subprocess.run(
        [sys.executable, "-m", "trioproxy.main", "--version"], capture_output=True, text=True, timeout=20
    )
    assert r.returncode == 0 and __version__ in r.stdout


async def test_busy_port_is_a_clear_error():
    with trio.fail_after(30):
        async with run_proxy(["--", sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"]) as first:
            async with run_proxy(
                ["--", sys.executable, "-m", "http.server", "{port}"], port=first.port, wait_listening=False
            ) as second:
                with trio.fail_after(20):
                    code = await second.proc.wait()
                assert code != 0 and "cannot listen" in second.log


async def test_plain_http_server_with_readme_style_command():
    """The seed README's style: options interspersed, {--} placeholders, no '--'."""
    port = free_port()
    with trio.fail_after(30):
        async with run_proxy(
            ["--destport", "0", sys.executable, "{-}m", "http.server", "{port}", "{--}bind", "127.0.0.1",
             "--ip", "127.0.0.1"],
            port=port,
        ) as p:
            async with httpx.AsyncClient(trust_env=False, timeout=20) as c:
                r = await c.get(p.url + "/")
                assert r.status_code == 200 and "Directory listing" in r.text


def test_pass_api_token_option_its_help_and_what_the_app_and_its_helpers_get():
    from trioproxy import cli as _cli
    from trioproxy.child import bootstrap as _bootstrap
    from trioproxy.child.output import LogTail

    r = cli("--help")
    assert "--pass-api-token" in " ".join(r.stdout.split())
    assert "the app never holds the server's Hub credential" in " ".join(r.stdout.split())
    env = {"JUPYTERHUB_API_TOKEN": "tok-1", "JPY_API_TOKEN": "tok-1", "TRIOPROXY_COOKIE_SECRET": "s" * 32, "KEEP": "1"}
    for argv, passed in ((["a"], set()), (["--pass-api-token", "a"], {"JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"})):
        s = _cli.parse([*argv, "--repo", "https://example.org/r.git", "--conda-env", "x"], env)
        assert s.hub.api_token == "tok-1"  # trioproxy itself always has it
        boot = _bootstrap.Bootstrap(s.child, LogTail(1), starting=lambda r: None, failed=lambda r, retry_in: None)
        # The app, git and conda get the same filtered environment.
        for seen in (s.child.env, boot._git.env, boot._conda.env):
            assert seen["KEEP"] == "1" and set(seen) & set(env) - {"KEEP"} == passed


def test_not_dumpable_in_a_fresh_process_only():
    code = (
        "import ctypes, sys; libc = ctypes.CDLL(None); before = libc.prctl(3, 0, 0, 0, 0); "
        "from trioproxy import cli as _cli, run as _run; from trioproxy.child import supervisor as _child; "
        "import trioproxy; imported = libc.prctl(3, 0, 0, 0, 0); "
        "ok = _cli.not_dumpable(); print(before, imported, ok, libc.prctl(3, 0, 0, 0, 0))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=False)
    if sys.platform.startswith("linux"):
        assert r.stdout.split() == ["1", "1", "True", "0"]  # PR_GET_DUMPABLE: importing changes nothing
    else:
        assert r.stdout.split()[2] == "False"
