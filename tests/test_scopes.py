from trioproxy.rules import scopes as _scopes
from trioproxy.rules.scopes import Door, Who, admits, control_access, general_purpose, grants

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


# --- who may enter (_scopes.admits) and the owner's controls (_scopes.control_access) --------

DAN = Door(owner="dan", access_scopes=tuple(NEED))
IDENTIFY = ["read:users:name!user={u}", "read:users:groups!user={u}"]


def user(name, scopes, *, groups=(), kind="user", admin=False):
    return {"kind": kind, "name": name, "groups": list(groups), "admin": admin,
            "scopes": [s.format(u=name) for s in scopes]}


def test_with_access_scopes_only_scopes_open_the_server_never_a_name():
    # The owner's general-purpose token, and the token the Hub issued for this server.
    assert admits(user("dan", ["access:servers!user=dan", *IDENTIFY]), DAN) == "scopes"
    assert admits(user("dan", ["access:servers!server=dan/", *IDENTIFY]), DAN) == "scopes"
    # The owner's name alone does not: a token for another server, read-only, or no access scope.
    assert admits(user("dan", ["access:servers!server=dan/other", *IDENTIFY]), DAN) is None
    assert admits(user("dan", ["access:servers!server=bob/", *IDENTIFY]), DAN) is None
    assert admits(user("dan", ["read:users:name!user=dan"]), DAN) is None
    assert admits(user("dan", ["users:activity!user=dan", "read:servers!user=dan"]), DAN) is None
    assert admits(user("dan", []), DAN) is None
    assert admits({"kind": "user", "name": "dan"}, DAN) is None  # no scopes at all
    # Others by their scopes: a share, a role, an admin's unfiltered access.
    assert admits(user("sam", ["access:servers!server=dan/"]), DAN) == "scopes"
    assert admits(user("root", ["access:servers"], admin=True), DAN) == "scopes"
    assert admits(user("eve", ["access:servers!user=eve", *IDENTIFY]), DAN) is None
    assert admits(user("", ["access:servers"]), DAN) is None  # no name: nobody


def test_group_and_anyone_admit_general_purpose_tokens_only():
    door = Door(owner="dan", access_scopes=tuple(NEED), groups=frozenset({"team"}))
    assert admits(user("bob", ["access:servers!user=bob"], groups=["team"]), door) == "group"
    assert admits(user("bob", ["access:servers"], groups=["team"]), door) == "scopes"
    assert admits(user("bob", ["access:servers!group=team"], groups=["team"]), door) == "group"
    assert admits(user("bob", ["access:servers!group=other"], groups=["team", "other"]), door) == "group"
    # Not a member, or a member with a token for another server, read-only, or another user's servers.
    assert admits(user("eve", ["access:servers!user=eve"]), door) is None
    assert admits(user("bob", ["access:servers!server=bob/"], groups=["team"]), door) is None
    assert admits(user("bob", ["access:servers!server=carl/x"], groups=["team"]), door) is None
    assert admits(user("bob", ["read:users:name!user=bob"], groups=["team"]), door) is None
    assert admits(user("bob", ["access:servers!user=carl"], groups=["team"]), door) is None
    anyone = Door(owner="dan", access_scopes=tuple(NEED), anyone=True)
    assert admits(user("eve", ["access:servers!user=eve", *IDENTIFY]), anyone) == "anyone"
    assert admits(user("eve", ["access:servers!server=eve/", *IDENTIFY]), anyone) is None
    assert admits(user("eve", IDENTIFY), anyone) is None
    # The owner's token for another server stays out, whatever the wider doors say.
    assert admits(user("dan", ["access:servers!server=dan/other"]), anyone) is None
    # Services: by scopes only.
    assert admits(user("svc", ["access:servers!user=svc"], kind="service"), anyone) is None
    assert admits(user("svc", ["access:servers!server=dan/"], kind="service"), anyone) == "scopes"


def test_general_purpose():
    assert general_purpose(["access:servers!user=bob"], "bob")
    assert general_purpose(["access:servers"], "bob")
    assert general_purpose(["access:servers!group=g"], "bob", frozenset({"g"}))
    assert not general_purpose(["access:servers!group=g"], "bob")
    assert not general_purpose(["access:servers!server=bob/"], "bob")
    assert not general_purpose(["access:servers!user=bob"], "")


def test_without_access_scopes_the_legacy_rules():
    legacy = Door(owner="dan", groups=frozenset({"team"}))
    assert admits(user("dan", []), legacy) == "owner"
    assert admits(user("bob", [], groups=["team"]), legacy) == "group"
    assert admits(user("eve", []), legacy) is None
    assert admits(user("dan", [], kind="service"), legacy) is None
    anyone = Door(owner="dan", anyone=True)
    assert admits(user("eve", []), anyone) == "anyone"
    assert admits(user("dan", []), anyone) == "owner"


def test_the_owner_check_needs_the_owner_and_a_token_that_opens_this_server():
    general = ["access:servers!user=dan", *IDENTIFY]
    assert control_access(user("dan", general), DAN) == "owner"
    assert control_access(user("dan", ["access:servers!server=dan/"]), DAN) == "owner"
    for scopes in (["access:servers!server=dan/other"], ["read:users:name!user=dan"], []):
        assert control_access(user("dan", scopes), DAN) == ""
    # A service named like the owner, someone else, nobody.
    assert control_access(user("dan", ["access:servers"], kind="service"), DAN) == ""
    assert control_access(user("sam", ["access:servers!server=dan/"]), DAN) == ""
    assert control_access(None, DAN) == ""
    # Admins: the status, if the scopes admit them; a group member who is an admin gets nothing more.
    assert control_access(user("root", ["access:servers"], admin=True), DAN) == "status"
    assert control_access(user("root", ["access:servers!user=root"], admin=True), DAN) == ""
    team = Door(owner="dan", access_scopes=tuple(NEED), groups=frozenset({"team"}))
    assert control_access(user("root", ["access:servers!user=root"], groups=["team"], admin=True), team) == ""
    assert control_access(user("root", ["access:servers"], admin="yes"), DAN) == ""
    # Legacy Hub: the owner by name; no admin status (nothing admits them by scopes).
    legacy = Door(owner="dan", anyone=True)
    assert control_access(user("dan", []), legacy) == "owner"
    assert control_access(user("root", [], admin=True), legacy) == ""
