"""A stand-in for the `conda` executable: just what trioproxy calls, over a fake installation.

Usage (through a wrapper named `conda`, see tests/test_bootstrap.py):
    conda info --json
    conda run --no-capture-output -p PREFIX COMMAND...

Standard library only. The installation is the folder $FAKE_CONDA_ROOT:
the root prefix (the `base` environment), with environments in
$FAKE_CONDA_ROOT/envs/NAME; a folder counts as an environment when it has
a `conda-meta` folder. `info --json` prints root_prefix, conda_prefix,
envs_dirs and envs. `run` checks PREFIX like conda does, then execs COMMAND
with the variables an activation sets (CONDA_PREFIX, CONDA_DEFAULT_ENV,
CONDA_SHLVL, PATH with PREFIX/bin first) and one an activate.d script could
set (TRIOPROXY_TEST_ACTIVATED=NAME). Anything else: a message on stderr, exit 2.
"""

import json
import os
import sys


def envs(root):
    found = [root]
    envs_dir = os.path.join(root, "envs")
    if os.path.isdir(envs_dir):
        for name in sorted(os.listdir(envs_dir)):
            if os.path.isdir(os.path.join(envs_dir, name, "conda-meta")):
                found.append(os.path.join(envs_dir, name))
    return found


def main(argv):
    root = os.environ["FAKE_CONDA_ROOT"]
    if argv[:2] == ["info", "--json"]:
        print(json.dumps({"root_prefix": root, "conda_prefix": root, "envs_dirs": [os.path.join(root, "envs")],
                          "envs": envs(root)}))
        return 0
    if argv[:3] == ["run", "--no-capture-output", "-p"] and len(argv) > 4:
        prefix, command = argv[3], argv[4:]
        if not os.path.isdir(os.path.join(prefix, "conda-meta")):
            print(f"EnvironmentLocationNotFound: Not a conda environment: {prefix}", file=sys.stderr)
            return 1
        name = "base" if os.path.realpath(prefix) == os.path.realpath(root) else os.path.basename(prefix)
        os.environ.update(
            CONDA_PREFIX=prefix, CONDA_DEFAULT_ENV=name, CONDA_SHLVL="1", TRIOPROXY_TEST_ACTIVATED=name,
            PATH=os.path.join(prefix, "bin") + os.pathsep + os.environ.get("PATH", ""),
        )
        os.execvp(command[0], command)
    print(f"fake conda: unsupported: {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
