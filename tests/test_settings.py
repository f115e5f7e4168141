"""Settings from argv and environ (pure: environ is a dict)."""

import dataclasses
import os

import click
import pytest

from trioproxy import cli as _cli
from trioproxy import settings as _settings


def parse(*argv, **env):
    return _cli.parse(list(argv), env, cwd="/start")


def usage_error(*argv, **env):
    with pytest.raises(click.UsageError) as info:
        parse(*argv, **env)
    assert info.value.exit_code == 2
    return info.value.format_message()


def test_defaults_match_the_reference():
    s = parse("streamlit", "hello")
    assert s.server.port == 8888 and s.server.ip == ""
    assert s.child.destport == 0
    assert s.hub.authtype is _settings.AuthType.OAUTH
    assert s.proxy.request_timeout_s == 300
    assert s.activity.interval_s == 300 and s.activity.force_alive is True
    assert s.child.ready_check_path == "/" and s.child.ready_timeout_s == 10
    assert s.child.repobranch == "master" and s.child.repofolder == "."
    assert s.child.logs is True and s.debug is False
    assert s.proxy.prefix == "" and s.child.base_url == ""
    assert s.proxy.ws_max_message_bytes >= 16 * 2**20


@pytest.mark.parametrize(
    "url, ip, port",
    [
        ("http://127.0.0.1:9000/user/x/", "127.0.0.1", 9000),
        ("http://:8001/user/x/", "", 8001),
        ("http://[::1]:8002/", "::1", 8002),
        ("https://pod.example/", "pod.example", 443),
        ("http://pod.example/", "pod.example", 80),
        ("", "", 8888),
    ],
)
def test_port_and_ip_from_service_url(url, ip, port):
    s = parse("app", JUPYTERHUB_SERVICE_URL=url)
    assert (s.server.ip, s.server.port) == (ip, port)


def test_explicit_port_and_ip_win():
    s = parse("--port", "7000", "--ip", "0.0.0.0", "app", JUPYTERHUB_SERVICE_URL="http://127.0.0.1:9000/")
    assert (s.server.ip, s.server.port) == ("0.0.0.0", 7000)


def test_interspersed_options_and_placeholders():
    s = parse("--port", "8000", "--destport", "8505",
              "streamlit", "hello", "{--}server.port", "{port}", "--ip", "0.0.0.0")
    assert s.child.command == ("streamlit", "hello", "{--}server.port", "{port}")
    assert s.server.ip == "0.0.0.0" and s.child.destport == 8505


def test_double_dash_ends_options():
    s = parse("--port", "8000", "--", "python3", "-c", "print(1)", "--ip", "x")
    assert s.child.command == ("python3", "-c", "print(1)", "--ip", "x")


def test_flag_pairs_and_aliases():
    assert parse("--no-force-alive", "a").activity.force_alive is False
    assert parse("--force-keep-alive", "a").activity.force_alive is True
    assert parse("--no-force-keep-alive", "a").activity.force_alive is False
    assert parse("--no-logs", "a").child.logs is False
    s = parse("--allow-root", "--no-NotebookApp.allow_origin", "--progressive", "--debug", "a")
    assert s.debug is True and s.proxy.progressive is True


def test_presentation_path_both_spellings_made_absolute():
    s = parse("--presentation_path=./P.ipynb", "voila", "{presentation_path}")
    assert s.child.presentation_path == "/start/./P.ipynb"
    values = s.child.template_values(1)
    assert values["presentation_dirname"] == "/start/." and values["presentation_basename"] == "P.ipynb"
    assert parse("--presentation-path", "/abs/x.ipynb", "a").child.presentation_path == "/abs/x.ipynb"


def test_prefix_and_base_url():
    s = parse("a", JUPYTERHUB_SERVICE_PREFIX="/user/dan/")
    assert s.proxy.prefix == "/user/dan" and s.child.base_url == "/user/dan"
    assert parse("a", JUPYTERHUB_SERVICE_PREFIX="/").proxy.prefix == ""


def test_lazy_only_with_origin_host():
    assert parse("a", "{origin_host}").child.lazy is True
    assert parse("a", "{port}").child.lazy is False


def test_aiohttp_options_reach_the_probe():
    s = parse("--aiohttp-no-ssl-connector", "--aiohttp-request-timeout", "3", "a")
    assert s.child.ipv4_only is True and s.child.probe_timeout_s == 3
    assert parse("--aiohttp-request-timeout", "0", "a").child.probe_timeout_s is None


def test_environment_passes_to_child():
    s = parse("a", JUPYTERHUB_API_TOKEN="tok-3f9a", OTHER="1")
    assert s.child.env["OTHER"] == "1" and "JUPYTERHUB_API_TOKEN" not in s.child.env  # --pass-api-token: test_cli
    assert "tok-3f9a" not in repr(s.hub)
    assert repr(s.hub.cookie_secret)[2:-1] not in repr(s.hub)


@pytest.mark.parametrize(
    "argv, culprit",
    [
        (["--bogus", "a"], "--bogus"),
        (["a", "{unknown}"], "{unknown}"),
        (["a", "{port"], "{port"),
        (["--port", "x", "a"], "--port"),
        (["--port", "70000", "a"], "--port"),
        (["--authtype", "basic", "a"], "--authtype"),
        (["--ready-check-path", "health", "a"], "--ready-check-path"),
        (["--ready-timeout", "-1", "a"], "--ready-timeout"),
        (["--NotebookApp.allow_origin=*", "a"], "--NotebookApp.allow_origin"),
        ([], "COMMAND"),
    ],
)
def test_bad_input_names_the_culprit(argv, culprit):
    assert culprit in usage_error(*argv)


def test_bad_environment_names_the_variable():
    assert "JUPYTERHUB_SERVICE_URL" in usage_error("a", JUPYTERHUB_SERVICE_URL="http://x:abc/")
    assert "JUPYTERHUB_OAUTH_ACCESS_SCOPES" in usage_error("a", JUPYTERHUB_OAUTH_ACCESS_SCOPES="not json")


def test_authtype_is_parsed_once_into_the_enum():
    assert parse("--authtype", "none", "a").hub.authtype is _settings.AuthType.NONE
    assert parse("--authtype", "oauth", "a").hub.authtype is _settings.AuthType.OAUTH
    # The enum prints as the word given (log lines and the doctor's header read as before).
    assert f"{_settings.AuthType.NONE}" == "none" and "%s" % _settings.AuthType.OAUTH == "oauth"  # noqa: UP031 (as logging formats it)
    with pytest.raises(_settings.SettingsError, match="--authtype: must be one of 'oauth', 'none', not 'basic'"):
        _settings._authtype("basic")


def test_every_exception_is_a_trioproxy_error():
    from trioproxy import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.TrioproxyError), name
    # The two that were ValueErrors still are (callers may catch either).
    assert issubclass(errors.SettingsError, ValueError) and issubclass(errors.TemplateError, ValueError)
    assert _settings.SettingsError is errors.SettingsError


def test_settings_are_frozen():
    s = parse("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.debug = True  # type: ignore[misc]


def test_only_settings_reads_the_environment():
    root = os.path.dirname(_settings.__file__)
    readers = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.relpath(os.path.join(folder, name), root)
            if name.endswith(".py") and path not in ("settings.py", "cli.py"):
                with open(os.path.join(folder, name)) as f:
                    text = f.read()
                if "os.environ" in text or "os.getenv" in text:
                    readers.append(path)
    assert readers == []
