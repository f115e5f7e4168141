"""The command line: argv -> Settings -> run -> exit code.

Option names, types, defaults and parsing rules are those of
jhsingle-native-proxy 0.8.3 (a click CLI too), so a deployment switches by
changing the command's name. Options may be interspersed with the command's
words; after a literal ``--`` everything belongs to the command; ``{--}`` and
``{-}`` smuggle dashes past the parser.

Logging is set up here: one handler on stderr, text or JSON (``--log-format``).
Logger names are public, one per part of trioproxy, so an operator can filter
on them (a module logs on its package's name, never its own path):
``trioproxy.app`` (the app's output lines, ``[stdout]``/``[stderr]``),
``trioproxy.git`` and ``trioproxy.conda`` (the bootstrap's output),
``trioproxy.access`` (``--access-log``), ``trioproxy.child`` (the app's
process: start, ready, exit, restarts), ``trioproxy.proxy`` (routing and
forwarding), ``trioproxy.auth`` (logins), ``trioproxy.hub`` (the Hub's API,
activity), ``trioproxy.server`` (listening, connections),
``trioproxy.hypercorn`` (hypercorn's own errors), ``trioproxy.ops`` (the
owner's pages and endpoints) and ``trioproxy.run`` (start-up, shutdown).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click

from . import settings as _settings
from ._version import __version__

logger = logging.getLogger("trioproxy.run")

EPILOG = """\b
Command templates (in any COMMAND word): {port} {unix_socket} {base_url} {presentation_path}
{presentation_dirname} {presentation_basename} {origin_host} {-} {--};
write {{ and }} for literal braces. {unix_socket}: a socket path in a private
directory (only this user may connect). Without {port}, {unix_socket} or
--destport, the port the app's processes listen on is found and used.
\b
Environment: JUPYTERHUB_SERVICE_PREFIX (URL prefix, default /),
JUPYTERHUB_SERVICE_URL (default --port and --ip), JUPYTERHUB_SSL_KEYFILE,
JUPYTERHUB_SSL_CERTFILE, JUPYTERHUB_SSL_CLIENT_CA (serve TLS, require client
certificates), and the JUPYTERHUB_* variables a Spawner sets for OAuth and
activity. The app inherits the environment, except $TRIOPROXY_COOKIE_SECRET and
(without --pass-api-token) $JUPYTERHUB_API_TOKEN and $JPY_API_TOKEN.
"""


_Decorated = TypeVar("_Decorated", bound=Callable[..., Any])


def _opt(*decls: str, **kw: Any) -> Callable[[_Decorated], _Decorated]:
    """``click.option``, typed for ``mypy --strict`` (click's own decorators are)."""
    decorator: Callable[[_Decorated], _Decorated] = click.option(*decls, **kw)
    return decorator


#: ``--help``'s sections: a title and the options in it (by parameter name), in order.
#: Every option is in one (``tests/test_cli.py`` checks it).
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("jhsingle-native-proxy's options (same names, same defaults)", (
        "port", "destport", "ip", "presentation_path", "debug", "logs", "authtype", "request_timeout",
        "last_activity_interval", "force_alive", "ready_check_path", "ready_timeout", "repo", "repobranch",
        "repofolder", "conda_env", "allow_root", "notebookapp_allow_origin", "forward_user_info",
        "query_user_info", "progressive", "websocket_max_message_size", "aiohttp_no_ssl_connector",
        "aiohttp_request_timeout",
    )),
    ("JupyterHub", (
        "hub_ready_timeout", "auth_cache_ttl", "cookie_secret_file", "pass_api_token", "public_controls",
    )),
    ("The app's answers (paths, redirects, cookies)", (
        "keep_prefix", "redirect_rewrite", "cookie_rewrite", "keep_cookie_domain",
    )),
    ("Logging", ("log_format", "app_stderr_level", "access_log")),
    ("Operations", ("metrics_public",)),
    ("Restarts and shutdown", ("max_restarts", "shutdown_timeout")),
    ("Other", ("version", "help")),
)


class _Sectioned(click.Command):
    """A click command whose ``--help`` lists its options in :data:`SECTIONS`."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        records = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx) if isinstance(param, click.Option) else None  # COMMAND: in Usage
            if record is not None and param.name:
                # click names its own --help option "_click_default_help" (8.2+), "help" before.
                records["help" if "--help" in param.opts else param.name] = record
        for title, names in SECTIONS:
            rows = [records.pop(name) for name in names if name in records]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        if records:  # an option missing from SECTIONS is still shown
            with formatter.section("More options"):
                formatter.write_dl(list(records.values()))


@click.command(
    cls=_Sectioned,
    name="trioproxy",
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("command", nargs=-1, required=True)
@_opt("--port", type=int, default=None,
      help="Port to listen on. Default: the port of $JUPYTERHUB_SERVICE_URL (80/443 by scheme), else 8888.")
@_opt("--destport", type=int, default=0, show_default=True,
      help="Port the app must listen on, given to it as {port}; 0 picks a free port (or, without {port} "
           "in the command, finds the port the app listens on). Not with {unix_socket}.")
@_opt("--ip", type=str, default=None,
      help="Address to listen on. Default: the host of $JUPYTERHUB_SERVICE_URL; empty means every interface.")
@_opt("--presentation-path", "--presentation_path", "presentation_path", type=str, default="",
      help="Sets {presentation_path} (made absolute), {presentation_dirname} and {presentation_basename}.")
@_opt("--debug/--no-debug", default=False,
      help="Debug logging: trioproxy's decisions per request (routing, login, pooled or new connection to the "
           "app, retries, rewritten headers); never a token or a cookie's value.")
@_opt("--logs/--no-logs", default=True, show_default=True,
      help="Pass the app's stdout and stderr lines to the log (logger trioproxy.app, tagged [stdout]/[stderr]; "
           "levels: info, and --app-stderr-level).")
@_opt("--authtype", type=click.Choice(["oauth", "none"]), default="oauth", show_default=True,
      help="oauth: JupyterHub login; a token gets in when its scopes grant this server "
           "($JUPYTERHUB_OAUTH_ACCESS_SCOPES: the owner, roles, servers shared on the Hub); members of "
           "$JUPYTERHUB_GROUP (comma-separated) and, with $JUPYTERHUB_ANYONE=1, any Hub user, with a token "
           "that opens their own servers. "
           "Browsers are sent to the Hub to log in; API clients use 'Authorization: token ...'. "
           "none: no login at all (behind another authenticating proxy only).")
@_opt("--request-timeout", type=int, default=300, show_default=True,
      help="Seconds to wait for the app to start answering a request (connect and headers; "
           "a healthy stream may run for ever). 0: no limit.")
@_opt("--last-activity-interval", type=int, default=300, show_default=True,
      help="Seconds between activity reports to $JUPYTERHUB_ACTIVITY_URL (with $JUPYTERHUB_API_TOKEN, "
           "server $JUPYTERHUB_SERVER_NAME); 0 never reports.")
@_opt("--force-alive/--no-force-alive", "--force-keep-alive/--no-force-keep-alive", "force_alive",
      default=True, show_default=True,
      help="Report 'active now' at every interval (the server is never culled as idle); "
           "--no-force-alive reports the time of the last real traffic.")
@_opt("--ready-check-path", type=str, default="/", show_default=True,
      help="Path on the app probed until it answers (any HTTP status) to count as ready.")
@_opt("--ready-timeout", type=int, default=10, show_default=True,
      help="Seconds a starting app may go without any sign of progress (output, CPU time or I/O of its "
           "processes, a new process or listening socket) before it is restarted; one that keeps "
           "progressing is waited for up to 15 min. 0: no limit but that.")
@_opt("--repo", type=str, default="",
      help="Git repository URL: before the app first starts it is cloned into --repofolder, or that "
           "checkout is updated (local changes kept, colliding new files renamed), and the app runs in "
           "that folder. Clone depth $NBGITPULLER_DEPTH (1; 0 or less: full history). Credentials in the "
           "URL are shown as ***. On failure the app is not started and the error page says why.")
@_opt("--repobranch", type=str, default="master", show_default=True, help="Branch of --repo to check out.")
@_opt("--repofolder", type=str, default=".", show_default=True,
      help="Folder for --repo, relative to the current one: cloned into when missing or empty, updated "
           "when it is a checkout of --repo; anything else is an error (so the default '.' must be such a "
           "checkout or empty).")
@_opt("--conda-env", type=str, default="",
      help="Run the app inside this conda environment: a name, or the path of an environment. Conda is "
           "$CONDA_EXE, else `conda` on PATH; a missing conda or environment is an error shown on the "
           "error page.")
@_opt("--allow-root/--no-allow-root", default=True, help="Accepted for jupyterhub-singleuser compatibility; no effect.")
@_opt("--NotebookApp.allow_origin/--no-NotebookApp.allow_origin", "notebookapp_allow_origin", default=True,
      help="Accepted for compatibility; no effect.")
@_opt("--forward-user-info/--no-forward-user-info", default=False,
      help="Send the JupyterHub user (JSON: kind, name, admin, groups) to the app in the "
           "X-CDSDASHBOARDS-JH-USER header (HTTP and websocket handshakes); needs --authtype oauth. "
           "A copy sent by a client is always stripped.")
@_opt("--query-user-info/--no-query-user-info", default=False,
      help="Send the same JSON as the CDSDASHBOARDS_JH_USER query argument (same conditions).")
@_opt("--keep-prefix/--strip-prefix", default=False, show_default=True,
      help="Forward paths with the prefix kept, for apps that serve under it themselves "
           "(bokeh/panel serve --prefix {base_url}); by default the prefix is stripped.")
@_opt("--redirect-rewrite/--no-redirect-rewrite", default=True, show_default=True,
      help="Keep the app's redirects inside the prefix: a Location, Content-Location or Refresh URL outside it "
           "that is path-absolute (/login), on the app's own loopback address, or on the request's host gets the "
           "prefix in front; relative, already prefixed and foreign URLs pass as sent. With --keep-prefix only "
           "the app's loopback origin is removed. --no-redirect-rewrite passes every one as sent (an app that "
           "sends the browser to the Hub's own pages, /hub/..., on purpose).")
@_opt("--cookie-rewrite/--no-cookie-rewrite", default=True, show_default=True,
      help="Keep the app's cookies with this server: a Set-Cookie Path gets the prefix in front (Path=/ becomes "
           "Path=/user/NAME/; with --keep-prefix a path outside the prefix becomes the prefix) and its Domain is "
           "dropped. --no-cookie-rewrite passes them as sent, for apps that share cookies with the Hub on purpose. "
           "The app can never set JupyterHub's or trioproxy's own cookies, either way.")
@_opt("--keep-cookie-domain/--no-keep-cookie-domain", default=False, show_default=True,
      help="Keep the Domain of the app's cookies (by default it is dropped: a cookie for the whole domain "
           "reaches every user's server and the Hub).")
@_opt("--progressive/--no-progressive", default=False,
      help="Accepted for compatibility: responses always stream as they arrive.")
@_opt("--websocket-max-message-size", type=int, default=0,
      help="Largest websocket message in bytes, both directions; 0: 32 MiB.")
@_opt("--aiohttp-no-ssl-connector", is_flag=True, default=False,
      help="Probe readiness on 127.0.0.1 only (IPv4) and proxy there.")
@_opt("--aiohttp-request-timeout", type=int, default=300, show_default=True,
      help="Seconds one readiness probe may take; 0: bounded only by --ready-timeout.")
@_opt("--shutdown-timeout", type=float, default=_settings.DEFAULT_SHUTDOWN_TIMEOUT_S, show_default=True,
      help="Seconds from SIGTERM to exit: in-flight requests drain this long, then the app's "
           "process group is killed. Raise it where pods get a longer grace period.")
@_opt("--max-restarts", type=int, default=_settings.DEFAULT_MAX_RESTARTS, show_default=True,
      help="Consecutive failed starts of the app before trioproxy exits non-zero.")
@_opt("--cookie-secret-file", type=str, default="",
      help="File holding the secret that seals the login cookie (hex or text, at least 16 bytes), so a "
           f"restart of trioproxy keeps users logged in. Else ${_settings.COOKIE_SECRET_ENV}; else a random "
           "secret per start (users log in again after a restart, through the Hub, usually without a prompt).")
@_opt("--auth-cache-ttl", type=float, default=_settings.DEFAULT_AUTH_CACHE_TTL_S, show_default=True,
      help="Seconds a token the Hub vouched for is trusted before it is checked again: "
           "a token revoked on the Hub stops working within this time.")
@_opt("--hub-ready-timeout", type=float, default=_settings.DEFAULT_HUB_READY_TIMEOUT_S, show_default=True,
      help="While the app starts, the Hub's readiness probe ({prefix}api) gets 503 for at most this many "
           "seconds after start, so users wait on the Hub's progress page. Keep it below the Spawner's "
           "http_timeout (30 s by default); 0 answers the probe at once.")
@_opt("--metrics-public/--no-metrics-public", default=False, show_default=True,
      help="Serve Prometheus metrics on /_trioproxy/metrics (the pod's port, outside the prefix) to anyone; "
           "by default only to users of this server (Authorization: token ...).")
@_opt("--public-controls/--no-public-controls", default=False, show_default=True,
      help="With --authtype none, show the owner's controls and the app's output on error pages to anyone "
           "who can reach the server (off: a public dashboard must not show its log to the world).")
@_opt("--pass-api-token/--no-pass-api-token", default=False, show_default=True,
      help="give the app JUPYTERHUB_API_TOKEN and JPY_API_TOKEN, for apps that call the Hub API themselves "
           "(off: the app never holds the server's Hub credential)")
@_opt("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
      help="text: one readable line per event, the app's lines tagged [stdout]/[stderr]. "
           "json: one JSON object per line (time, level, logger, message; stream for the app's lines).")
@_opt("--app-stderr-level", type=click.Choice(list(_settings.APP_STDERR_LEVELS)),
      default=_settings.DEFAULT_APP_STDERR_LEVEL, show_default=True,
      help="Log level of the app's stderr lines (its stdout lines are info): most frameworks (uvicorn, "
           "Streamlit, Tornado) write their normal output to stderr. error: jhsingle-native-proxy's choice.")
@_opt("--access-log/--no-access-log", default=False, show_default=True,
      help="One line per request on the logger trioproxy.access, when its answer ends (a websocket: when it "
           "closes, with its messages each way): client, user, request line (token= values hidden), status, "
           "bytes, seconds. The common log format; with --log-format json, JSON fields.")
@click.version_option(__version__, "--version", prog_name="trioproxy")
def _command(**options: Any) -> dict[str, Any]:
    """Run COMMAND (a web app that listens on {port}) and serve it under $JUPYTERHUB_SERVICE_PREFIX,
    proxying HTTP and websockets, as a JupyterHub single-user server.

    Example: trioproxy --authtype none -- python3 -m http.server {port}

    `trioproxy doctor [OPTIONS]` checks the JupyterHub environment instead (variables, API token and
    its scopes, TLS files, bind address, proxy variables) and says what to fix; exit code 1 on a problem.
    (To run an app called "doctor", write `trioproxy -- doctor`.)
    """
    return options


def parse(argv: Sequence[str], environ: Mapping[str, str], cwd: str | None = None) -> _settings.Settings:
    """Parse argv (without the program name) into Settings.

    Raises:
        click.exceptions.ClickException: on any usage error (exit code 2).
        click.exceptions.Exit: for --help and --version.
    """
    ctx = _command.make_context("trioproxy", list(argv))
    with ctx:
        options = _command.invoke(ctx)
    try:
        return _settings.build(options, environ, cwd=cwd)
    except _settings.SettingsError as exc:
        raise click.UsageError(str(exc), ctx=ctx) from None


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message; the app's
    lines are logged by ``trioproxy.app`` with their stream in ``stream``; an access line
    (``trioproxy.access``) has its fields too. ``user`` and ``server`` (the Hub's
    ``JUPYTERHUB_USER`` and ``JUPYTERHUB_SERVER_NAME``, from the settings) are in every
    line when set, so a log shared by several servers can be split."""

    def __init__(self, user: str = "", server: str = "") -> None:
        super().__init__()
        self.who = {k: v for k, v in (("user", user), ("server", server)) if v}

    def format(self, record: logging.LogRecord) -> str:
        import datetime  # noqa: PLC0415 (only with the JSON log format)
        import json  # noqa: PLC0415

        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ).replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            **self.who,
        }
        if record.name == "trioproxy.app" and isinstance(record.args, tuple) and len(record.args) == 2:
            entry["stream"], entry["message"] = record.args
        else:
            entry["message"] = record.getMessage()
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            # The request's own user under its own key: "user" is the server's owner.
            entry.update({("remote_user" if k == "user" else k): v for k, v in access.items()})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def text_format(user: str = "", server: str = "") -> str:
    """The text log's line format: ``[I 2026-12-02 12:00:01.234 trioproxy.app alice/dash] message``.

    ``user/server`` (or ``user`` for the default server) only under a Hub: in the
    Hub's own log (a local Spawner) every server's lines meet, and this is all it
    takes to tell them apart; a standalone run has no tag.
    """
    who = user + ("/" + server if server else "") if user else ""
    tag = (" " + who.replace("%", "%%")) if who else ""
    return "[%(levelname).1s %(asctime)s.%(msecs)03d %(name)s" + tag + "] %(message)s"


def _configure_logging(debug: bool, log_format: str = "text", user: str = "", server: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JSONFormatter(user, server))
    else:
        handler.setFormatter(logging.Formatter(text_format(user, server), "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    # Hypercorn's own access and error logs are noise next to ours.
    logging.getLogger("hypercorn.access").setLevel(logging.WARNING)
    # Library chatter (httpx logs every Hub API call) stays out even with --debug.
    for noisy in ("trio-websocket", "hpack", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def command_problem(child: _settings.ChildSettings, cwd: str | None = None) -> str:
    """Why the app's command cannot run, checked before anything starts; '' if it can (or
    cannot be known yet: with --repo or --conda-env the command may only exist after the
    bootstrap, and a first word with a substitution is known only once rendered; the
    supervisor then fails at once, exit 2, if it cannot be run)."""
    from .child.commands import not_startable  # noqa: PLC0415 (trio and the reaper: not for --help)

    program = child.command[0]
    if child.repo or child.conda_env or "{" in program:
        return ""
    path = child.env.get("PATH", os.defpath)
    if shutil.which(program, path=path) is not None:
        return ""
    if "/" in program:
        full = os.path.join(cwd or os.getcwd(), program)
        error = errno.ENOENT if not os.path.exists(full) else errno.EACCES
    else:
        error = errno.ENOENT
    return not_startable(program, OSError(error, os.strerror(error)), cwd)


DOCTOR_HELP = """\
Usage: trioproxy doctor [OPTIONS] [-- COMMAND...]

  Check the JupyterHub environment this server runs in, and say what to fix:
  the variables a Spawner sets (JUPYTERHUB_API_TOKEN, JUPYTERHUB_API_URL,
  JUPYTERHUB_SERVICE_PREFIX, ...), the API token and its scopes (asking the
  Hub), the TLS files of internal SSL, the address to listen on, proxy
  variables that would catch the Hub's address, trioproxy's dependencies,
  and websockets: on the server's own address, and through the Hub's route
  (--via) to the server's echo, with the server's token.
  Each check prints one line: ok, warn (works, probably not as intended),
  skip (cannot be checked here) or FAIL with how to fix it. Exit code 1 when
  a check fails, else 0.

  Run it where the server runs, with the Spawner's environment, e.g.
  kubectl exec POD -- trioproxy doctor --authtype oauth

Options:
  The options of trioproxy (trioproxy --help) with the values the server is
  started with: the checks follow them (--authtype, --port, --ip, --repo, ...).
  The app's COMMAND is optional and is not run.
  --via URL   The Hub's public address as users reach it (e.g.
              https://hub.example.org): websockets are checked through it,
              end to end, to the server's own echo. Default:
              $JUPYTERHUB_PUBLIC_URL (set when the Hub has a public_url).
  -h, --help  Show this message and exit.
"""


#: prctl option number (linux/prctl.h).
PR_SET_DUMPABLE = 4


def not_dumpable() -> bool:
    """Make this process not dumpable (Linux): no core dump, and a process of the same
    user (the app) can neither ptrace it nor read its /proc/<pid>/environ (the Hub API
    token), mem or fds. Its own /proc stays readable to it, and children are unaffected
    (execve makes them dumpable again). False, logged at debug, where that fails."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes  # noqa: PLC0415 (Linux only, once at start-up)

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        return True
    except (OSError, AttributeError) as exc:
        logger.debug("prctl(PR_SET_DUMPABLE, 0) failed: %s", exc)
        return False


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: exits with the code of :func:`trioproxy.run.run`.

    Once its logging is set up, trioproxy makes itself not dumpable
    (:func:`not_dumpable`) before it starts anything, and a child subreaper:
    here only, not on import nor in :func:`trioproxy.run.serving`, so library
    use and tests in-process are unchanged.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    doctor = bool(args) and args[0] == "doctor"
    if doctor and {"-h", "--help"} & set(args[1 : args.index("--") if "--" in args else None]):
        click.echo(DOCTOR_HELP, nl=False)
        sys.exit(0)
    if doctor:
        # `trioproxy doctor [OPTIONS]`: the same options and its own (--via); the app's command is optional.
        from .ops import doctor_ws as _doctor_ws  # noqa: PLC0415 (only for doctor)

        try:
            doctor_options, args = _doctor_ws.split_options(args[1:])
        except _doctor_ws.UsageProblem as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(click.UsageError.exit_code)
        args = args if "--" in args else [*args, "--", "true"]
    try:
        settings = parse(args, os.environ)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    if not doctor:
        problem = command_problem(settings.child)
        if problem:
            click.echo(f"Error: {problem}", err=True)
            sys.exit(click.UsageError.exit_code)
    _configure_logging(settings.debug, settings.log_format, settings.hub.user, settings.hub.server_name)
    not_dumpable()
    if doctor:
        from .ops import doctor as _doctor  # noqa: PLC0415 (only for --doctor)

        sys.exit(_doctor.run(settings, os.environ, options=doctor_options))

    # Process-wide, so here and not in the run (which also runs in-process, in tests): orphaned
    # descendants are re-parented to us, and reaped by the run's sweeps.
    # The server stack, loaded only once --help, bad options and doctor are out of the way.
    from .child import reaper as _reaper  # noqa: PLC0415
    from .run import run_main  # noqa: PLC0415

    subreaper = _reaper.become_subreaper()
    code = run_main(settings, reap_orphans=subreaper or os.getpid() == 1)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        # The log's disk is full (or its pipe gone): Python would turn the failed
        # flush at exit into exit code 120; the run itself went fine.
        os._exit(code)
    sys.exit(code)
