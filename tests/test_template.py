"""Command templates (pure)."""

import pytest

from trioproxy.rules import template as _template


def test_render_all_keys():
    cmd = ["voila", "{presentation_path}", "{--}port={port}", "{-}m", "{--}Voila.base_url={base_url}/",
           "x{origin_host}"]
    values = {"port": 8123, "base_url": "/user/dan", "presentation_path": "/a/b.ipynb", "origin_host": "hub:8000"}
    assert _template.render(cmd, values) == [
        "voila", "/a/b.ipynb", "--port=8123", "-m", "--Voila.base_url=/user/dan/", "xhub:8000",
    ]


def test_doubled_braces_and_format_spec():
    assert _template.render(['{{"a": 1}}', "{port:06d}"], {"port": 80}) == ['{"a": 1}', "000080"]


def test_check_returns_keys():
    assert _template.check(["a", "{port}", "{origin_host}x"]) == {"port", "origin_host"}


@pytest.mark.parametrize("word", ["{unknown}", "{port", "port}", "{}", "{0}", '{"json": 1}'])
def test_bad_templates_name_the_word(word):
    with pytest.raises(_template.TemplateError) as info:
        _template.check(["app", word])
    assert repr(word) in str(info.value)


def test_unix_socket_is_a_key():
    assert _template.check(["uvicorn", "--uds", "{unix_socket}"]) == {"unix_socket"}
    assert _template.render(["--bind", "unix:{unix_socket}"], {"unix_socket": "/run/x/app.sock"}) == [
        "--bind", "unix:/run/x/app.sock",
    ]


@pytest.mark.parametrize(("word", "meant"), [("{prot}", "port"), ("{Port}", "port"), ("--x={base-url}", "base_url"),
                                             ("{unix_sock}", "unix_socket"), ("{origin}", "origin_host"),
                                             ("{ports.real}", "port")])
def test_a_misspelt_key_gets_a_suggestion(word, meant):
    with pytest.raises(_template.TemplateError) as info:
        _template.check(["app", word])
    assert f"(did you mean {{{meant}}}?)" in str(info.value) and repr(word) in str(info.value)


def test_no_suggestion_for_a_word_nothing_like_a_key():
    with pytest.raises(_template.TemplateError) as info:
        _template.check(["app", "{xyzzy}"])
    assert "did you mean" not in str(info.value) and "known: " in str(info.value)
