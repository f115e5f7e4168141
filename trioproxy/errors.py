"""The package's exceptions, under one base: :class:`TrioproxyError`.

The bottom layer: it imports nothing of trioproxy, so every layer (the pure
rules too) may raise these. Each is raised at one boundary, where a lower
failure (an ``OSError``, an httpx error, a bad option) is translated once into
what the caller above can act on; the layer that catches it decides what the
user sees (an exit status, an error page, a log line)::

    TrioproxyError
    ├── SettingsError      a bad option or environment value (also a ValueError)
    ├── TemplateError      a bad {key} template in the app's command (also a ValueError)
    ├── ServerError        the server could not start (address in use, bad TLS files)
    ├── AppFailed          the app failed to start or kept crashing: trioproxy exits non-zero
    ├── BootstrapError     the app cannot be started (git, conda): retry or not
    ├── UpstreamError      the app could not be reached or answered badly: a 502/504 page
    └── HubError           the Hub API
        ├── HubUnavailable     the Hub could not answer (down, slow, 5xx)
        ├── HubRefused         the Hub answered with an unexpected 4xx
        └── HubSetupError      the client for the Hub cannot be made (unreadable TLS files)
"""

from __future__ import annotations

__all__ = [
    "AppFailed",
    "BootstrapError",
    "HubError",
    "HubRefused",
    "HubSetupError",
    "HubUnavailable",
    "ServerError",
    "SettingsError",
    "TemplateError",
    "TrioproxyError",
    "UpstreamError",
]


class TrioproxyError(Exception):
    """Base of every exception trioproxy raises on purpose."""


class SettingsError(TrioproxyError, ValueError):
    """A bad option or environment value. ``source`` names the flag or variable."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message


class TemplateError(TrioproxyError, ValueError):
    """A command word is not a valid template; the message names the word."""


class ServerError(TrioproxyError):
    """The server could not start (address in use, bad TLS files); says which."""


class AppFailed(TrioproxyError):
    """The app failed to start or kept crashing; trioproxy should exit non-zero.

    ``exit_code``: 1 (the app failed), or 2 when its command cannot be run at all
    (not found, not executable): a usage error, as for a bad option.
    """

    def __init__(self, reason: str, *, exit_code: int = 1) -> None:
        super().__init__(reason)
        self.exit_code = exit_code


class BootstrapError(TrioproxyError):
    """The app cannot be started: ``reason`` says why, already redacted, in one line.

    ``retry``: worth trying again later (a network failure, a busy lock), as
    opposed to a configuration error that only the owner can fix.
    """

    def __init__(self, reason: str, *, retry: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


class UpstreamError(TrioproxyError):
    """The app could not be reached or answered badly. ``status`` is the page to show."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class HubError(TrioproxyError):
    """A call to the Hub API failed; the message says why, without secrets."""


class HubUnavailable(HubError):
    """The Hub API could not answer (down, slow, 5xx); the message says which, without secrets."""


class HubRefused(HubError):
    """The Hub answered a request with a 4xx that is not "unknown token" (the message has its reason)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HubSetupError(HubError):
    """The client for the Hub cannot be made (unreadable TLS files)."""
