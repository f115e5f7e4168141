"""The cookies that carry JupyterHub's and trioproxy's credentials: the app never gets or sets one.

Pure. Without ``c.JupyterHub.subdomain_host`` every server of the Hub shares
one origin, so the browser sends this server's requests every cookie whose
path covers them: the default server's login cookie (``jupyterhub-user-alice``,
``Path=/user/alice/``) reaches every named server under it, the Hub's session
id (``Path=/``) reaches everything. None of them is the app's business, and an
app that could set one could fix a session on the Hub or on trioproxy.

The names (JupyterHub 4.1-6.x, ``services/auth.py`` and ``handlers/base.py``):

* ``jupyterhub-user-<name>[-<server>]``: a server's login cookie (its OAuth client id);
* ``__Host-`` before any of them, when the Hub uses cookie host prefixes;
* ``jupyterhub-services...``: the services' login cookie of old Hubs;
* ``...-oauth-state...``: a login in progress (the Hub's and trioproxy's);
* ``jupyterhub-hub-login`` and ``jupyterhub-session-id``: the Hub's own.

Matching ignores case: browsers treat the ``__Host-`` prefix so, and a name
that differs from a credential's only in case is no cookie an app needs.
"""

from __future__ import annotations

#: Exact names of the Hub's own cookies.
HUB_COOKIES = frozenset({"jupyterhub-hub-login", "jupyterhub-session-id"})
#: Name prefixes of login cookies (servers, and old Hubs' services).
LOGIN_PREFIXES = ("jupyterhub-user-", "jupyterhub-services")
#: Any name holding this is a login in progress.
STATE_MARK = "-oauth-state"
#: The cookie-name prefix that binds a cookie to the host (RFC 6265bis).
HOST_PREFIX = "__host-"


def is_credential(name: str, own: str = "") -> bool:
    """Is ``name`` a cookie of JupyterHub's or of trioproxy's (``own``: trioproxy's login cookie)?"""
    lowered = name.strip().lower()
    if own and lowered == own.lower():
        return True
    if STATE_MARK in lowered:
        return True
    lowered = lowered.removeprefix(HOST_PREFIX)
    return lowered in HUB_COOKIES or lowered.startswith(LOGIN_PREFIXES)
