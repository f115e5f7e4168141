"""``trioproxy doctor``: check the JupyterHub contract in this environment and say what to fix.

Run it in the user's pod or container, with the environment the Spawner
set (``kubectl exec ... -- trioproxy doctor``). Each check prints one line:
``ok``, ``warn`` (works, but probably not as intended) or ``FAIL`` with how
to fix it (``skip``: could not be checked here). The exit code is 1 when
any check fails, else 0.

The websocket checks (:mod:`.doctor_ws`) open trioproxy's own echo on the
server's address and through the Hub's route (``--via URL``, the doctor's
one option of its own, else ``$JUPYTERHUB_PUBLIC_URL``).
"""

from __future__ import annotations

import errno
import socket
import ssl
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TextIO

import trio

from ..errors import HubRefused, HubSetupError, HubUnavailable
from ..hub.api import open_hub
from ..rules import scopes as _scopes
from ..settings import AuthType, Settings
from . import doctor_ws as _ws
from .doctor_ws import DoctorOptions

#: Variables a Spawner sets that trioproxy relies on with --authtype oauth.
REQUIRED = (
    "JUPYTERHUB_API_TOKEN",
    "JUPYTERHUB_API_URL",
    "JUPYTERHUB_CLIENT_ID",
    "JUPYTERHUB_SERVICE_PREFIX",
    "JUPYTERHUB_SERVICE_URL",
    "JUPYTERHUB_USER",
    "JUPYTERHUB_OAUTH_CALLBACK_URL",
    "JUPYTERHUB_ACTIVITY_URL",
)
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy")


@dataclass
class Report:
    out: TextIO = sys.stdout
    failed: int = 0
    warned: int = 0
    lines: list[tuple[str, str, str]] = field(default_factory=list)

    def ok(self, what: str) -> None:
        self._emit("ok", what, "")

    def warn(self, what: str, fix: str = "") -> None:
        self.warned += 1
        self._emit("warn", what, fix)

    def fail(self, what: str, fix: str) -> None:
        self.failed += 1
        self._emit("FAIL", what, fix)

    def skip(self, what: str, fix: str = "") -> None:
        """A check that could not run here (neither a problem nor a warning)."""
        self._emit("skip", what, fix)

    def _emit(self, level: str, what: str, fix: str) -> None:
        self.lines.append((level, what, fix))
        print(f"{level:>4}  {what}", file=self.out)
        if fix:
            print(f"      fix: {fix}", file=self.out)


def _no_proxy_covers(no_proxy: str, host: str) -> bool:
    host = host.strip("[]").lower()
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*" or entry == host:
            return True
        if entry.startswith(".") and host.endswith(entry):
            return True
        if not entry[0].isdigit() and host.endswith("." + entry):
            return True
        if "/" in entry and host[:1].isdigit():
            import ipaddress  # noqa: PLC0415 (only for CIDR entries)

            try:
                if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
    return False


def check_environment(settings: Settings, environ: Mapping[str, str], report: Report) -> None:
    """Variables present and consistent with each other (no I/O)."""
    hub = settings.hub
    oauth = hub.authtype is AuthType.OAUTH
    missing = [name for name in REQUIRED if not environ.get(name)]
    if missing and oauth:
        report.fail(f"missing: {', '.join(missing)}",
                    "run trioproxy as a JupyterHub Spawner's command (c.Spawner.cmd), which sets them")
    elif missing:
        report.warn(f"not set: {', '.join(missing)} (fine with --authtype none outside JupyterHub)")
    else:
        report.ok("the JupyterHub variables are all set")

    raw_prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX", "")
    if raw_prefix and not (raw_prefix.startswith("/") and raw_prefix.endswith("/")):
        report.fail(f"JUPYTERHUB_SERVICE_PREFIX={raw_prefix!r} should start and end with '/'",
                    "use the value the Spawner sets, e.g. /user/<name>/")
    service_url = environ.get("JUPYTERHUB_SERVICE_URL", "")
    if service_url and raw_prefix:
        path = urllib.parse.urlsplit(service_url).path or "/"
        if path != raw_prefix:
            report.fail(f"JUPYTERHUB_SERVICE_URL path {path!r} differs from JUPYTERHUB_SERVICE_PREFIX {raw_prefix!r}",
                        "do not override one of them")
        else:
            report.ok(f"service URL {service_url} matches the prefix")
    callback = environ.get("JUPYTERHUB_OAUTH_CALLBACK_URL", "")
    if callback and raw_prefix:
        path = urllib.parse.urlsplit(callback).path
        if path != raw_prefix + "oauth_callback":
            report.fail(f"JUPYTERHUB_OAUTH_CALLBACK_URL path {path!r} is not {raw_prefix}oauth_callback",
                        "trioproxy serves the callback under its prefix; leave the Spawner's value")
    user, name = hub.user, hub.server_name
    if hub.client_id and user:
        expected = f"jupyterhub-user-{urllib.parse.quote(user, safe='')}" + (f"-{name}" if name else "")
        if hub.client_id != expected:
            report.warn(f"JUPYTERHUB_CLIENT_ID={hub.client_id!r}, expected {expected!r} for {user}/{name}")
    if hub.activity_url and hub.api_url and user and not hub.activity_url.startswith(hub.api_url + "/users/"):
        report.warn(f"JUPYTERHUB_ACTIVITY_URL {hub.activity_url} is not under JUPYTERHUB_API_URL {hub.api_url}")
    if oauth and user:
        need = [f"access:servers!server={user}/{name}", f"access:servers!user={user}"]
        if not hub.access_scopes:
            report.warn("JUPYTERHUB_OAUTH_ACCESS_SCOPES is empty: only the owner, $JUPYTERHUB_GROUP and "
                        "$JUPYTERHUB_ANYONE decide who enters (JupyterHub < 3?)")
        elif not _scopes.grants(need[:1], hub.access_scopes):
            report.warn(f"the access scopes {list(hub.access_scopes)} do not name this server ({user}/{name})")
        else:
            report.ok("the access scopes name this server")


def check_proxy_variables(environ: Mapping[str, str], hosts: list[str], report: Report) -> None:
    lowered = {k.lower(): v for k, v in environ.items()}
    set_vars = [k for k in environ if k.lower() in PROXY_VARS and environ[k]]
    if not set_vars:
        report.ok("no HTTP proxy variables")
        return
    no_proxy = lowered.get("no_proxy", "")
    uncovered = [
        h for h in dict.fromkeys(["127.0.0.1", "localhost", *hosts]) if h and not _no_proxy_covers(no_proxy, h)
    ]
    if uncovered:
        report.fail(
            f"{', '.join(set_vars)} set and NO_PROXY does not cover {', '.join(uncovered)}: the app's own calls "
            "to itself or to the Hub may go through that proxy (trioproxy itself ignores these variables)",
            f"add {','.join(uncovered)} to NO_PROXY (and no_proxy)",
        )
    else:
        report.ok(f"{', '.join(set_vars)} set, and NO_PROXY covers loopback and the Hub")


def check_tls(settings: Settings, report: Report) -> None:
    s = settings.server
    if not (s.ssl_keyfile or s.ssl_certfile or s.ssl_client_ca):
        return
    try:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(s.ssl_certfile, s.ssl_keyfile)
    except (OSError, ssl.SSLError) as exc:
        report.fail(f"cannot load JUPYTERHUB_SSL_CERTFILE/KEYFILE: {exc}",
                    "check the files exist, are readable by this user and belong together")
        return
    report.ok("the TLS certificate and key load and match")
    if not s.ssl_client_ca:
        report.warn("JUPYTERHUB_SSL_CLIENT_CA not set: clients are not asked for certificates")
        return
    try:
        from cryptography import x509  # noqa: PLC0415 (cryptography: only with a client CA)

        with open(s.ssl_certfile, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        with open(s.ssl_client_ca, "rb") as f:
            cas = x509.load_pem_x509_certificates(f.read())
    except (OSError, ValueError) as exc:
        report.fail(f"cannot read the certificates: {exc}",
                    "check JUPYTERHUB_SSL_CERTFILE and JUPYTERHUB_SSL_CLIENT_CA")
        return
    if not cas:
        report.fail("JUPYTERHUB_SSL_CLIENT_CA holds no certificate", "point it at the CA bundle the Spawner wrote")
        return
    report.ok(f"the CA bundle holds {len(cas)} certificate(s); clients must present one they signed")
    report.ok(f"the server certificate is issued by {cert.issuer.rfc4514_string()} "
              "(the Hub and its proxy must trust that CA)")


def check_bind(settings: Settings, report: Report) -> None:
    s = settings.server
    host = s.ip or "::"
    try:
        infos = socket.getaddrinfo(host, s.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        report.fail(f"cannot resolve the bind address {s.ip!r}: {exc}",
                    "use --ip with a local address, or leave it empty")
        return
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                report.warn(f"port {s.port} on {s.ip or '*'} is in use (by a running trioproxy?)")
            else:
                report.fail(f"cannot bind {s.ip or '*'}:{s.port}: {exc.strerror}",
                            "the host of JUPYTERHUB_SERVICE_URL (or --ip) must be an address of this machine")
            return
    report.ok(f"can listen on {s.ip or '*'}:{s.port}")


async def check_hub(settings: Settings, report: Report) -> None:
    hub = settings.hub
    if not hub.api_token:
        return
    try:
        opened = open_hub(hub)
    except HubSetupError as exc:
        report.fail(str(exc), "check the JUPYTERHUB_SSL_* files")
        return
    async with opened as api:
        try:
            await api.call_root()
        except HubUnavailable as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                report.fail(f"the Hub's TLS certificate does not chain to JUPYTERHUB_SSL_CLIENT_CA: {exc}",
                            "use the CA bundle the Spawner wrote for this server")
            else:
                report.fail(f"the Hub API does not answer: {exc}",
                            "check JUPYTERHUB_API_URL is reachable from here (network policy, Spawner.hub_connect_url)")
            return
        tls = (" over TLS, its certificate chaining to JUPYTERHUB_SSL_CLIENT_CA"
               if hub.api_url.startswith("https") else "")
        report.ok(f"the Hub API answers at {hub.api_url} (JupyterHub {api.version}){tls}")
        try:
            model = await api.user_for_token(hub.api_token)
        except (HubUnavailable, HubRefused) as exc:
            report.fail(f"cannot check the API token: {exc}", "check the Hub's logs")
            return
    if model is None:
        report.fail("the Hub does not accept JUPYTERHUB_API_TOKEN",
                    "the server was probably stopped or its token revoked; restart the server from the Hub")
        return
    report.ok(f"the API token is valid ({model.get('kind', 'user')} {model.get('name')})")
    if hub.user and settings.activity.interval_s > 0:
        if _scopes.grants(model.get("scopes") or (), [f"users:activity!user={hub.user}"]):
            report.ok("the token may report activity (users:activity)")
        else:
            report.fail("the API token lacks users:activity for this user: activity reports will be refused",
                        "keep users:activity!user in Spawner.server_token_scopes, or use --last-activity-interval 0")


def check_dependencies(report: Report) -> None:
    """The releases of the dependencies trioproxy.compat reaches into are those it was read against."""
    from .. import compat  # noqa: PLC0415 (imports the serving stack: only here, not with the module)

    try:
        found = compat.check_all()
    except compat.CompatError as exc:
        report.fail(str(exc), "install trioproxy with the dependency versions its pyproject.toml allows")
    else:
        report.ok(f"dependencies as tested: {', '.join(found)}")


def run(settings: Settings, environ: Mapping[str, str], out: TextIO = sys.stdout,
        options: DoctorOptions | None = None) -> int:
    """All checks; the exit code. ``options``: the doctor's own (``doctor_ws.split_options``)."""
    report = Report(out)
    print(f"trioproxy doctor: prefix {settings.proxy.prefix + '/'}, auth {settings.hub.authtype}", file=out)
    check_environment(settings, environ, report)
    hosts = [urllib.parse.urlsplit(settings.hub.api_url).hostname or ""]
    check_proxy_variables(environ, hosts, report)
    check_tls(settings, report)
    check_bind(settings, report)
    check_dependencies(report)
    if settings.hub.authtype is AuthType.OAUTH or settings.activity.interval_s > 0:
        trio.run(check_hub, settings, report)
    trio.run(_ws.check_websockets, settings, environ, options or DoctorOptions(), report)
    summary = f"{report.failed} problem(s), {report.warned} warning(s)"
    print(("FAILED: " if report.failed else "OK: ") + summary, file=out)
    return 1 if report.failed else 0

