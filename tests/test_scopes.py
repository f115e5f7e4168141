from trioproxy import _scopes
from trioproxy._scopes import Who, grants

# What JupyterHub requires for dan's default server.
NEED = ["access:servers!server=dan/", "access:servers!user=dan"]


def test_parse():
    assert _scopes.parse(["a", "b!user=x", "b!user=y", "c!server=u/s", "bad!", "bad2!user=", "!x"]) == {
        "a": None,
        "b": {"user": {"x", "y"}},
        "c": {"server": {"u/s"}},
    }
    assert _scopes.parse(["b!user=x", "b"]) == {"b": None}


def test_exact_and_unfiltered():
    assert grants(["access:servers!server=dan/"], NEED)
    assert grants(["access:servers!user=dan"], NEED)
    assert grants(["access:servers"], NEED)
    assert not grants(["access:services", "read:users", "access:servers!user=eve"], NEED)
    assert not grants([], NEED)
    # An unfiltered requirement needs an unfiltered grant.
    assert not grants(["access:servers!user=dan"], ["access:servers"])
    assert grants(["access:servers"], ["access:servers"])


def test_user_grants_its_servers_but_a_server_grants_only_itself():
    assert grants(["access:servers!user=dan"], ["access:servers!server=dan/dash"])
    assert not grants(["access:servers!user=eve"], ["access:servers!server=dan/dash"])
    # A shared named server does not open the default one (the Hub's overlap rule would).
    assert not grants(["access:servers!server=dan/other"], NEED)
    assert grants(["access:servers!server=dan/other"], ["access:servers!server=dan/other", "access:servers!user=dan"])


def test_group_filters_use_what_is_known():
    held = ["access:servers!group=team"]
    assert not grants(held, NEED, Who(user="eve", groups=frozenset({"team"}), owner="dan"))
    dan = Who(user="dan", groups=frozenset({"team"}), owner="dan", owner_groups=frozenset({"team"}))
    assert grants(held, NEED, dan)
    assert not grants(["access:servers!group=other"], NEED, dan)
