"""The git checkout behind ``--repo``: clone it, or update an existing checkout, before the app starts.

The steps are the reference's (nbgitpuller's), see jhsingle-spec §10.2:

* clone when the folder is missing (or, new here, empty):
  ``git clone [--depth N] --branch B --no-single-branch -- URL FOLDER/.trioproxy-clone``,
  then move the checkout up into FOLDER: a clone cut short (trioproxy
  stopped, the pod deleted) leaves only that hidden folder, which the next
  start removes and clones again, instead of a half checkout;
* update a checkout: ``git fetch``; rename local untracked files that upstream
  adds (``name__YYYYmmddHHMMSS.ext``); restore deleted files from
  ``origin/B``; commit local changes; ``git checkout B``;
  ``git merge -Xours origin/B``. A ``.git/index.lock`` older than ten
  minutes is removed, a newer one stops the update ("try again later").

What differs from the reference:

* nothing changes trioproxy's own directory: the caller runs the app with
  the checkout as its ``cwd``;
* credentials in the URL (``https://user:token@host``) are shown as
  ``https://***@host`` in every line logged or shown;
* each command is bounded in time and can never prompt (see ``_helper``);
* a folder that exists but is neither empty nor the top of a checkout of
  ``--repo`` is a clear error (the reference failed on whatever git said, or
  updated an unrelated repository from its own origin);
* only *untracked* files are renamed (the reference also renamed tracked
  files after a branch switch in a shallow clone, leaving stray copies), and
  a path upstream added then deleted again is not a collision; a deleted
  file that upstream deleted too is left deleted (the reference failed);
* commits are made as ``trioproxy``, never signed and without hooks; a failed
  merge is aborted, so the next try starts from a clean tree.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import re
import shutil
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping

import trio

from ..errors import BootstrapError
from ..settings import (
    GIT_CHECKOUT_BATCH,
    GIT_CLEANUP_S,
    GIT_LOCAL_TIMEOUT_S,
    GIT_LOCK_STALE_S,
    GIT_LOW_SPEED_BYTES_PER_S,
    GIT_LOW_SPEED_TIME_S,
    GIT_NETWORK_TIMEOUT_S,
    REDACT_SECRET_MIN_CHARS,
)
from .commands import Progress, Result, Runner
from .output import LogTail

logger = logging.getLogger("trioproxy.child")

#: Where a clone is made inside --repofolder, before being moved up into it.
CLONE_TMP = ".trioproxy-clone"
#: Who commits the local changes before a merge.
COMMITTER = ("-c", "user.name=trioproxy", "-c", "user.email=trioproxy@localhost", "-c", "commit.gpgsign=false")

_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s]*@")
#: A line of git's --progress: "Receiving objects:  45% (45/100), 1.20 MiB | 1.00 MiB/s".
_PROGRESS = re.compile(r"^(?:remote: )?([A-Za-z][A-Za-z ]*?):\s+(\d{1,3})% ")
#: Of one phase's progress lines, one per this many percent is kept in the log and the tail.
PROGRESS_STEP_PERCENT = 25


# --- pure rules -----------------------------------------------------------------


def redactor(url: str) -> Callable[[str], str]:
    """A function that hides the credentials of ``url`` (and of any URL) in a text."""
    netloc = urllib.parse.urlsplit(url).netloc if "://" in url else ""
    userinfo = netloc.rpartition("@")[0]
    secret = userinfo.partition(":")[2] if ":" in userinfo else userinfo
    secrets = {s for s in (secret, urllib.parse.unquote(secret)) if len(s) >= REDACT_SECRET_MIN_CHARS}

    def redact(text: str) -> str:
        text = _URL_USERINFO.sub(r"\1***@", text)
        for s in secrets:
            text = text.replace(s, "***")
        return text

    return redact


def git_env(base: Mapping[str, str]) -> dict[str, str]:
    """The environment for git: never prompt on a terminal, no editor, abandon stalled transfers.

    A credential program the deployment set up on purpose (``GIT_ASKPASS``, a
    credential helper) still works; without one, git fails at once where it
    would ask for a password.
    """
    env = dict(base)
    env.update(GIT_TERMINAL_PROMPT="0", GIT_MERGE_AUTOEDIT="no")
    for name, value in (("SSH_ASKPASS_REQUIRE", "never"), ("GCM_INTERACTIVE", "never"),
                        ("GIT_HTTP_LOW_SPEED_LIMIT", str(GIT_LOW_SPEED_BYTES_PER_S)),
                        ("GIT_HTTP_LOW_SPEED_TIME", str(GIT_LOW_SPEED_TIME_S))):
        env.setdefault(name, value)
    return env


def plan(folder: str) -> str:
    """"clone" (missing or empty folder, or one left by a clone cut short), "update" (a folder with
    something in it) or "file"."""
    if not os.path.lexists(folder):
        return "clone"
    if not os.path.isdir(folder):
        return "file"
    return "update" if set(os.listdir(folder)) - {CLONE_TMP} else "clone"


def progress_of(line: str) -> tuple[str, int] | None:
    """The phase and percentage of a git --progress line ("Receiving objects", 45), else None."""
    match = _PROGRESS.match(line)
    return (match.group(1), int(match.group(2))) if match else None


class GitProgress(Progress):
    """git's lines, its --progress thinned out: of each phase's updates (one per percent, each
    ended by a lone CR) the log and the tail keep the first, one per PROGRESS_STEP_PERCENT and the
    last; every new percentage goes to ``transfer`` ("Receiving objects 45%"), for the state."""

    def __init__(self, tail: LogTail, log: logging.Logger, tag: str, redact: Callable[[str], str],
                 transfer: Callable[[str], None]) -> None:
        super().__init__(tail, log, tag, redact)
        self._transfer = transfer
        self._phase, self._shown, self._seen = "", -1, -1

    def line(self, text: str, level: int = logging.INFO) -> None:
        found = progress_of(text)
        if found is None:
            super().line(text, level)
            return
        phase, percent = found
        if phase != self._phase:
            self._phase, self._shown, self._seen = phase, -1, -1
        if percent != self._seen:
            self._seen = percent
            self._transfer(f"{phase} {percent}%")
        if self._shown < 0 or percent >= 100 or percent >= self._shown + PROGRESS_STEP_PERCENT:
            self._shown = percent
            super().line(text, level)
        else:
            self.last = self.redact(text)


def clone_argv(url: str, branch: str, folder: str, depth: int) -> list[str]:
    argv = ["git", "clone", "--progress"]
    if depth > 0:
        argv += ["--depth", str(depth)]
    return [*argv, "--branch", branch, "--no-single-branch", "--", url, folder]


def same_repo(a: str, b: str) -> bool:
    """True if two remote URLs name the same repository (credentials, a trailing / or .git aside)."""
    return _identity(a) == _identity(b)


def _identity(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme and "://" in url:
        url = f"{parts.scheme.lower()}://{parts.netloc.rpartition('@')[2].lower()}{parts.path}"
    url = url.rstrip("/")
    return url[: -len(".git")] if url.endswith(".git") else url


def added_paths(name_status_z: bytes) -> list[str]:
    """Paths upstream added and did not delete again, from ``git log --no-renames --name-status --format= -z``
    (newest commit first)."""
    latest: dict[str, str] = {}
    added: set[str] = set()
    tokens = [t for t in name_status_z.split(b"\0") if t]
    i = 0
    while i + 1 < len(tokens):
        status, path = tokens[i].decode("ascii", "replace"), os.fsdecode(tokens[i + 1])
        latest.setdefault(path, status[:1])
        if status.startswith("A"):
            added.add(path)
        i += 3 if status[:1] in ("R", "C") else 2
    return sorted(p for p in added if latest[p] != "D")


def renamed(path: str, now: datetime.datetime) -> str:
    """``dir/name.ext`` -> ``dir/name__YYYYmmddHHMMSS.ext`` (the reference's names)."""
    head, tail = os.path.split(path)
    stem, ext = os.path.splitext(tail)
    return os.path.join(head, f"{stem}{now.strftime('__%Y%m%d%H%M%S')}{ext}")


def _zsplit(data: bytes) -> list[str]:
    return [os.fsdecode(t) for t in data.split(b"\0") if t]


def _batches(items: list[str], n: int) -> Iterable[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


# --- the checkout -----------------------------------------------------------------


class Checkout:
    """Clone or update ``folder`` (absolute) from ``url`` at ``branch``, with ``runner``'s commands."""

    def __init__(self, runner: Runner, url: str, branch: str, folder: str, *, depth: int, given: str) -> None:
        self.run, self.url, self.branch, self.folder, self.depth = runner, url, branch, folder, depth
        #: --repofolder as the user wrote it, for messages.
        self.given = given
        self.shown = runner.progress.redact(url)

    def not_a_checkout(self, detail: str) -> BootstrapError:
        where = self.given if self.given == self.folder else f"{self.given} ({self.folder})"
        return BootstrapError(
            f"--repofolder {where} {detail}: trioproxy clones --repo only into a missing or empty folder, "
            "and updates only a checkout of --repo; give --repofolder a new folder name (for example "
            "--repofolder app)"
        )

    async def clone(self) -> None:
        """Clone into CLONE_TMP inside the folder, then move the checkout up (see the module's docstring).

        Cancellation: what the clone wrote stays in CLONE_TMP, for the next start to remove.
        """
        created = not os.path.isdir(self.folder)  # noqa: ASYNC240 (one local stat, like the makedirs below)
        tmp = os.path.join(self.folder, CLONE_TMP)
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as exc:
            raise BootstrapError(f"could not create {self.folder}: {exc.strerror or exc}") from None
        await _remove(tmp)  # left by a clone cut short
        argv = clone_argv(self.url, self.branch, tmp, self.depth)
        try:
            await self._git(argv, f"cloning {self.shown}", cwd=self.folder, timeout_s=GIT_NETWORK_TIMEOUT_S, retry=True)
            try:
                for name in os.listdir(tmp):
                    os.rename(os.path.join(tmp, name), os.path.join(self.folder, name))
                os.rmdir(tmp)
            except OSError as exc:
                raise BootstrapError(f"could not move the clone into {self.folder}: {exc.strerror or exc}") from None
        except BootstrapError:
            await _remove(tmp)
            if created:
                with contextlib.suppress(OSError):
                    os.rmdir(self.folder)
            raise

    async def update(self) -> None:
        await self._check_is_checkout()
        git_dir = os.path.join(self.folder, os.fsdecode(await self._out(["rev-parse", "--git-dir"])).strip())
        await self._git(["git", "fetch", "--progress"], f"fetching {self.shown}", timeout_s=GIT_NETWORK_TIMEOUT_S,
                        retry=True)
        upstream = f"origin/{self.branch}"
        found = await self.run.run(["git", "rev-parse", "--verify", "--quiet", f"refs/remotes/{upstream}"],
                                   cwd=self.folder, timeout_s=GIT_LOCAL_TIMEOUT_S, capture=True, echo=False)
        if found.code != 0:
            raise BootstrapError(f"branch {self.branch!r} not found in {self.shown}", retry=True)  # not pushed yet?
        await self._rename_colliding(upstream)
        self._ensure_lock(git_dir)
        await self._restore_deleted(upstream)
        dirty = await self.run.run(["git", "diff-files", "--quiet"], cwd=self.folder,
                                   timeout_s=GIT_LOCAL_TIMEOUT_S, echo=False)
        if dirty.code not in (0, 1):
            raise BootstrapError(f"checking {self.folder} for local changes failed: git exited with code {dirty.code}")
        if dirty.code == 1:
            self._ensure_lock(git_dir)
            await self._git(["git", *COMMITTER, "commit", "-am", "Automatic commit by trioproxy", "--allow-empty",
                             "--no-verify"], "committing local changes")
        self._ensure_lock(git_dir)
        await self._git(["git", "checkout", self.branch], f"checking out {self.branch}")
        try:
            await self._git(["git", *COMMITTER, "merge", "--no-edit", "-Xours", upstream], f"merging {upstream}")
        except BootstrapError:
            await self.run.run(["git", "merge", "--abort"], cwd=self.folder, timeout_s=GIT_LOCAL_TIMEOUT_S, echo=False)
            raise

    async def _check_is_checkout(self) -> None:
        top = await self.run.run(["git", "rev-parse", "--show-toplevel"], cwd=self.folder,
                                 timeout_s=GIT_LOCAL_TIMEOUT_S, capture=True, echo=False)
        if top.code != 0:
            said = f" (git: {self.run.progress.last})" if self.run.progress.last else ""
            raise self.not_a_checkout(f"is not a git checkout and is not empty{said}")
        toplevel = os.fsdecode(top.stdout).strip()
        if not _same_path(toplevel, self.folder):
            raise self.not_a_checkout(f"is inside the git checkout {toplevel}, not the top of a checkout")
        origin = await self.run.run(["git", "config", "--get", "remote.origin.url"], cwd=self.folder,
                                    timeout_s=GIT_LOCAL_TIMEOUT_S, capture=True, echo=False)
        current = os.fsdecode(origin.stdout).strip()
        if origin.code != 0 or not current:
            raise self.not_a_checkout("is a git checkout without an 'origin' remote")
        if current != self.url:
            if not same_repo(current, self.url):
                raise self.not_a_checkout(f"is a checkout of {self.run.progress.redact(current)}, not of {self.shown}")
            # Same repository, other credentials (a rotated token): use the new ones.
            await self._git(["git", "remote", "set-url", "origin", self.url], "updating the remote's URL")

    async def _rename_colliding(self, upstream: str) -> None:
        log = await self._out(["log", "--no-renames", "--name-status", "--format=", "-z", f"..{upstream}"])
        tracked = set(_zsplit(await self._out(["ls-files", "-z"])))
        now = datetime.datetime.now()
        for path in added_paths(log):
            full = os.path.join(self.folder, path)
            if path in tracked or not _exists(full):
                continue
            target = renamed(full, now)
            try:
                os.rename(full, target)
            except OSError as exc:
                raise BootstrapError(f"could not rename {full}: {exc.strerror or exc}") from None
            self.run.progress.line(f"Renamed {full} to {target} to avoid conflict with upstream")

    async def _restore_deleted(self, upstream: str) -> None:
        deleted = _zsplit(await self._out(["ls-files", "--deleted", "-z"]))
        if not deleted:
            return
        upstream_files = set(_zsplit(await self._out(["ls-tree", "-r", "-z", "--name-only", upstream])))
        for batch in _batches([p for p in deleted if p in upstream_files], GIT_CHECKOUT_BATCH):
            await self._git(["git", "checkout", upstream, "--", *batch], "restoring deleted files")

    def _ensure_lock(self, git_dir: str) -> None:
        lock = os.path.join(git_dir, "index.lock")
        try:
            age = time.time() - os.path.getmtime(lock)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise BootstrapError(f"could not check {lock}: {exc.strerror or exc}") from None
        if age <= GIT_LOCK_STALE_S:
            raise BootstrapError(
                f"a recent {lock} was found (another git command is running?); trying again later", retry=True
            )
        self.run.progress.line(f"Stale {lock} found, attempting to remove")
        try:
            os.remove(lock)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise BootstrapError(f"could not remove the stale {lock}: {exc.strerror or exc}") from None
        self.run.progress.line(f"Stale {lock} removed")

    async def _git(
        self,
        argv: list[str],
        what: str,
        *,
        cwd: str | None = None,
        timeout_s: float = GIT_LOCAL_TIMEOUT_S,
        retry: bool = False,
    ) -> Result:
        result = await self.run.run(argv, cwd=cwd or self.folder, timeout_s=timeout_s)
        if result.code != 0:
            raise BootstrapError(_failed(what, result.code, self.run.progress.last), retry=retry)
        return result

    async def _out(self, args: list[str]) -> bytes:
        """Standard output of a git command that only reads (not shown as progress)."""
        result = await self.run.run(["git", *args], cwd=self.folder, timeout_s=GIT_LOCAL_TIMEOUT_S,
                                    capture=True, echo=False)
        if result.code != 0:
            raise BootstrapError(_failed(f"`git {args[0]}` in {self.folder}", result.code, self.run.progress.last))
        return result.stdout


def _failed(what: str, code: int, last: str) -> str:
    how = f"git exited with code {code}" if code >= 0 else f"git was killed by signal {-code}"
    return f"{what} failed: {how}" + (f": {last}" if last else "")


def _same_path(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` resolve to the same path (a few local stats)."""
    return os.path.realpath(a) == os.path.realpath(b)


def _exists(path: str) -> bool:
    """True when something, even a broken symlink, is at ``path`` (one local lstat)."""
    return os.path.lexists(path)


async def _remove(path: str) -> None:
    """Remove a failed clone's folder, off the event loop, bounded."""
    if _exists(path):
        with trio.move_on_after(GIT_CLEANUP_S):
            await trio.to_thread.run_sync(shutil.rmtree, path, True, abandon_on_cancel=True)
