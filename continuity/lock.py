"""Locks held on the remote itself, with atomic ref updates.

A lock is the ref ``PREFIX/locks/NAME`` on the remote (``refs/continuity/``
for the default line, ``refs/continuity/lines/LINE/`` for a named line).
Taking it is a push that creates the ref with ``--force-with-lease=REF:``
(it must not exist yet); releasing it deletes the ref only if it still holds
our token. The remote applies both under its own ref lock, so two Jenkins
agents on two machines serialize without any lock server.

The token is a commit of the empty tree whose message says who holds the lock
(host, process, start time, BUILD_URL). A lock is stale when its holder ran on
this host and that process is gone (a killed run): it is taken over at once,
again with a compare-and-swap on the token. A lock older than
``lock_stale_after`` held from another host is reported as probably stale,
with the command that breaks it: ``fab continuity.unlock NAME``.
"""

import os
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timezone

from invoke import task

from ._task import boundary, confirm
from .errors import ContinuityError, LockError, UsageError

__all__ = ["remote_lock", "list_locks", "break_lock", "locks", "unlock"]


@contextmanager
def remote_lock(git, settings, name, say=print, poll=0.5):
    """Hold lock ``name`` on the line's remote for the duration of the block."""
    ref = settings.refs_prefix + "locks/" + name
    token = _make_token(git, name)
    try:
        _acquire(git, settings, ref, token, say, poll)
    except BaseException:
        # Interrupted while the push that takes the lock was under way: the
        # remote may have applied it. Delete it if it is ours (a lease).
        git.call("push", "--quiet", "--force-with-lease={}:{}".format(ref, token), settings.remote, ":" + ref)
        raise
    try:
        yield token
    finally:
        _release(git, settings, ref, token, say)


def _release(git, settings, ref, token, say):
    """Delete our lock; a failure here must not hide the run's own error."""
    try:
        released = git.push(settings.remote, [("", ref)], leases=[(ref, token)]).ok
    except ContinuityError as exc:
        say("warning: could not release lock {}: {}; `fab continuity.unlock {}` breaks it".format(
            ref, exc, _short_name(ref, settings)))
        return
    if not released:
        say("warning: lock {} was no longer ours when we released it".format(ref))


def _acquire(git, settings, ref, token, say, poll):
    deadline = time.monotonic() + settings.lock_timeout
    announced = None
    while True:
        if git.push(settings.remote, [(token, ref)], leases=[(ref, "")]).ok:
            return
        holder, info = _holder(git, settings.remote, ref)
        if holder and _is_dead(info):
            say("lock {} was held by a run that is gone ({}); taking it over".format(ref, _who(info)))
            if git.push(settings.remote, [(token, ref)], leases=[(ref, holder)]).ok:
                return
            continue
        if time.monotonic() >= deadline:
            raise LockError(_timeout_message(ref, settings, info))
        if holder and holder != announced:
            say("waiting for lock {} held by {}".format(ref, _who(info)))
            if _age(info) > settings.lock_stale_after:
                say("that lock looks stale (held for {}); if its run is dead: fab continuity.unlock {}".format(
                    _duration(_age(info)), _short_name(ref, settings)))
            announced = holder
        time.sleep(poll)


def _timeout_message(ref, settings, info):
    name = _short_name(ref, settings)
    message = "could not take lock {} within {:.0f}s: held by {}.".format(ref, settings.lock_timeout, _who(info))
    if _age(info) > settings.lock_stale_after:
        return message + " It looks stale; if that run is dead, break it with `fab continuity.unlock {}`.".format(name)
    return message + " Wait for that run, or raise continuity.lock_timeout."


def _short_name(ref, settings):
    return ref[len(settings.refs_prefix + "locks/"):] + settings.line_option


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
    if not git.commit(sha):
        proc = git.call("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--refmap=", remote, ref)
        if proc.returncode:
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


def _age(info):
    try:
        started = datetime.strptime(info.get("started", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return 0.0
    return (datetime.now(timezone.utc) - started).total_seconds()


def _duration(seconds):
    minutes = int(seconds // 60)
    return "{}h{:02d}m".format(minutes // 60, minutes % 60) if minutes >= 60 else "{}m".format(minutes)


def _who(info):
    if not info:
        return "another run"
    who = "pid {} on {} since {}".format(info.get("pid", "?"), info.get("host", "?"), info.get("started", "?"))
    return who + (" ({})".format(info["build"]) if info.get("build") else "")


def list_locks(git, settings):
    """[(name, token, info)] of the line's locks on the remote."""
    prefix = settings.refs_prefix + "locks/"
    found = []
    for ref in sorted(git.ls_remote(settings.remote, prefix + "*")):
        holder, info = _holder(git, settings.remote, ref)
        if holder:
            found.append((ref[len(prefix):], holder, info))
    return found


def break_lock(git, settings, name, token):
    """Delete lock ``name`` if it still has ``token``; False when it changed."""
    ref = settings.refs_prefix + "locks/" + name
    return git.push(settings.remote, [("", ref)], leases=[(ref, token)]).ok


@task(help={"line": "The development line (see continuity.lines)."})
@boundary
def locks(c, line=None):
    """List the locks held on the remote: who holds each and for how long."""
    git, settings = _open(c, line)
    held = list_locks(git, settings)
    for name, _, info in held:
        print("{:<24} held by {} ({} old)".format(name, _who(info), _duration(_age(info))))
    print("break a dead run's lock with: fab continuity.unlock NAME" if held else
          "no locks are held on {}".format(settings.remote))


@task(
    help={
        "name": "The lock to break, as `fab continuity.locks` lists it: pipeline, deploy-staging, ...",
        "yes": "Do not ask for confirmation (for CI).",
        "line": "The development line (see continuity.lines).",
    }
)
@boundary
def unlock(c, name, yes=False, line=None):
    """Break a lock whose run is dead (after saying who held it)."""
    git, settings = _open(c, line)
    held = {lock_name: (token, info) for lock_name, token, info in list_locks(git, settings)}
    if name not in held:
        raise UsageError("no lock {!r} is held on {} (held: {})".format(name, settings.remote, ", ".join(sorted(held)) or "none"))
    token, info = held[name]
    print("lock {} is held by {} ({} old)".format(name, _who(info), _duration(_age(info))))
    confirm("Break it? Only do this if that run is dead.", yes)
    if not break_lock(git, settings, name, token):
        raise LockError("lock {} changed hands meanwhile; nothing was broken".format(name))
    print("lock {} broken".format(name))


def _open(c, line):
    from .config import settings as read_settings
    from .pipeline import reach

    settings = read_settings(c, line=line)
    return reach(settings), settings
