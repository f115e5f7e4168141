import pytest

from trioproxy.rules import hub_cookies as _hub_cookies


@pytest.mark.parametrize(
    "name",
    [
        "jupyterhub-user-alice",  # the default server's login: reaches every named server under it
        "jupyterhub-user-alice-foo",
        "__Host-jupyterhub-user-alice",
        "__host-jupyterhub-user-alice",
        "jupyterhub-services",
        "jupyterhub-services-foo",
        "jupyterhub-user-alice-oauth-state-0123abcd",
        "service-foo-oauth-state",
        "jupyterhub-hub-login",
        "__Host-jupyterhub-hub-login",
        "jupyterhub-session-id",
        "JupyterHub-Session-Id",
    ],
)
def test_credentials_of_the_hub_are_recognised(name: str) -> None:
    assert _hub_cookies.is_credential(name)


@pytest.mark.parametrize(
    "name", ["session", "_xsrf", "_streamlit_xsrf", "jupyterhub", "jupyterhub-user", "user-alice", "__Host-app", ""]
)
def test_the_apps_cookies_are_not(name: str) -> None:
    assert not _hub_cookies.is_credential(name)


def test_trioproxys_own_login_cookie_by_name() -> None:
    assert _hub_cookies.is_credential("my-client", own="my-client")
    assert not _hub_cookies.is_credential("my-client")
