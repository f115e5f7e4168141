from trioproxy import _scopes
from trioproxy._scopes import Who, intersects

NEED = ["access:servers!server=dan/", "access:servers!user=dan"]


def test_parse():
    assert _scopes.parse(["a", "b!user=x", "b!user=y", "c!server=u/s", "bad!", "bad2!user=", "!x"]) == {
        "a": None,
        "b": {"user": {"x", "y"}},
        "c": {"server": {"u/s"}},
    }
    assert _scopes.parse(["b!user=x", "b"]) == {"b": None}


def test_exact_and_unfiltered():
    assert intersects(["access:servers!server=dan/"], NEED)
    assert intersects(["access:servers"], NEED)
    assert intersects(["access:servers!user=dan"], ["access:servers"])
    assert not intersects(["access:services", "read:users"], NEED)
    assert not intersects([], NEED)


def test_user_covers_servers_and_back():
    assert intersects(["access:servers!user=dan"], ["access:servers!server=dan/dash"])
    assert intersects(["access:servers!server=dan/dash"], ["access:servers!user=dan"])
    assert not intersects(["access:servers!user=eve"], ["access:servers!server=dan/dash"])
    assert not intersects(["access:servers!server=eve/"], NEED)
    # A shared named server does not open the default one.
    assert not intersects(["access:servers!server=dan/other"], ["access:servers!server=dan/"])


def test_group_filters_use_what_is_known():
    held = ["access:servers!group=team"]
    assert not intersects(held, NEED, Who(user="eve", groups=frozenset({"team"}), owner="dan"))
    assert intersects(held, NEED, Who(user="dan", groups=frozenset({"team"}), owner="dan", owner_groups=frozenset({"team"})))
    assert intersects(["access:servers!user=eve"], ["access:servers!group=team"], Who(user="eve", groups=frozenset({"team"})))
    assert not intersects(["access:servers!user=eve"], ["access:servers!group=team"], Who(user="eve"))
