"""Locks held on the remote itself, with atomic ref updates.

A lock is the ref ``refs/continuity/locks/NAME`` on the remote. Taking it is a
push that creates the ref with ``--force-with-lease=REF:`` (it must not exist
yet); releasing it deletes the ref only if it still holds our token. The
remote applies both under its own ref lock, so two Jenkins agents on two
machines serialize without any lock server.

The token is a commit of the empty tree whose message says who holds the lock
(host, process, start time, BUILD_URL). A lock whose holder ran on this host
and whose process is gone (a killed run) is stale and is taken over, again
with a compare-and-swap on the token.
"""

import os
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timezone

from .errors import LockError

__all__ = ["remote_lock", "LOCK_PREFIX"]

LOCK_PREFIX = "refs/continuity/locks/"
_LOCAL_COPY = "refs/continuity-remote/locks/"


@contextmanager
def remote_lock(git, remote, name, timeout, say=print, poll=0.5):
    """Hold lock ``name`` on ``remote`` for the duration of the block."""
    ref = LOCK_PREFIX + name
    token = _make_token(git, name)
    _acquire(git, remote, ref, token, timeout, say, poll)
    try:
        yield token
    finally:
        result = git.push(remote, [("", ref)], leases=[(ref, token)])
        if not result.ok:
            say("warning: lock {} was no longer ours when we released it".format(name))


def _acquire(git, remote, ref, token, timeout, say, poll):
    deadline = time.monotonic() + timeout
    announced = None
    while True:
        if git.push(remote, [(token, ref)], leases=[(ref, "")]).ok:
            return
        holder, info = _holder(git, remote, ref)
        if holder and _is_dead(info):
            say("lock {} was held by a run that is gone ({}); taking it over".format(ref, _who(info)))
            if git.push(remote, [(token, ref)], leases=[(ref, holder)]).ok:
                return
            continue
        if time.monotonic() >= deadline:
            raise LockError(
                "could not take lock {} within {:.0f}s: held by {}. Wait for that run, or raise "
                "continuity.lock_timeout.".format(ref, timeout, _who(info))
            )
        if holder != announced:
            say("waiting for lock {} held by {}".format(ref, _who(info)))
            announced = holder
        time.sleep(poll)


def _make_token(git, name):
    info = {
        "lock": name,
        "host": socket.gethostname(),
        "pid": str(os.getpid()),
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "build": os.environ.get("BUILD_URL", ""),
    }
    message = "continuity lock\n\n" + "".join("{}: {}\n".format(k, v) for k, v in info.items())
    tree = git.run("hash-object", "-t", "tree", "-w", "--stdin", input="")
    return git.run("commit-tree", tree, "-m", message, env=git.identity_env())


def _holder(git, remote, ref):
    """(token sha, info dict) of the current holder, or (None, {})."""
    sha = git.ls_remote(remote, ref).get(ref)
    if not sha:
        return None, {}
    local = _LOCAL_COPY + ref[len(LOCK_PREFIX):]
    if git.call("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", remote, "+{}:{}".format(ref, local)).returncode:
        return sha, {}
    body = git.run("log", "-1", "--format=%B", sha, check=False)
    info = dict(line.split(": ", 1) for line in body.splitlines() if ": " in line)
    return sha, info


def _is_dead(info):
    if info.get("host") != socket.gethostname() or not info.get("pid", "").isdigit():
        return False
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _who(info):
    if not info:
        return "another run"
    who = "pid {} on {} since {}".format(info.get("pid", "?"), info.get("host", "?"), info.get("started", "?"))
    return who + (" ({})".format(info["build"]) if info.get("build") else "")
