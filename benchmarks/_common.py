"""What the benchmark scripts share: an isolated environment, `fab`, running commands.

Each benchmark builds its own throwaway project; this module keeps the
caller's git, Fabric and CI settings out of it, finds the `fab` to measure,
and runs commands with a clear error when one fails.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager

__all__ = ["GITCONFIG", "FABFILE", "FLOOR_NOOP", "BenchFailed", "bench_env", "find_fab", "run", "scratch"]

_LEAKY_PREFIXES = ("GIT_", "FABRIC_", "INVOKE_", "CONTINUITY_")
_LEAKY_NAMES = ("BUILD_NUMBER", "BUILD_URL", "BUILD_ID", "JOB_NAME", "JOB_URL", "WORKSPACE", "JENKINS_URL")

# What both benchmarks set up: an isolated git identity, a fabfile whose deploy does
# nothing, and the floor of a no-op (the raw git a hand-written Jenkins step needs).

GITCONFIG = """\
[user]
	name = Bench
	email = bench@example.invalid
[init]
	defaultBranch = master
[advice]
	detachedHead = false
[gc]
	auto = 0
[maintenance]
	auto = false
"""

FABFILE = '''\
from fabric import task
from invoke import Collection

import continuity


@task
def deploy(c, environment, revision=None):
    """Deploy nothing: the benchmarks measure continuity, not a deploy."""


ns = Collection(deploy, continuity)
'''

FLOOR_NOOP = """\
set -e
git fetch --quiet origin development master
git merge-base --is-ancestor refs/remotes/origin/development refs/remotes/origin/master
"""


class BenchFailed(Exception):
    """A command the benchmark relies on failed."""


def bench_env(tmp):
    """The caller's environment without git/Fabric/CI settings, git config isolated."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_PREFIXES) and k not in _LEAKY_NAMES}
    env.update(
        HOME=os.path.join(tmp, "home"),
        GIT_CONFIG_GLOBAL=os.path.join(tmp, "gitconfig"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
    )
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", os.defpath)])
    return env


def find_fab():
    beside = os.path.join(os.path.dirname(sys.executable), "fab")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("fab")
    if not found:
        raise BenchFailed("no `fab` next to {} or on PATH; run `make bench`".format(sys.executable))
    print("note: no fab next to {}; using {}".format(sys.executable, found))
    return found


def run(args, cwd, env, input=None):
    """Run ``args`` to completion; return stdout; raise `BenchFailed` on failure."""
    proc = subprocess.run(
        args, cwd=cwd, env=env, input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    if proc.returncode != 0:
        tail = proc.stdout.decode("utf-8", "replace").strip().splitlines()[-15:]
        raise BenchFailed("`{}` in {} exited with code {}:\n{}".format(
            " ".join(args), cwd, proc.returncode, "\n".join(tail)))
    return proc.stdout.decode("utf-8", "replace").strip()


@contextmanager
def scratch(prefix, keep=False):
    """A temporary directory for one benchmark run: removed afterwards, or kept and printed (``--keep``)."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    try:
        yield tmp
        if keep:
            print("\nkept {}".format(tmp))
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
