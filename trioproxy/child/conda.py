"""The conda environment behind ``--conda-env``: found, activated once, its variables given to the app.

trioproxy asks conda where the environment is (``conda info --json``: a name
is looked up in ``envs_dirs``, then among the known ``envs``; ``base`` is the
root prefix; a NAME with a ``/`` is the path of an environment), has conda
activate it once (``conda run --no-capture-output -p PREFIX env -0``), and
then starts the app itself with exactly those variables, at every (re)start.

Why activate once instead of wrapping each start in ``conda run`` or in
``bash -c '. activate ENV && exec APP'``: the app stays trioproxy's direct
child and the leader of its own process group, so SIGTERM reaches it directly
(not a conda process in between that may or may not pass it on), its exit
status is its own, its output goes straight into trioproxy's pipes (no
capture or buffering by conda), no conda Python process stays resident beside
it, and a restart costs nothing. A broken activation shows once, at start, as
a clear error, not as an app that keeps crashing. Activation scripts
(``etc/conda/activate.d``) run once, then; what they export reaches the app.

What differs from the reference (jhsingle-spec §10.4): a missing conda or
environment is an error trioproxy explains (log and 502 page) instead of a
crash; the environment is never guessed (the reference assumed
``<root>/envs/NAME`` when it did not find it); conda's lookups are bounded
in time and run off the event loop; no ``CONDA_PREFIX=...`` line in the log.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping
from typing import Any

from ..errors import BootstrapError
from ..settings import CONDA_TIMEOUT_S
from .commands import Runner

logger = logging.getLogger("trioproxy.child")

#: Variables the activating shell sets for itself, not for the app: taken from the original environment.
SHELL_VARIABLES = ("_", "PWD", "OLDPWD", "SHLVL")


def is_path(name: str) -> bool:
    """A --conda-env that names a folder rather than an environment's name."""
    return "/" in name or name.startswith(("~", "."))


def resolve_exe(conda_exe: str, env: Mapping[str, str]) -> str:
    found = shutil.which(conda_exe, path=env.get("PATH", os.defpath))
    if found is None:
        where = "" if "/" in conda_exe else " on PATH"
        raise BootstrapError(f"{conda_exe} was not found{where}: --conda-env needs conda; set $CONDA_EXE to its path")
    return found


def check_prefix(prefix: str, name: str) -> str:
    if not os.path.isdir(os.path.join(prefix, "conda-meta")):
        what = "does not exist" if not os.path.exists(prefix) else "is not a conda environment (no conda-meta)"
        raise BootstrapError(f"conda environment {name}: {prefix} {what}")
    return prefix


def find_prefix(info: Mapping[str, Any], name: str) -> str:
    """The prefix of environment ``name`` from ``conda info --json`` (conda's own lookup order).

    Raises:
        BootstrapError: not found; the message lists the environments conda knows.
    """
    root = str(info.get("root_prefix") or info.get("conda_prefix") or "")
    envs = [str(e).rstrip("/") for e in info.get("envs") or []]
    if name in ("base", "root") and root:
        return root
    for envs_dir in info.get("envs_dirs") or []:
        candidate = os.path.join(str(envs_dir), name)
        if os.path.isdir(os.path.join(candidate, "conda-meta")):
            return candidate
    for env in envs:
        if os.path.basename(env) == name:
            return env
    known = sorted({os.path.basename(e) for e in envs if e != root} | ({"base"} if root else set()))
    raise BootstrapError(
        f"conda environment {name!r} not found; conda knows: {', '.join(known) or 'none'}"
    )


def parse_environ(data: bytes, original: Mapping[str, str]) -> dict[str, str]:
    """The variables printed by ``env -0``; the activating shell's own ones come from ``original``."""
    env: dict[str, str] = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        key = key.rsplit(b"\n", 1)[-1]  # anything printed before the first variable is not part of it
        if sep and key:
            env[os.fsdecode(key)] = os.fsdecode(value)
    for name in SHELL_VARIABLES:
        env.pop(name, None)
        if name in original:
            env[name] = original[name]
    return env


async def activated_env(
    runner: Runner, conda_exe: str, name: str, env: Mapping[str, str], cwd: str | None
) -> tuple[str, dict[str, str]]:
    """The prefix of environment ``name`` and the app's variables once it is activated.

    Raises:
        BootstrapError: conda missing, the environment not found, conda failing or too slow.
    """
    exe = resolve_exe(conda_exe, env)
    if is_path(name):
        # String work and a getcwd, no disk wait.
        prefix = check_prefix(os.path.abspath(os.path.expanduser(name)), name)  # noqa: ASYNC240
    else:
        result = await runner.run([exe, "info", "--json"], timeout_s=CONDA_TIMEOUT_S, capture=True)
        if result.code != 0:
            raise BootstrapError(_failed("`conda info --json`", result.code, runner.progress.last))
        try:
            info = json.loads(result.stdout)
        except ValueError:
            info = None
        if not isinstance(info, dict):
            raise BootstrapError("`conda info --json` did not print a JSON object")
        prefix = find_prefix(info, name)
    result = await runner.run(
        [exe, "run", "--no-capture-output", "-p", prefix, "env", "-0"],
        cwd=cwd, timeout_s=CONDA_TIMEOUT_S, capture=True,
    )
    if result.code != 0:
        raise BootstrapError(_failed(f"activating the conda environment {name}", result.code, runner.progress.last))
    activated = parse_environ(result.stdout, env)
    if "PATH" not in activated:
        raise BootstrapError(f"activating the conda environment {name} gave no environment variables")
    return prefix, activated


def _failed(what: str, code: int, last: str) -> str:
    how = f"conda exited with code {code}" if code >= 0 else f"conda was killed by signal {-code}"
    return f"{what} failed: {how}" + (f": {last}" if last else "")
