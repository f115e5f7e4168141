"""The shutdown request: why, with which exit code, and the drain deadline.

One instance, owned by ``_run``. Anything may :meth:`Shutdown.request` it (a
signal, the app failing for good); the first request wins, a second one
(a second SIGTERM/SIGINT) :meth:`hurry`-s: the drain deadline becomes now.
"""

from __future__ import annotations

import math

import trio


class Shutdown:
    def __init__(self) -> None:
        self.requested = trio.Event()
        self.reason = ""
        self.exit_code = 0
        #: trio time of the request, and the end of the drain budget.
        self.started_at = math.inf
        self.deadline = math.inf
        self._drain_scopes: list[trio.CancelScope] = []

    def request(self, reason: str, *, exit_code: int = 0, budget_s: float) -> bool:
        """Ask for shutdown; True if this call started it (False: it was under way)."""
        if self.requested.is_set():
            return False
        self.reason, self.exit_code = reason, exit_code
        self.started_at = trio.current_time()
        self.deadline = self.started_at + budget_s
        self.requested.set()
        return True

    def hurry(self) -> None:
        """Skip what is left of the drain."""
        self.deadline = min(self.deadline, trio.current_time())
        for scope in self._drain_scopes:
            scope.deadline = self.deadline

    def drain_scope(self, scope: trio.CancelScope) -> None:
        """Bound ``scope`` by the drain deadline, now and after a :meth:`hurry`.

        The one way to wait for the deadline: no polling, and a second signal
        ends every such wait at once.
        """
        scope.deadline = self.deadline
        self._drain_scopes.append(scope)

    def elapsed_ms(self) -> float:
        return (trio.current_time() - self.started_at) * 1000
