"""What runs before the app's first start: the git checkout (``--repo``), then the conda environment (``--conda-env``).

The result is a :class:`Launch`: the folder the app runs in (the checkout; the
process-wide ``os.chdir`` of the reference is gone) and its environment (the
activated one with ``--conda-env``). Progress goes to the log and to the app's
log tail, so the start-up and error pages can show it; the app's state says
what is going on ("cloning https://***@host/repo into ...").

A failure is explained (state DOWN with the reason; git's or conda's last
lines in the tail) and trioproxy stays up so the owner can read it. A failure
that may pass (a failed clone or fetch, a branch not pushed yet, a busy
index.lock, a command that ran too long) is tried again with a growing
delay; a configuration error (a folder that is not a checkout of --repo, a
failed merge, no git, no conda or environment) waits for the owner to fix it
and restart the app (the owner's controls) or the server. The reference failed for good on either.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import trio

from ..errors import BootstrapError
from ..settings import BOOTSTRAP_RETRY_FIRST_S, BOOTSTRAP_RETRY_MAX_S, ChildSettings
from . import conda as _conda
from . import gitrepo as _gitrepo
from .commands import Progress, Runner
from .output import LogTail

logger = logging.getLogger("trioproxy.child")



@dataclass(frozen=True)
class Launch:
    """How the app is started: in ``cwd`` (None: trioproxy's own folder) with ``env``."""

    cwd: str | None
    env: Mapping[str, str]


class Bootstrap:
    """Prepares the app's :class:`Launch`; run :meth:`run` once, in the supervisor's task."""

    def __init__(
        self,
        settings: ChildSettings,
        tail: LogTail,
        *,
        starting: Callable[[str], None],
        failed: Callable[[str, float | None], None],
    ) -> None:
        self.settings = settings
        self._starting, self._failed = starting, failed
        self.redact = _gitrepo.redactor(settings.repo)
        git_log, conda_log = logging.getLogger("trioproxy.git"), logging.getLogger("trioproxy.conda")
        self._git = Runner(_gitrepo.git_env(settings.env),
                           _gitrepo.GitProgress(tail, git_log, "git", self.redact, self._transfer))
        self._step = ""
        self._conda = Runner(settings.env, Progress(tail, conda_log, "conda", self.redact))
        self._poke = trio.Event()

    @property
    def needed(self) -> bool:
        return bool(self.settings.repo or self.settings.conda_env)

    @property
    def pid(self) -> int | None:
        """The git or conda command running now, if any."""
        return self._git.pid or self._conda.pid

    async def run(self) -> Launch:
        """The app's launch, once the checkout and the environment are ready.

        Never raises :class:`BootstrapError`: after a failure that cannot pass it
        waits until cancelled (trioproxy's shutdown), so the error stays visible.

        Cancellation: the running git or conda command is killed and reaped.
        """
        delay = BOOTSTRAP_RETRY_FIRST_S
        while True:
            try:
                return await self._once()
            except BootstrapError as exc:
                reason = self.redact(exc.reason)
                if not exc.retry:
                    self._failed(reason, None)
                    logger.error("the app cannot start: %s. Fix this, then restart the app (owner's "
                                 "controls) or the server.", reason)
                    await self._poke.wait()
                    delay = BOOTSTRAP_RETRY_FIRST_S
                else:
                    self._failed(reason, delay)
                    logger.error("the app cannot start yet: %s; trying again in %g s", reason, delay)
                    with trio.move_on_after(delay):
                        await self._poke.wait()
                    delay = min(delay * 2, BOOTSTRAP_RETRY_MAX_S)
                self._poke = trio.Event()

    def _transfer(self, progress: str) -> None:
        """git's progress of a clone or fetch ("Receiving objects 45%"): shown with the step."""
        if self._step:
            self._starting(f"{self._step}: {progress}")

    def try_again(self) -> None:
        """The owner asked for a restart: try the failed step again now."""
        self._poke.set()

    async def _once(self) -> Launch:
        s = self.settings
        self._step = ""
        cwd = await self._checkout() if s.repo else None
        env: Mapping[str, str] = s.env
        if s.conda_env:
            self._starting(f"activating the conda environment {s.conda_env}")
            logger.info("activating the conda environment %s", s.conda_env)
            prefix, env = await _conda.activated_env(self._conda, s.conda_exe, s.conda_env, s.env, cwd)
            logger.info("the app runs in the conda environment %s (%s)", s.conda_env, prefix)
        return Launch(cwd, env)

    async def _checkout(self) -> str:
        s = self.settings
        if s.repo.startswith("-") or not s.repobranch or s.repobranch.startswith("-"):
            raise BootstrapError("--repo and --repobranch must not be empty or start with '-'")
        if shutil.which("git", path=s.env.get("PATH", os.defpath)) is None:
            raise BootstrapError("git was not found on PATH: --repo needs git")
        folder = os.path.abspath(s.repofolder)  # noqa: ASYNC240 (string work and a getcwd, no disk wait)
        checkout = _gitrepo.Checkout(self._git, s.repo, s.repobranch, folder, depth=s.git_depth, given=s.repofolder)
        shown = self.redact(s.repo)
        what = _gitrepo.plan(folder)
        if what == "file":
            raise checkout.not_a_checkout("is a file")
        if what == "clone":
            reason = f"cloning {shown} ({s.repobranch}) into {folder}"
            self._step = reason
            self._starting(reason)
            logger.info("%s", reason)
            await checkout.clone()
        else:
            reason = f"updating {folder} from {shown} ({s.repobranch})"
            self._step = reason
            self._starting(reason)
            logger.info("%s", reason)
            await checkout.update()
        self._step = ""
        logger.info("the checkout is ready; the app runs in %s", folder)
        return folder
