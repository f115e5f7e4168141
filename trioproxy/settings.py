"""The one frozen settings object, built once from parsed options and the environment.

This is the only module that reads environment variables: it takes ``environ``
as a parameter (tests pass a dict) and hands each part of trioproxy the slice
it needs.

It is also the one home of every tunable: each default, timeout, interval,
size, limit and count is a named constant here, with its unit and why it has
that value. A part of trioproxy imports the constant, or reads it from the
frozen :class:`Settings` where a user or a test may need another value. What
stays where it is used is what is not a tunable: protocol constants (close
codes, RFC limits, header and cookie names), the versions a compatibility
module was read against, and the pure rules' own bounds (``rules/`` sits below
this module and imports nothing from it). ``metrics.py``'s histogram buckets
stay with the metric too: they are part of what it exports.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import SettingsError as SettingsError  # raised here; defined with the others
from .errors import TemplateError
from .rules import routing as _routing
from .rules import template as _template

# --- defaults, each with its unit -------------------------------------------------

#: Listen port when neither --port nor JUPYTERHUB_SERVICE_URL gives one (the reference's).
DEFAULT_PORT = 8888
#: Websocket messages up to this size pass in both directions when
#: --websocket-max-message-size is 0 (the reference capped at 10 MiB one way).
DEFAULT_WS_MAX_MESSAGE_BYTES = 32 * 2**20
#: How long a request waits for an app that is still starting before it gets
#: the 503 "starting" page (which refreshes itself), in seconds.
STARTING_WAIT_S = 5.0
#: Total shutdown budget, in seconds: fits KubeSpawner's 1 s delete grace.
DEFAULT_SHUTDOWN_TIMEOUT_S = 0.8
#: Consecutive failed starts (crash or not ready) before trioproxy gives up and
#: exits non-zero, so the Spawner sees the server as stopped.
DEFAULT_MAX_RESTARTS = 5
#: Restart backoff: first wait and cap, in seconds; doubles after each failure.
RESTART_BACKOFF_FIRST_S = 0.5
RESTART_BACKOFF_MAX_S = 15.0
#: An app that stayed ready this long has its failure count reset, in seconds.
RESTART_RESET_AFTER_S = 60.0
#: Grace between SIGTERM and SIGKILL for a child being restarted (not at shutdown).
CHILD_STOP_GRACE_S = 3.0
#: How long the log pumps may keep reading once the app's group is gone (a pipe
#: held open by an escaped grandchild must not hold up a restart), in seconds.
PUMP_DRAIN_S = 0.5
#: Bound on each side's websocket closing handshake, in seconds.
WS_CLOSE_TIMEOUT_S = 1.0
#: An app's refusal of a websocket (an HTTP answer instead of the 101) is
#: relayed with at most this much of its body, in bytes (``_ws_proxy``).
WS_REFUSAL_BODY_MAX_BYTES = 64 * 2**10
#: A websocket client silent this long is pinged; one that then sends nothing
#: (not even the pong every browser answers with) for WS_PING_TIMEOUT_S more is
#: cut with 1011, in seconds. Together below KEEP_ALIVE_S, the bound on a stalled
#: client. 0 turns pings off. Not settable from outside: tests that need shorter ones
#: build the Settings themselves (``dataclasses.replace``) and run trioproxy in-process.
WS_PING_INTERVAL_S = 30.0
WS_PING_TIMEOUT_S = 20.0
#: Activity: first report this long after start; one report may take this long;
#: backoff after a failed report from first to cap; all in seconds.
ACTIVITY_FIRST_REPORT_S = 5.0
ACTIVITY_REPORT_TIMEOUT_S = 10.0
ACTIVITY_BACKOFF_FIRST_S = 1.0
ACTIVITY_BACKOFF_MAX_S = 60.0
#: Lines of the app's output kept for error pages.
LOG_TAIL_LINES = 40
#: Longest app log line passed on; the rest is cut with a mark.
LOG_LINE_MAX_BYTES = 8192
#: Levels the app's stderr lines may be logged at (--app-stderr-level). Info by default:
#: uvicorn, Streamlit, Tornado and most frameworks write their normal output there;
#: "error" is the reference's (jhsingle-native-proxy logged every stderr line as an error).
APP_STDERR_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
DEFAULT_APP_STDERR_LEVEL = "info"
#: Idle keep-alive connections to the app kept in the pool.
UPSTREAM_POOL_IDLE_MAX = 256
#: Hypercorn's limit on request headers, in bytes (its 16 KiB default is too
#: small for the cookie jars of a busy Hub domain).
MAX_HEADER_BYTES = 64 * 2**10
#: Idle client keep-alive, in seconds.
KEEP_ALIVE_S = 75.0
#: A client that sends nothing of its request body for this long (a stalled
#: upload), or lets one write of ours wait this long (it stopped reading), is
#: cut, in seconds. Below KEEP_ALIVE_S, which bounds a client stalled in a
#: request head (hypercorn's idle timer) as well as an idle one.
CLIENT_STALL_S = 60.0
#: A request refused for its framing (400) has what arrived of its body read
#: first, for up to this long and this many bytes (see ``_front._drain``).
REFUSE_DRAIN_S = 0.5
REFUSE_DRAIN_BYTES = 1 << 20
#: A request without a body gets the task that watches for the client leaving
#: only once its answer takes longer than this, in seconds (``_http_proxy``).
WATCH_AFTER_S = 0.05
#: The app's response head is held until its body's first bytes (or its end)
#: arrive, for at most this long, in seconds (``_http_proxy``): an app that
#: dies between its head and its body costs the client a 502 page, not a head
#: promising bytes that never come. A body slower than this gets its head alone.
HEAD_HOLD_S = 0.05
#: The Quart-Trio app (trioproxy's own pages) is built this long after the app
#: is first ready, if no request has built it yet, in seconds (``_run``).
WEB_WARM_DELAY_S = 1.0
#: Closing the Hub API client (its pooled connections) at exit, in seconds.
HUB_CLIENT_CLOSE_TIMEOUT_S = 2.0
#: Open-file descriptors kept for the connections already open: a new client
#: connection that would leave fewer than this many under RLIMIT_NOFILE is
#: refused with a 503. Enough for a restart of the app (pipes, pidfd) and ten
#: new connections to the app or the Hub at once.
FD_HEADROOM = 16
#: While connections are refused at the open-file limit, one warning per this
#: many seconds at most.
FD_WARN_EVERY_S = 60.0
#: With not one descriptor to spare (or no kernel memory), accepting pauses
#: this long between tries, in seconds.
ACCEPT_RETRY_S = 0.1
#: How long a token the Hub vouched for (or refused) is believed without
#: asking again, in seconds: a revoked token stops working within this time.
DEFAULT_AUTH_CACHE_TTL_S = 30.0
#: Token lookups remembered at most (least recently used go first).
AUTH_CACHE_ENTRIES = 4096
#: While the app starts, the Hub's readiness probe on {prefix}api gets 503 for
#: at most this long after trioproxy starts, in seconds: below the Spawner's
#: default http_timeout (30 s), so the Hub never gives up on a slow app; after
#: it the probe passes and users see trioproxy's own "starting" page.
DEFAULT_HUB_READY_TIMEOUT_S = 20.0
#: One call to the Hub API may take this long in all, and this long to connect, in seconds.
HUB_API_TIMEOUT_S = 10.0
HUB_API_CONNECT_TIMEOUT_S = 5.0
#: A login must come back from the Hub within this time, in seconds (the Hub's own limit).
OAUTH_STATE_MAX_AGE_S = 600
#: At most this many logins in progress per browser (one state cookie each).
OAUTH_STATE_COOKIES_MAX = 8
#: Length of a login's OAuth state, in characters of [A-Za-z0-9] (about 143 bits:
#: unguessable), and of its PKCE code verifier (RFC 7636 asks for 43 to 128).
OAUTH_STATE_CHARS = 24
PKCE_VERIFIER_CHARS = 64
#: Lifetime of the login cookie when the Hub does not say how long its token lives, in seconds.
LOGIN_COOKIE_MAX_AGE_S = 30 * 24 * 3600
#: Bytes of randomness in a cookie secret trioproxy makes itself; a configured one must have at least MIN.
COOKIE_SECRET_BYTES = 32
COOKIE_SECRET_MIN_BYTES = 16
#: Environment variable that may hold the cookie secret (hex, or any text).
COOKIE_SECRET_ENV = "TRIOPROXY_COOKIE_SECRET"
#: Longest token (header, ``?token=`` or sealed in the login cookie) that is looked up
#: at the Hub, in bytes; a longer one is a 403 without asking (the Hub's are 32-64).
MAX_TOKEN_BYTES = 4096
#: The server's Hub API token, in both spellings a Spawner sets: kept from the app
#: (and from git and conda; the process guard gets no environment) unless --pass-api-token.
API_TOKEN_ENVS = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN")
#: The process guard (``_guard``): once trioproxy is gone, however it died, the
#: app's process groups get SIGTERM, then SIGKILL this long later, in seconds.
GUARD_GRACE_S = 1.0
#: The guard checks this often whether the groups it signalled are gone, in seconds.
GUARD_POLL_S = 0.02
#: At a normal exit, trioproxy waits this long for the guard to end (it has
#: nothing left to do), then kills it, in seconds.
GUARD_CLOSE_TIMEOUT_S = 1.0

# --- internal tunables: not options, but named here with their unit and reason ---------

# the app's process and its supervision (child/)

#: First pause between readiness probes and its cap, in seconds. Probing starts
#: fast and slows by PROBE_INTERVAL_GROWTH per probe: an app ready 150 ms after
#: its start is seen within about 15 ms (doubling from 20 ms saw it only at
#: 300 ms), while a refused probe costs some 50 µs.
PROBE_INTERVAL_FIRST_S = 0.005
PROBE_INTERVAL_GROWTH = 1.1
PROBE_INTERVAL_MAX_S = 0.25
#: A command without {port} or {unix_socket} (and no --destport) whose process group
#: listens on several ports: each is probed for at most this long per round, in
#: seconds (a port that accepts but never answers HTTP, such as a ZeroMQ socket,
#: must not hold up the one that does).
FOUND_PORT_PROBE_S = 2.0
#: A starting app is restarted once it has shown no sign of progress for --ready-timeout
#: seconds (no output, no CPU time or I/O in its process group, no process or listening
#: socket come or gone): its group is sampled from /proc this often, in seconds.
PROGRESS_SAMPLE_S = 1.0
#: However busy it looks, an app that has not answered this long after its start is
#: restarted, in seconds (a spinning or endlessly polling app never stops "progressing").
READY_HARD_LIMIT_S = 900.0
#: While the app starts, "still waiting for the app on port N: 12 s" is logged (and the
#: pages say it) this often, the first time this long after the start, in seconds.
WAIT_REPORT_S = 5.0
#: Once it gives up on the app (--max-restarts), trioproxy keeps serving its pages, which
#: say so, this long before it exits non-zero (so the Spawner sees the server stopped), in
#: seconds: the user the Hub sent to the server reads why instead of a dead connection.
GIVE_UP_LINGER_S = 10.0
#: Exits of the app kept for the owner's control page (time, code, reason).
RESTART_HISTORY = 10
#: {unix_socket}: the private directory's name starts with this, and the socket in it
#: has this name. The directory is made in $XDG_RUNTIME_DIR if set, else $TMPDIR,
#: else /tmp (and in /tmp when the socket's path would be too long for AF_UNIX).
UNIX_SOCKET_DIR_PREFIX = "trioproxy-"
UNIX_SOCKET_NAME = "app.sock"
#: Poll interval while waiting for the app's process group to empty, in seconds
#: (short: a restart waits on it; a check is one kill(0) call).
APP_GROUP_POLL_S = 0.02
#: Bytes read from a pipe (the app's output, a bootstrap command's) per call:
#: a busy app's burst of output is one read, not dozens.
PIPE_READ_BYTES = 64 * 2**10
#: Bytes read from the app per receive call: one chunk to the client each. 256 KiB
#: rather than 64 KiB: a 100 MiB download costs about a quarter less CPU.
APP_RECEIVE_BYTES = 256 * 2**10
#: Bootstrap (git, conda) that failed with a reason worth retrying (the network,
#: a busy lock) is tried again after this delay, doubling up to the cap, in
#: seconds: slow enough not to hammer a remote, capped so a fixed outage is
#: noticed within five minutes.
BOOTSTRAP_RETRY_FIRST_S = 10.0
BOOTSTRAP_RETRY_MAX_S = 300.0
#: A bootstrap command's output line longer than this is cut with a mark, in
#: bytes (git and conda never write longer lines; a binary dump would).
COMMAND_LINE_MAX_BYTES = 4096
#: Most bytes of a bootstrap command's standard output kept when it is parsed
#: (``conda info --json`` of a large install is well under 1 MiB).
COMMAND_CAPTURE_MAX_BYTES = 16 * 2**20
#: After a bootstrap command exits, its pipes (held by an escaped descendant)
#: are read this long at most, in seconds.
COMMAND_DRAIN_S = 0.5
#: After SIGKILL, a bootstrap command is waited for this long at most to be
#: reaped, in seconds (a killed process is reaped in microseconds unless in D state).
COMMAND_REAP_S = 2.0
#: Bound on each conda command (``info --json``, the activation), in seconds:
#: a cold conda on a network file system takes tens of seconds.
CONDA_TIMEOUT_S = 120.0
#: Bound on a git command that talks to the remote (clone, fetch), in seconds:
#: a large repository on a slow link; git's own low-speed limit (below) ends a
#: stalled transfer long before.
GIT_NETWORK_TIMEOUT_S = 900.0
#: Bound on a local git command (checkout, merge, ...), in seconds.
GIT_LOCAL_TIMEOUT_S = 120.0
#: A .git/index.lock older than this is stale and removed, in seconds (nbgitpuller's rule).
GIT_LOCK_STALE_S = 600.0
#: A transfer slower than GIT_LOW_SPEED_BYTES_PER_S for GIT_LOW_SPEED_TIME_S
#: seconds is abandoned by git (GIT_HTTP_LOW_SPEED_LIMIT/_TIME): a dead remote
#: fails in a minute instead of at GIT_NETWORK_TIMEOUT_S.
GIT_LOW_SPEED_BYTES_PER_S = 1000
GIT_LOW_SPEED_TIME_S = 60
#: Bound on removing what a failed clone left, in seconds.
GIT_CLEANUP_S = 10.0
#: Paths per ``git checkout origin/B -- ...`` when restoring deleted files (well
#: under any argv limit).
GIT_CHECKOUT_BATCH = 100
#: Literal secrets (a token in the repo URL) shorter than this are not replaced
#: in git's output outside URLs, in characters: too likely to be ordinary words.
REDACT_SECRET_MIN_CHARS = 4
#: The process reaper also sweeps this often without a SIGCHLD (signals
#: coalesce), in seconds (``child/reaper.py``).
REAPER_SWEEP_INTERVAL_S = 2.0
#: Bound on the reaper's final kill-and-reap loop, in seconds.
REAPER_FINAL_SWEEP_S = 0.5

# the Hub

#: Jitter on the activity interval, as a fraction either way (the Hub's own
#: singleuser uses 10 %): a Hub's servers do not all report at once.
ACTIVITY_JITTER = 0.1

# pages and the front

#: While the app starts, the Hub's readiness probe is answered 503 with this
#: Retry-After, in seconds.
HUB_PROBE_RETRY_AFTER_S = 1
#: Lines of the app's output shown on a 502 page (the owner's only).
ERROR_PAGE_TAIL_LINES = 25
#: How long the owner's browser waits for a starting app before it gets the
#: live start-up page, in seconds (a fast app is shown at once, no page flash).
OWNER_PAGE_WAIT_S = 1.0
#: The "starting" page reloads itself (and its 503's Retry-After) this often, in seconds.
STARTING_REFRESH_S = 2
#: While the app is not ready, the pages' event stream sends the state this often (its
#: clocks: elapsed time, the next restart), in seconds.
VIEW_TICK_S = 1.0
#: An idle log stream of the owner's controls sends a comment this often, in
#: seconds (keeps proxies from cutting it; below nginx's 60 s read timeout).
CONTROLS_FOLLOW_KEEPALIVE_S = 15.0
#: The websocket echo (``{prefix}/_trioproxy/echo``, for ``trioproxy doctor``): the messages it
#: echoes before it closes 1000, the largest it echoes (a larger one: 1009), and how long it
#: stays open at most, in seconds.
ECHO_MAX_MESSAGES = 8
ECHO_MAX_MESSAGE_BYTES = 4096
ECHO_TIMEOUT_S = 10.0
#: ``trioproxy doctor``'s websocket checks: seconds for the handshake, and for the echo.
DOCTOR_WS_CONNECT_TIMEOUT_S = 10.0
DOCTOR_WS_ECHO_TIMEOUT_S = 5.0

# the server and the websocket proxy (server/, proxy/)

#: Listen backlog (``server/serve.py``): a burst of browser connections after
#: a Hub restart is not refused.
LISTEN_BACKLOG = 1024
#: A write to a client larger than this is sent in pieces of this size, each
#: with its own ``stall_s``: a big websocket message to a slow client is not a
#: stall. The size of the proxy's reads from the app (APP_RECEIVE_BYTES), so a
#: download goes out one write per read (64 KiB pieces cost 0.4 ms of CPU per MiB
#: more) (``server/tcp.py``).
CLIENT_SEND_PIECE_BYTES = APP_RECEIVE_BYTES
#: Bytes read from a client per receive call (``server/tcp.py``): 256 KiB
#: rather than hypercorn's 64 KiB halves the CPU per MiB uploaded. Read into one
#: buffer per run and copied out, so a small read (a request head) does not pay
#: for a 256 KiB allocation.
CLIENT_RECEIVE_BYTES = 256 * 2**10
#: The keepalive watcher looks at every websocket this many times per ping
#: interval (or timeout, if shorter) (``proxy/ws_keepalive.py``): a silent
#: client is cut within a quarter interval of its deadline.
WS_PING_CHECKS_PER_INTERVAL = 4
#: Bytes read from a websocket's client per call, after the 101 (``server/ws_stream.py``):
#: CLIENT_RECEIVE_BYTES' 256 KiB buffer costs some 20 µs per read here (glibc serves it with
#: mmap/munmap), 10 times a small message's whole recv; 64 KiB reads keep big messages cheap.
WS_CLIENT_RECEIVE_BYTES = 64 * 2**10
#: Bytes read from the app's websocket per call (``proxy/ws_relay.py``).
WS_APP_RECEIVE_BYTES = 64 * 2**10
#: Inside a frame from the app with at least this much payload still to come, the relay reads
#: that payload (up to WS_BULK_READ_BYTES) in one call into a pooled buffer (``proxy/ws_bulk.py``):
#: fewer, bigger reads and no new bytes object per read.
WS_BULK_MIN_BYTES = 64 * 2**10
#: The pooled buffers' size: the most a bulk read takes (a 1 MiB message in one or two reads).
WS_BULK_READ_BYTES = 2**20
#: Pooled buffers kept for the next bulk reads while none is in use (per process; a websocket
#: holds one only from a read until its bytes are written, never while it waits).
WS_BULK_BUFFERS_KEPT = 2
#: At most this many lent at once (each held by a write to a client until it is taken): beyond
#: that the usual WS_APP_RECEIVE_BYTES reads, so slow clients never make them hold more.
WS_BULK_BUFFERS_MAX = 8
#: Eager (non-yielding) stream calls in a row before one goes through trio and
#: yields (``proxy/eager_stream.py``; writes to a client, ``server/tcp.py``): other
#: tasks still run under a flood.
EAGER_RUN_CALLS = 16
#: ``receive_some()`` without a size reads up to this much (trio's default)
#: (``proxy/eager_stream.py``).
EAGER_RECEIVE_BYTES = 65536


class AuthType(enum.StrEnum):
    """``--authtype``: who may pass. Parsed once in :func:`build`; compare with the members.

    A ``StrEnum``, so it prints (and logs) as the word the command line took.
    """

    #: Only the server's owner (and whom the Hub lets in), logged in through the Hub.
    OAUTH = "oauth"
    #: Anyone who reaches the server: no login.
    NONE = "none"


class Reach(enum.StrEnum):
    """How trioproxy reaches the app, decided once from the command and --destport."""

    #: A TCP port given to the app as {port} (--destport, else a free one), or --destport
    #: alone (the app is configured to listen there by other means).
    PORT = "port"
    #: {unix_socket}: a socket in a private directory (0700) only trioproxy's user can enter.
    UNIX_SOCKET = "unix_socket"
    #: Neither: the port the app's process group listens on, found in /proc.
    FOUND_PORT = "found port"


@dataclass(frozen=True)
class ChildSettings:
    """Everything needed to start, probe and supervise the app."""

    command: tuple[str, ...]
    #: Template keys the command uses; {origin_host} delays the start.
    template_keys: frozenset[str]
    destport: int
    base_url: str
    presentation_path: str
    env: Mapping[str, str]
    ready_check_path: str
    #: --ready-timeout: a starting app that shows no sign of progress this long is restarted
    #: (``child/progress.py``); one that keeps progressing is waited for up to ready_hard_limit_s.
    ready_timeout_s: float
    #: One readiness probe may take this long (--aiohttp-request-timeout; None = no
    #: bound of its own, still bounded by the whole ready window).
    probe_timeout_s: float | None
    #: Probe (and proxy to) 127.0.0.1 only (--aiohttp-no-ssl-connector).
    ipv4_only: bool
    logs: bool
    max_restarts: int
    conda_env: str
    repo: str
    repobranch: str
    repofolder: str
    #: Clone depth for --repo ($NBGITPULLER_DEPTH, as the reference; 0 or less: full history).
    git_depth: int = 1
    #: The conda executable for --conda-env ($CONDA_EXE, else `conda` on PATH).
    conda_exe: str = "conda"
    backoff_first_s: float = RESTART_BACKOFF_FIRST_S
    backoff_max_s: float = RESTART_BACKOFF_MAX_S
    reset_after_s: float = RESTART_RESET_AFTER_S
    stop_grace_s: float = CHILD_STOP_GRACE_S
    pump_drain_s: float = PUMP_DRAIN_S
    log_tail_lines: int = LOG_TAIL_LINES
    log_line_max_bytes: int = LOG_LINE_MAX_BYTES
    #: Start the process guard, so the app never outlives trioproxy (off only in tests).
    guard: bool = True
    guard_grace_s: float = GUARD_GRACE_S
    guard_poll_s: float = GUARD_POLL_S
    guard_close_timeout_s: float = GUARD_CLOSE_TIMEOUT_S
    reach: Reach = Reach.PORT
    #: Where {unix_socket}'s private directory is made.
    socket_dir_parent: str = "/tmp"
    found_port_probe_s: float = FOUND_PORT_PROBE_S
    #: The level of the app's stderr lines (--app-stderr-level); its stdout is always info.
    stderr_level: int = APP_STDERR_LEVELS[DEFAULT_APP_STDERR_LEVEL]
    progress_sample_s: float = PROGRESS_SAMPLE_S
    ready_hard_limit_s: float = READY_HARD_LIMIT_S
    wait_report_s: float = WAIT_REPORT_S
    give_up_linger_s: float = GIVE_UP_LINGER_S

    @property
    def lazy(self) -> bool:
        """True when the command needs {origin_host}, known only from the first request."""
        return "origin_host" in self.template_keys

    def template_values(self, port: int | None, origin_host: str = "", unix_socket: str = "") -> dict[str, object]:
        """The values of the command's substitutions (``port``: None when the app has none)."""
        p = self.presentation_path
        return {
            **({"port": port} if port is not None else {}),
            "unix_socket": unix_socket,
            "base_url": self.base_url,
            "presentation_path": p,
            "presentation_dirname": os.path.dirname(p) if p else "",
            "presentation_basename": os.path.basename(p) if p else "",
            "origin_host": origin_host,
        }


@dataclass(frozen=True)
class ProxySettings:
    """How requests are forwarded."""

    #: JUPYTERHUB_SERVICE_PREFIX without its trailing slash ('' for '/').
    prefix: str
    request_timeout_s: float
    ws_max_message_bytes: int
    starting_wait_s: float = STARTING_WAIT_S
    pool_idle_max: int = UPSTREAM_POOL_IDLE_MAX
    ws_close_timeout_s: float = WS_CLOSE_TIMEOUT_S
    ws_ping_interval_s: float = WS_PING_INTERVAL_S
    ws_ping_timeout_s: float = WS_PING_TIMEOUT_S
    forward_user_info: bool = False
    query_user_info: bool = False
    progressive: bool = False
    #: Forward the prefix too (the app serves under it), instead of stripping it.
    keep_prefix: bool = False
    #: The app's Location, Content-Location and Refresh kept inside the prefix (--no-redirect-rewrite: as sent).
    rewrite_redirects: bool = True
    #: The app's Set-Cookie Path moved under the prefix, its Domain dropped (--no-cookie-rewrite: as sent).
    rewrite_cookies: bool = True
    #: The app's Set-Cookie Domain kept (--keep-cookie-domain).
    keep_cookie_domain: bool = False
    #: /_trioproxy/metrics readable without login (--metrics-public).
    metrics_public: bool = False
    #: An app's response head larger than this is a 502, in bytes.
    app_head_max_bytes: int = MAX_HEADER_BYTES
    #: A request body that stalls this long is cut (408 if no answer started), in seconds.
    client_stall_s: float = CLIENT_STALL_S
    #: $JUPYTERHUB_DEFAULT_URL (the Spawner's default_url) under the prefix, as sent in
    #: a Location: where a GET of the bare prefix goes ('' : to the app's own root).
    default_url: bytes = b""


@dataclass(frozen=True)
class ServerSettings:
    """The listening side."""

    #: Bind address; '' means every interface (IPv6 and IPv4).
    ip: str
    port: int
    ssl_keyfile: str
    ssl_certfile: str
    ssl_client_ca: str
    shutdown_timeout_s: float
    ws_max_message_bytes: int
    max_header_bytes: int = MAX_HEADER_BYTES
    keep_alive_s: float = KEEP_ALIVE_S
    #: One write to a client that waits this long cuts the connection, in seconds.
    send_stall_s: float = CLIENT_STALL_S
    fd_headroom: int = FD_HEADROOM
    fd_warn_every_s: float = FD_WARN_EVERY_S
    accept_retry_s: float = ACCEPT_RETRY_S

    @property
    def tls(self) -> bool:
        return bool(self.ssl_keyfile and self.ssl_certfile)


@dataclass(frozen=True)
class HubSettings:
    """What JupyterHub told us about itself (used by authentication and activity)."""

    authtype: AuthType
    api_url: str
    api_token: str = field(repr=False)
    client_id: str
    base_url: str
    host: str
    oauth_callback_url: str
    user: str
    group: str
    anyone: bool
    server_name: str
    activity_url: str
    access_scopes: tuple[str, ...]
    cookie_options: Mapping[str, Any]
    cookie_host_prefix: bool
    public_url: str
    #: Internal SSL: client certificate and the CA to trust for Hub API calls.
    ssl_keyfile: str = ""
    ssl_certfile: str = ""
    ssl_client_ca: str = ""
    #: ?token= accepted on plain HTTP requests too (JUPYTERHUB_ALLOW_TOKEN_IN_URL=1);
    #: it is always accepted on websocket handshakes.
    allow_token_in_url: bool = False
    #: Key material of the login and state cookies, and where it came from.
    cookie_secret: bytes = field(default=b"", repr=False)
    cookie_secret_source: str = "random"
    auth_cache_ttl_s: float = DEFAULT_AUTH_CACHE_TTL_S
    auth_cache_entries: int = AUTH_CACHE_ENTRIES
    ready_timeout_s: float = DEFAULT_HUB_READY_TIMEOUT_S
    api_timeout_s: float = HUB_API_TIMEOUT_S
    api_connect_timeout_s: float = HUB_API_CONNECT_TIMEOUT_S
    state_max_age_s: int = OAUTH_STATE_MAX_AGE_S
    state_cookies_max: int = OAUTH_STATE_COOKIES_MAX
    login_cookie_max_age_s: int = LOGIN_COOKIE_MAX_AGE_S
    #: With --authtype none: the owner's controls, and the app's output on error
    #: pages, for anyone who reaches the server (--public-controls); off: neither.
    public_controls: bool = False

    @property
    def hub_prefix(self) -> str:
        """``{base_url}hub/``: where the Hub's pages and API live."""
        return self.base_url + "hub/"

    @property
    def cookie_name(self) -> str:
        """The login cookie: named after the OAuth client, ``__Host-`` prefixed when the Hub says so."""
        return ("__Host-" if self.cookie_host_prefix else "") + self.client_id


@dataclass(frozen=True)
class ActivitySettings:
    interval_s: float
    force_alive: bool
    first_report_s: float = ACTIVITY_FIRST_REPORT_S
    report_timeout_s: float = ACTIVITY_REPORT_TIMEOUT_S
    backoff_first_s: float = ACTIVITY_BACKOFF_FIRST_S
    backoff_max_s: float = ACTIVITY_BACKOFF_MAX_S


@dataclass(frozen=True)
class Settings:
    """The whole configuration; build it with :func:`build`."""

    child: ChildSettings
    proxy: ProxySettings
    server: ServerSettings
    hub: HubSettings
    activity: ActivitySettings
    debug: bool
    log_format: str = "text"
    #: One line per request on ``trioproxy.access`` (--access-log), in the log's format.
    access_log: bool = False


# --- pure helpers ---------------------------------------------------------------


def service_url_bind(url: str) -> tuple[str | None, int | None]:
    """Host and port from ``JUPYTERHUB_SERVICE_URL``.

    The port is the URL's own, else 80 for http and 443 for https, else None.
    The host is '' for an empty host (all interfaces), the bare address for
    ``[v6]``, or None when the URL is empty.
    """
    if not url:
        return None, None
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise SettingsError("JUPYTERHUB_SERVICE_URL", f"bad port in {url!r}") from None
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme.lower())
    host = parts.hostname or ""
    if host in ("*",):
        host = ""
    return host, port


def normalise_prefix(raw: str) -> str:
    """``/user/dan/`` -> ``/user/dan``; ``/`` or '' -> ''. Always starts with '/' otherwise."""
    p = raw or "/"
    if not p.startswith("/"):
        p = "/" + p
    if p.endswith("/"):
        p = p[:-1]
    return p


def _json_env(environ: Mapping[str, str], name: str, kind: type) -> Any:
    raw = environ.get(name, "")
    if not raw:
        return kind()
    try:
        value = json.loads(raw)
    except ValueError:
        raise SettingsError(name, f"is not valid JSON: {raw[:80]!r}") from None
    if not isinstance(value, kind):
        raise SettingsError(name, f"must be a JSON {kind.__name__}")
    return value


def _int_env(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(name, f"must be an integer, not {raw!r}") from None


def _flag_env(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _reach(keys: frozenset[str], destport: int) -> Reach:
    """How the app is reached: {unix_socket}, {port} or --destport, else its port is found."""
    if "unix_socket" in keys:
        if "port" in keys:
            raise SettingsError("COMMAND", "use {port} or {unix_socket}, not both: the app is reached on one of them")
        if destport:
            raise SettingsError("--destport", "cannot be used with {unix_socket} (the app listens on a Unix socket)")
        return Reach.UNIX_SOCKET
    if "port" in keys or destport:
        return Reach.PORT
    return Reach.FOUND_PORT


def _socket_dir_parent(environ: Mapping[str, str]) -> str:
    """Where {unix_socket}'s private directory goes: $XDG_RUNTIME_DIR, else $TMPDIR, else /tmp."""
    for name in ("XDG_RUNTIME_DIR", "TMPDIR"):
        path = environ.get(name, "")
        if os.path.isabs(path) and os.path.isdir(path):
            return path
    return "/tmp"


def _default_url(environ: Mapping[str, str], prefix: str) -> bytes:
    try:
        return _routing.default_location(environ.get("JUPYTERHUB_DEFAULT_URL", ""), prefix)
    except ValueError as exc:
        raise SettingsError("JUPYTERHUB_DEFAULT_URL", str(exc)) from None


def _authtype(raw: str) -> AuthType:
    try:
        return AuthType(raw)
    except ValueError:
        choices = ", ".join(repr(a.value) for a in AuthType)
        raise SettingsError("--authtype", f"must be one of {choices}, not {raw!r}") from None


def cookie_secret(path: str, environ: Mapping[str, str]) -> tuple[bytes, str]:
    """The cookie secret and where it came from: ``--cookie-secret-file``, then
    ``$TRIOPROXY_COOKIE_SECRET``, else random (logins end when trioproxy restarts).

    Hex text is decoded; any other text is used as it is.
    """
    if path:
        try:
            with open(path, "rb") as f:
                raw = f.read().strip()
        except OSError as exc:
            raise SettingsError("--cookie-secret-file", f"cannot read {path!r}: {exc.strerror or exc}") from None
        source, where = raw, f"--cookie-secret-file {path}"
    elif environ.get(COOKIE_SECRET_ENV, "").strip():
        source, where = environ[COOKIE_SECRET_ENV].strip().encode(), COOKIE_SECRET_ENV
    else:
        return os.urandom(COOKIE_SECRET_BYTES), "random"
    try:
        secret = bytes.fromhex(source.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        secret = source
    if len(secret) < COOKIE_SECRET_MIN_BYTES:
        name = "--cookie-secret-file" if path else COOKIE_SECRET_ENV
        raise SettingsError(name, f"the cookie secret must have at least {COOKIE_SECRET_MIN_BYTES} bytes")
    return secret, where


def build(options: Mapping[str, Any], environ: Mapping[str, str], cwd: str | None = None) -> Settings:
    """Build :class:`Settings` from parsed CLI options and the environment.

    Raises:
        SettingsError: naming the option or variable at fault.
    """
    env = dict(environ)
    command = tuple(options["command"])
    if not command:
        raise SettingsError("COMMAND", "missing: give the app's command after the options")
    try:
        keys = _template.check(command)
    except TemplateError as exc:
        raise SettingsError("COMMAND", str(exc)) from None

    host_from_url, port_from_url = service_url_bind(env.get("JUPYTERHUB_SERVICE_URL", ""))
    port = options.get("port")
    if port is None:
        port = port_from_url if port_from_url is not None else DEFAULT_PORT
    if not 0 <= port <= 65535:
        raise SettingsError("--port", f"{port} is not a TCP port")
    ip = options.get("ip")
    if ip is None:
        ip = host_from_url or ""
    destport = options["destport"]
    if not 0 <= destport <= 65535:
        raise SettingsError("--destport", f"{destport} is not a TCP port")
    reach = _reach(keys, destport)

    ready_path = options["ready_check_path"]
    if not ready_path.startswith("/"):
        raise SettingsError("--ready-check-path", f"must start with '/': {ready_path!r}")
    if any(c in ready_path for c in " \r\n\t"):
        raise SettingsError("--ready-check-path", f"must be a URL path: {ready_path!r}")
    for name in ("ready_timeout", "request_timeout", "last_activity_interval"):
        if options[name] < 0:
            raise SettingsError("--" + name.replace("_", "-"), "must not be negative")
    if options["shutdown_timeout"] < 0:
        raise SettingsError("--shutdown-timeout", "must not be negative")
    if options["max_restarts"] < 0:
        raise SettingsError("--max-restarts", "must not be negative")
    if options["websocket_max_message_size"] < 0:
        raise SettingsError("--websocket-max-message-size", "must not be negative")

    presentation = options["presentation_path"] or ""
    if presentation and not os.path.isabs(presentation):
        # Against the start-up directory, not normalised: the reference's rule.
        presentation = os.path.join(cwd or os.getcwd(), presentation)

    prefix = normalise_prefix(env.get("JUPYTERHUB_SERVICE_PREFIX", "/"))
    hidden = {COOKIE_SECRET_ENV} if options.get("pass_api_token") else {COOKIE_SECRET_ENV, *API_TOKEN_ENVS}
    ws_max = options["websocket_max_message_size"] or DEFAULT_WS_MAX_MESSAGE_BYTES
    probe_timeout = options["aiohttp_request_timeout"]

    child = ChildSettings(
        command=command,
        template_keys=keys,
        destport=destport,
        base_url=prefix,
        presentation_path=presentation,
        # The app inherits the environment, minus the secret that seals login cookies and
        # (unless --pass-api-token) the server's Hub API token.
        env={k: v for k, v in env.items() if k not in hidden},
        ready_check_path=ready_path,
        ready_timeout_s=float(options["ready_timeout"]),
        probe_timeout_s=float(probe_timeout) if probe_timeout > 0 else None,
        ipv4_only=bool(options["aiohttp_no_ssl_connector"]),
        logs=bool(options["logs"]),
        max_restarts=options["max_restarts"],
        conda_env=options["conda_env"] or "",
        repo=options["repo"] or "",
        repobranch=options["repobranch"] or "master",
        repofolder=options["repofolder"] or ".",
        git_depth=_int_env(env, "NBGITPULLER_DEPTH", 1),
        conda_exe=env.get("CONDA_EXE", "") or "conda",
        reach=reach,
        socket_dir_parent=_socket_dir_parent(env),
        stderr_level=APP_STDERR_LEVELS[options.get("app_stderr_level") or DEFAULT_APP_STDERR_LEVEL],
    )
    proxy = ProxySettings(
        prefix=prefix,
        request_timeout_s=float(options["request_timeout"]) or float("inf"),
        ws_max_message_bytes=ws_max,
        forward_user_info=bool(options["forward_user_info"]),
        query_user_info=bool(options["query_user_info"]),
        progressive=bool(options["progressive"]),
        keep_prefix=bool(options.get("keep_prefix", False)),
        rewrite_redirects=bool(options.get("redirect_rewrite", True)),
        rewrite_cookies=bool(options.get("cookie_rewrite", True)),
        keep_cookie_domain=bool(options.get("keep_cookie_domain", False)),
        metrics_public=bool(options.get("metrics_public", False)),
        default_url=_default_url(env, prefix),
    )
    ssl_files = {
        name: env.get(name, "")
        for name in ("JUPYTERHUB_SSL_KEYFILE", "JUPYTERHUB_SSL_CERTFILE", "JUPYTERHUB_SSL_CLIENT_CA")
    }
    if bool(ssl_files["JUPYTERHUB_SSL_KEYFILE"]) != bool(ssl_files["JUPYTERHUB_SSL_CERTFILE"]):
        raise SettingsError(
            "JUPYTERHUB_SSL_KEYFILE/JUPYTERHUB_SSL_CERTFILE", "set both or neither"
        )
    server = ServerSettings(
        ip=ip,
        port=port,
        ssl_keyfile=ssl_files["JUPYTERHUB_SSL_KEYFILE"],
        ssl_certfile=ssl_files["JUPYTERHUB_SSL_CERTFILE"],
        ssl_client_ca=ssl_files["JUPYTERHUB_SSL_CLIENT_CA"],
        shutdown_timeout_s=float(options["shutdown_timeout"]),
        ws_max_message_bytes=ws_max,
    )
    scopes = _json_env(env, "JUPYTERHUB_OAUTH_ACCESS_SCOPES", list) or _json_env(
        env, "JUPYTERHUB_OAUTH_SCOPES", list
    )
    if not scopes and env.get("JUPYTERHUB_SERVICE_NAME"):
        scopes = [f"access:services!service={env['JUPYTERHUB_SERVICE_NAME']}"]
    for name in ("auth_cache_ttl", "hub_ready_timeout"):
        if options.get(name, 0) < 0:
            raise SettingsError("--" + name.replace("_", "-"), "must not be negative")
    secret, secret_source = cookie_secret(options.get("cookie_secret_file") or "", env)
    base_url = env.get("JUPYTERHUB_BASE_URL", "") or "/"
    if not base_url.endswith("/"):
        base_url += "/"
    api_url = env.get("JUPYTERHUB_API_URL", "") or f"http://127.0.0.1:8081{base_url}hub/api"
    hub = HubSettings(
        authtype=_authtype(options["authtype"]),
        api_url=api_url.rstrip("/"),
        api_token=env.get("JUPYTERHUB_API_TOKEN", "") or env.get("JPY_API_TOKEN", ""),
        client_id=env.get("JUPYTERHUB_CLIENT_ID", ""),
        base_url=base_url,
        host=env.get("JUPYTERHUB_HOST", ""),
        oauth_callback_url=env.get("JUPYTERHUB_OAUTH_CALLBACK_URL", "")
        or f"{prefix}/oauth_callback",
        user=env.get("JUPYTERHUB_USER", ""),
        group=env.get("JUPYTERHUB_GROUP", ""),
        anyone=env.get("JUPYTERHUB_ANYONE", "") == "1",
        server_name=env.get("JUPYTERHUB_SERVER_NAME", ""),
        activity_url=env.get("JUPYTERHUB_ACTIVITY_URL", ""),
        access_scopes=tuple(str(s) for s in scopes),
        cookie_options=_json_env(env, "JUPYTERHUB_COOKIE_OPTIONS", dict),
        cookie_host_prefix=env.get("JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED", "") in ("1", "true", "True"),
        public_url=env.get("JUPYTERHUB_PUBLIC_URL", ""),
        ssl_keyfile=ssl_files["JUPYTERHUB_SSL_KEYFILE"],
        ssl_certfile=ssl_files["JUPYTERHUB_SSL_CERTFILE"],
        ssl_client_ca=ssl_files["JUPYTERHUB_SSL_CLIENT_CA"],
        allow_token_in_url=_flag_env(env, "JUPYTERHUB_ALLOW_TOKEN_IN_URL"),
        cookie_secret=secret,
        cookie_secret_source=secret_source,
        auth_cache_ttl_s=float(options.get("auth_cache_ttl", DEFAULT_AUTH_CACHE_TTL_S)),
        ready_timeout_s=float(options.get("hub_ready_timeout", DEFAULT_HUB_READY_TIMEOUT_S)),
        public_controls=bool(options.get("public_controls", False)),
    )
    activity = ActivitySettings(
        interval_s=float(options["last_activity_interval"]),
        force_alive=bool(options["force_alive"]),
    )
    return Settings(
        child=child,
        proxy=proxy,
        server=server,
        hub=hub,
        activity=activity,
        debug=bool(options["debug"]),
        log_format=options.get("log_format") or "text",
        access_log=bool(options.get("access_log", False)),
    )
