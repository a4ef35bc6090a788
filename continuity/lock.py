"""Locks held on the remote itself, with atomic ref updates, kept by a lease.

A lock is the ref ``PREFIX/locks/NAME`` on the remote (``refs/continuity/``
for the default line, ``refs/continuity/lines/LINE/`` for a named line).
Taking it is a push that creates the ref with ``--force-with-lease=REF:``
(it must not exist yet); releasing it deletes the ref only if it still holds
our token. The remote applies both under its own ref lock, so two Jenkins
agents on two machines serialize without any lock server.

The token is a commit of the empty tree whose message says who holds the lock
(host, process, start time, BUILD_URL) and how to tell whether that holder is
alive:

* **The lease.** While it holds the lock, the holder renews it: every third
  of ``lock_lease`` it pushes a fresh token, a compare-and-swap on its
  previous one. A waiter takes the lock over when the token has not changed
  for longer than the lease, as measured by the waiter's own monotonic clock:
  no two machines' clocks are ever compared. A holder whose renewal is
  refused has lost the lock; `HeldLock.check` makes it stop before its next
  irreversible step (pushing master, deploying, recording a deploy).
* **The fast path.** A holder that ran in our pid namespace, on this boot of
  this machine (the namespace's inode and the kernel's boot id are in the
  token), and whose process no longer exists is dead: taken over at once.
  Host name and pid alone are not enough: two containers may share a host
  name and not their process ids.

A lock held for longer than ``lock_stale_after`` is reported as probably
stale, with the command that breaks it: ``fab continuity.unlock NAME``.

Riding other pushes: taking a lock, and releasing it, can be part of a push
that changes other refs too (`push_coordinated`): a deploy takes its
environment's lock in the push that appends its ledger intent, and releases
it in the push that records the outcome, so a deploy costs no push of its
own for the lock. The waiting loop (`remote_lock`) is for when the lock is
held (contention); a lock taken by a combined push is held the same way
(`HeldLock.held`): renewed, checked, let go. ``HeldLock.rides`` are ref
updates that go with the lock's release push when nothing else carried
them.
"""

from __future__ import annotations

import math
import os
import shlex
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Callable

from ._text import one_line
from .boundary import left_behind
from .config import Settings
from .errors import ContinuityError, GitError, LockError, UsageError
from .git import Git, PendingPush, PushResult, RefUpdate
from .remote import Snapshot

Say = Callable[[str], None]
Info = dict[str, str]  # what a token says about its holder

__all__ = ["remote_lock", "HeldLock", "push_coordinated", "free_or_gone", "holder_of", "list_locks", "break_lock",
           "who", "describe_age", "assessment", "stale"]

#: How long an interrupted lock push may take to finish: the remote may be
#: applying it, and only once git has finished do we know what to clean up.
_GRACE = 30.0

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@contextmanager
def remote_lock(git: Git, settings: Settings, name: str, say: Say = print, poll: float = 0.5) -> Iterator[HeldLock]:
    """Hold lock ``name`` on the line's remote for the duration of the block.

    Yields the `HeldLock`: call its ``check()`` before an irreversible step.
    One ``finally`` covers it all, so an interruption at any point (even
    while the push that takes the lock is under way) leaves no lock of ours.
    """
    lock = HeldLock(git, settings, name, say)
    try:
        _acquire(lock, poll)
        lock.start_renewing()
        yield lock
    finally:
        lock.let_go()


class HeldLock:
    """Our side of a lock: its tokens, their renewal and what became of them."""

    def __init__(self, git: Git, settings: Settings, name: str, say: Say = print) -> None:
        self.git, self.settings, self.name, self.say = git, settings, name, say
        self.ref = settings.refs_prefix + "locks/" + name
        self.lease = settings.lock_lease
        self.lost: str | None = None  # why the lock is no longer ours, once we know
        self.taken = False  # we had it
        self.waited = False  # it was held when we first tried to take it
        self.release_in_doubt = False  # a push that releases it was interrupted: it may be gone already
        self.maybe_ours = False  # the remote may hold a token of ours (taken, or a push in doubt)
        self.cut_short = False  # a push that takes the lock was stopped before git could tell us
        self._fields = _fields(name, self.lease)
        self._tree = git.empty_tree()
        self._renewals = 0
        self.token = self._new_token()
        self.tokens = {self.token}  # every token we pushed or tried to push
        self._confirmed = time.monotonic()  # when the push of ``token`` started (set again once it is taken)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Ref updates for the push that releases the lock, when the run ends before another push carried
        #: them (a stage adds its results here; a stale one is dropped and the lock released alone).
        self.rides: list[RefUpdate] = []

    # -- taking it -------------------------------------------------------

    def take(self, holder: str) -> bool:
        """Push our token over ``holder`` ("" = a free lock); True when it is ours."""
        return push_coordinated(self.git, self.settings, [], take=[(self, holder)]).ok

    # -- holding it ------------------------------------------------------

    @contextmanager
    def held(self) -> Iterator[HeldLock]:
        """Hold a lock that a combined push took (`push_coordinated`): renew it, and let it go at the end."""
        try:
            if self.taken and self._thread is None:
                self.start_renewing()
            yield self
        finally:
            self.let_go()

    def start_renewing(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="continuity-lock-" + self.name, daemon=True)
        self._thread.start()

    def check(self, before: str) -> None:
        """Raise `LockError` unless the lock is surely still ours; ``before`` names the next step.

        A waiter may take the lock over one lease after our last renewal
        started: a renewal more than two thirds of a lease old leaves too
        little time for the step to come.
        """
        if self.lost:
            raise LockError("lost lock {}: {}; stopped before {}".format(self.ref, self.lost, before))
        silent = time.monotonic() - self._confirmed
        if silent > self.lease * 2 / 3:
            raise LockError(
                "could not renew lock {} on {} for {:.0f}s (continuity.lock_lease is {:g}s), so another run may "
                "take it over; stopped before {}. Check that {} is reachable.".format(
                    self.ref, self.settings.remote, silent, self.lease, before, self.settings.remote))

    def _renew_loop(self) -> None:
        interval = self.lease / 3
        due = self._confirmed + interval
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            due = time.monotonic() + interval
            if not self._renew():
                return

    def _renew(self) -> bool:
        """Push a fresh token over our last one; False once the lock is lost."""
        self._renewals += 1
        started = time.monotonic()
        try:
            token = self._new_token()
            self.tokens.add(token)
            timeout = min(self.lease, self.git.timeout)
            renewed = self._start_push([(token, self.ref)], self.token, timeout=timeout).result().ok
            current = None if renewed else self._current()
        except ContinuityError:
            return True  # unreachable for now: try again; check() notices when renewals are overdue
        if renewed:
            self.token, self._confirmed = token, started
            return True
        if current in self.tokens:  # a renewal of ours, cut short by a timeout, did land
            self.token = current
            return True
        self.lost = "another run took it over" if current else "it was deleted on {} (as `fab continuity.unlock` does)".format(
            self.settings.remote)
        self.say("warning: lost lock {}: {}; this run stops before its next push or deploy".format(self.ref, self.lost))
        return False

    def _stop_renewing(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()  # never race the release: a renewal push ends within a lease
            self._thread = None

    # -- letting it go ---------------------------------------------------

    def let_go(self) -> None:
        """Stop renewing and delete our lock; make sure no token of ours stays, and say what does.

        A failure here must not hide the run's own error: it is a warning,
        and the task boundary's last line says what was left behind.
        """
        if not self.maybe_ours:
            return
        try:
            self._let_go()
        except BaseException:  # interrupted while letting go (SIGTERM at the end of a run): finish, then stop
            self._let_go()
            raise

    def _let_go(self) -> None:
        self._stop_renewing()
        problem = None
        rides, self.rides = self.rides, []
        try:
            if rides and self._delete(self.token, rides):
                self.maybe_ours = False
                return
            if self._delete(self.token):  # (again without rides: one of them was stale)
                self.maybe_ours = False
                return
        except ContinuityError as exc:
            problem = exc
        if self._verify(problem):
            return
        self.maybe_ours = False
        if self.cut_short:
            self._leave("lock {} may yet appear on {}: the push that takes it was cut short and the remote may "
                        "still apply it".format(self.ref, self.settings.remote))
        elif self.taken and problem is None and not self.lost and not self.release_in_doubt:
            self.say("warning: lock {} was no longer ours when we released it".format(self.ref))

    def _verify(self, problem: ContinuityError | None) -> bool:
        """Delete any token of ours still on the remote; say so when one stays. True when one does (or may)."""
        try:
            current = self._current()
            for _ in range(2):
                if current not in self.tokens:
                    return False
                try:
                    self._delete(current)  # a late push of ours (a renewal) landed after all
                except ContinuityError as exc:
                    problem = exc
                current = self._current()
        except ContinuityError as exc:
            self._leave("lock {} on {} may still be held by this run (could not check: {})".format(
                self.ref, self.settings.remote, exc))
            return True
        if current not in self.tokens:
            return False
        self._leave("lock {} is still held on {} by this run{}".format(
            self.ref, self.settings.remote, " ({})".format(problem) if problem else ""))
        return True

    def _delete(self, token: str, rides: list[RefUpdate] = []) -> bool:  # noqa: B006 - never mutated
        """Delete the lock if it holds ``token`` (with ``rides``, atomically); True when it did."""
        updates = [RefUpdate(self.ref, "", token)] + rides
        pending = self.git.start_transaction(self.settings.remote, updates)
        try:
            return pending.result().ok
        except BaseException:
            pending.settle(_GRACE)
            raise

    def _leave(self, what: str) -> None:
        hint = one_line("{}; the next run that needs it takes it over once it goes unrenewed for {:g}s, or break it "
                        "now with `fab continuity.unlock {}`".format(what, self.lease, _short_name(self.ref, self.settings)))
        self.say("warning: " + hint)
        left_behind(hint)

    # -- plumbing --------------------------------------------------------

    def _start_push(self, updates: list[tuple[str, str]], expected: str,
                    timeout: float | None = None) -> PendingPush:
        return self.git.start_push(self.settings.remote, updates, leases=[(self.ref, expected)], timeout=timeout)

    def _current(self) -> str | None:
        """The lock's token on the remote now (a connection: for the contention and cleanup paths only)."""
        return self.git.ls_remote(self.settings.remote, self.ref).get(self.ref)

    def _new_token(self) -> str:
        fields = dict(self._fields, renewed=_now(), renewal=str(self._renewals))
        message = "continuity lock\n\n" + "".join("{}: {}\n".format(k, v) for k, v in fields.items())
        return self.git.commit_tree(self._tree, "-m", message)


def push_coordinated(git: Git, settings: Settings, updates: list[RefUpdate],
                     take: list[tuple[HeldLock, str]] = [],  # noqa: B006 - never mutated
                     release: list[HeldLock] = []) -> PushResult:  # noqa: B006
    """One atomic push of ``updates`` that also takes the locks ``take`` and releases the locks ``release``.

    ``take`` is [(lock, the token it must hold now, "" = free)]; each
    lock's own token replaces it. Every update is guarded by its lease, so
    the remote applies all of it or nothing; `PushResult.stale` says which
    ref was not what we expected. Like a lock's own pushes, it runs in a
    session of its own and an interruption waits for it to finish, so that
    the locks it may have taken are cleaned up (`HeldLock.let_go`). A lock
    in ``release`` stops renewing for the push (its token must not change
    under it) and starts again when the push is refused; its ``rides`` go
    with it.
    """
    for lock in release:
        lock._stop_renewing()
        lock.release_in_doubt = True
    everything = list(updates)
    for lock, holder in take:
        lock.maybe_ours = True
        everything.append(RefUpdate(lock.ref, lock.token, holder))
    everything += [RefUpdate(lock.ref, "", lock.token) for lock in release]
    everything += [ride for lock in release for ride in lock.rides]  # what was to go with the release
    started = time.monotonic()
    pending = git.start_transaction(settings.remote, everything)
    try:
        result = pending.result()
    except BaseException:
        try:
            pending.settle(_GRACE)
        finally:
            for lock, _ in take:
                lock.cut_short = pending.cut_short
        raise
    for lock, _ in take:
        lock.taken = lock.maybe_ours = result.ok
        lock._confirmed = started
    for lock in release:
        lock.release_in_doubt = False
        if result.ok:
            lock.maybe_ours, lock.rides = False, []
        elif not lock.lost:
            lock.start_renewing()
    return result


def free_or_gone(snapshot: Snapshot, ref: str, say: Say = print) -> str | None:
    """The lease that takes lock ``ref`` as ``snapshot`` shows it: "" (free), a gone holder's token, or None.

    A holder that ran here and whose process is gone (the fast path) may be
    replaced at once; any other holder, or anything odd at ``ref`` (not a
    token, refs nested under it), is None: take the waiting path
    (`remote_lock`), which says what it is.
    """
    if snapshot.under(ref + "/"):
        return None
    sha = snapshot.sha(ref)
    if not sha:
        return ""
    info = _info(snapshot.kind(ref), _message(snapshot.body(sha)) if snapshot.kind(ref) == "commit" else "")
    if _FOREIGN in info or not _dead_here(info):
        return None
    say("lock {} was held by a run that is gone ({}); taking it over".format(ref, who(info)))
    return sha


def holder_of(snapshot: Snapshot, ref: str) -> tuple[bool, bool]:
    """(held, its holder is surely gone) for lock ``ref`` as ``snapshot`` shows it."""
    sha = snapshot.sha(ref)
    if not sha:
        return False, False
    info = _info(snapshot.kind(ref), _message(snapshot.body(sha)) if snapshot.kind(ref) == "commit" else "")
    return True, _FOREIGN in info or _dead_here(info)


def _message(body: str) -> str:
    """A commit's message from its raw object (``cat-file --batch``)."""
    return body.split("\n\n", 1)[1] if "\n\n" in body else ""


def _fields(name: str, lease: float) -> Info:
    """What our tokens say about us: who holds the lock, and how to tell it is gone."""
    import uuid  # here, not at the top: it imports `platform`, ~3 ms of every `fab` start

    here = _here()
    return {
        "lock": name,
        "host": here["host"],
        "pid": str(os.getpid()),
        "started": _now(),
        "build": one_line(os.environ.get("BUILD_URL", "")),
        "run": uuid.uuid4().hex[:16],
        "pidns": here["pidns"],
        "boot": here["boot"],
        "lease": "{:g}".format(lease),
    }


def _now() -> str:
    return datetime.now(timezone.utc).strftime(_TIME_FORMAT)


# -- waiting for it ----------------------------------------------------------------


def _acquire(lock: HeldLock, poll: float) -> None:
    settings, say = lock.settings, lock.say
    deadline = time.monotonic() + settings.lock_timeout
    watch = _Watch()
    announced = None
    while True:
        if _take_free(lock):
            return
        lock.waited = True
        polled = time.monotonic()
        holder, info = _holder(lock.git, settings.remote, lock.ref)
        if not holder:
            continue  # released meanwhile: try again at once
        if _FOREIGN in info:
            raise _foreign_error(lock.ref, settings, info)
        unchanged = watch.unchanged_for(holder, polled)
        gone = _gone(info, unchanged)
        if gone:
            say("lock {} {}; taking it over".format(lock.ref, gone))
            if lock.take(holder):
                return
            continue
        if time.monotonic() >= deadline:
            raise LockError(_timeout_message(lock.ref, settings, info, watch))
        if info.get("run", holder) != announced:
            say("waiting for lock {} held by {}".format(lock.ref, who(info)))
            if _age(info) > settings.lock_stale_after:
                say("that lock looks stale (held for {}); if its run is dead: fab continuity.unlock {}".format(
                    _duration(_age(info)), _short_name(lock.ref, settings)))
            announced = info.get("run", holder)
        time.sleep(poll)


def _take_free(lock: HeldLock) -> bool:
    """`HeldLock.take` of a free lock; a `UsageError` when a ref nested under ours is in the way."""
    try:
        return lock.take("")
    except GitError as exc:
        said = str(exc) + exc.stderr
        if "exists" not in said and "cannot lock ref" not in said:
            raise
        nested = sorted(lock.git.ls_remote(lock.settings.remote, lock.ref + "/*"))
        if not nested:
            raise
        lock.maybe_ours = False  # the remote refused the push: it holds no token of ours
        raise _nested_error(lock.ref, lock.settings, nested) from None


class _Watch:
    """How long the token has surely stayed the same, by our own monotonic clock.

    Tokens are never reused, so a token read twice was there all along in
    between. We count from when the first read had returned to when the
    latest one began, so a slow remote only makes the span shorter.
    """

    def __init__(self) -> None:
        self.token: str | None = None
        self.since = 0.0
        self.changes = 0

    def unchanged_for(self, token: str, polled: float) -> float:
        """``token`` as read by a poll that began at ``polled``; seconds it has been there for sure."""
        if token != self.token:
            self.changes += self.token is not None
            self.token, self.since = token, time.monotonic()
        return max(0.0, polled - self.since)


def _gone(info: Info, unchanged: float) -> str | None:
    """Why the holder is surely gone (the lock may be taken over), or None."""
    if _dead_here(info):
        return "was held by a run that is gone ({})".format(who(info))
    lease = _lease(info)
    if lease and unchanged > lease:
        return "was not renewed for {}s (its lease is {:g}s): its run is gone or cut off from the remote ({})".format(
            math.ceil(unchanged), lease, who(info))
    return None


def _timeout_message(ref: str, settings: Settings, info: Info, watch: _Watch) -> str:
    name = _short_name(ref, settings)
    message = "could not take lock {} within {:.0f}s: held by {}.".format(ref, settings.lock_timeout, who(info))
    lease = _lease(info)
    if lease and not watch.changes and lease >= settings.lock_timeout:
        return message + (
            " It was not renewed while we waited, but a lock is taken over only once unrenewed for its lease "
            "({:g}s): raise continuity.lock_timeout above that, or if that run is dead, break it with "
            "`fab continuity.unlock {}`.".format(lease, name))
    if _age(info) > settings.lock_stale_after:
        return message + " It looks stale; if that run is dead, break it with `fab continuity.unlock {}`.".format(name)
    return message + " Wait for that run, or raise continuity.lock_timeout."


def _short_name(ref: str, settings: Settings) -> str:
    return ref[len(settings.refs_prefix + "locks/"):] + settings.line_option


# -- who holds it ------------------------------------------------------------------


def _holder(git: Git, remote: str, ref: str) -> tuple[str | None, Info]:
    """(token sha, info dict) of the current holder, or (None, {})."""
    sha = git.ls_remote(remote, ref).get(ref)
    if not sha:
        return None, {}
    if not git.commit(sha):
        proc = git.call("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--refmap=", remote, ref)
        if proc.returncode:
            return sha, {}
    kind = git.run("cat-file", "-t", sha, check=False)
    return sha, _info(kind, git.run("log", "-1", "--format=%B", sha, check=False) if kind == "commit" else "")


def _info(kind: str, message: str) -> Info:
    """What a lock ref holding an object of type ``kind`` with ``message`` says about its holder."""
    if kind != "commit":
        return {_FOREIGN: "a {}".format(kind or "missing object")}
    if not message.startswith("continuity lock\n"):
        return {_FOREIGN: "a commit that is not a continuity lock token"}
    return dict(line.split(": ", 1) for line in message.splitlines() if ": " in line)


#: Set in a holder's info when the ref holds something no continuity run wrote:
#: nobody will ever release or renew it, so waiting for it is pointless.
_FOREIGN = "not-a-lock"


def _foreign_error(ref: str, settings: Settings, info: Info) -> UsageError:
    return UsageError(
        "{} on {} is not a continuity lock ({}): something other than continuity wrote it, and no run will "
        "release it; continuity left it as it is. Remove it with `fab continuity.unlock {}`, then run again".format(
            ref, settings.remote, info[_FOREIGN], _short_name(ref, settings)))


def _nested_error(ref: str, settings: Settings, nested: list[str]) -> UsageError:
    return UsageError(
        "lock {} cannot be taken on {}: {}{} exists under it, and git cannot keep a ref and refs under it; "
        "no continuity run writes refs there. Remove it with `{}`, then run again".format(
            ref, settings.remote, nested[0], " (and {} more)".format(len(nested) - 1) if len(nested) > 1 else "",
            shlex.join(["git", "push", settings.remote, "--delete", *nested])))


_HERE: Info = {}


def _here() -> Info:
    """This process's host name, pid namespace and boot: what a holder's token is compared with."""
    if not _HERE:
        _HERE.update(host=one_line(socket.gethostname()), pidns=_pid_namespace(), boot=_read("/proc/sys/kernel/random/boot_id"))
    return _HERE


def _pid_namespace() -> str:
    try:
        link = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return ""  # no /proc (not Linux, or not mounted): no fast path
    return link[link.find("[") + 1:-1] if link.startswith("pid:[") else ""


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _dead_here(info: Info) -> bool:
    """The holder ran where its pid means what it means here, and that process is gone."""
    here = _here()
    if not here["pidns"] or not here["boot"] or not info.get("pid", "").isdigit():
        return False
    if any(info.get(key) != here[key] for key in ("host", "pidns", "boot")):
        return False
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def _lease(info: Info) -> float | None:
    """The holder's lease in seconds, or None for a token that is never renewed (an older continuity)."""
    try:
        lease = float(info.get("lease", ""))
    except ValueError:
        return None
    return lease if 0 < lease < float("inf") else None


def _age(info: Info, field: str = "started") -> float:
    try:
        stamp = datetime.strptime(info.get(field, ""), _TIME_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return 0.0
    return max(0.0, (datetime.now(timezone.utc) - stamp).total_seconds())


def describe_age(info: Info) -> str:
    """How long the holder of ``info`` has held its lock: "42s", "5m", "2h03m"."""
    return _duration(_age(info))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return "{:.0f}s".format(seconds)
    minutes = int(seconds // 60)
    return "{}h{:02d}m".format(minutes // 60, minutes % 60) if minutes >= 60 else "{}m".format(minutes)


def who(info: Info) -> str:
    if not info:
        return "another run"
    if _FOREIGN in info:
        return "nobody (not a continuity lock)"
    who = "pid {} on {} since {}".format(info.get("pid", "?"), info.get("host", "?"), info.get("started", "?"))
    return one_line(who + (" ({})".format(info["build"]) if info.get("build") else ""))


def assessment(info: Info, settings: Settings) -> tuple[str, str]:
    """What ``locks`` says about a holder: (is its run gone and what happens to the lock, lead-in to the unlock hint).

    The same evidence a waiting run acts on, except that a listing cannot
    watch the token change: it trusts the holder's recorded renewal time,
    hence "probably".
    """
    if _FOREIGN in info:
        return "not a continuity lock ({}): no run will release it".format(info[_FOREIGN]), "remove it"
    if _dead_here(info):
        return ("its run is gone (no process {} on this machine): the next run that needs the lock takes it over "
                "at once".format(info["pid"]), "to break it now")
    lease = _lease(info)
    if lease:
        silent = _age(info, "renewed" if info.get("renewed") else "started")
        if silent > lease:
            return ("not renewed for {}; its run is probably gone: the next run that needs the lock takes it over "
                    "once it has seen it unrenewed for {:g}s".format(_duration(silent), lease), "to break it now")
        return "renewed {} ago (lease {:g}s): its run looks alive".format(_duration(silent), lease), "if it is not"
    if _age(info) > settings.lock_stale_after:
        return "it looks stale (held for {})".format(_duration(_age(info))), "if its run is dead"
    return "", "if its run is dead"


def stale(info: Info, settings: Settings) -> bool:
    """The lock needs a person: no run will ever take it over by itself.

    That is a ref no continuity run wrote, or a lock held for longer than
    ``lock_stale_after`` whose holder is not known to be gone (a holder that
    still renews it, or an older continuity's token without a lease). A
    lock whose run is gone is not stale: the next run takes it over.
    """
    if _FOREIGN in info:
        return True
    lease = _lease(info)
    if _dead_here(info) or (lease and _age(info, "renewed" if info.get("renewed") else "started") > lease):
        return False
    return _age(info) > settings.lock_stale_after


# -- the tasks -----------------------------------------------------------------------


def list_locks(snapshot: Snapshot, settings: Settings) -> list[tuple[str, str, Info]]:
    """[(name, token, info)] of the line's locks, as ``snapshot`` shows them (one ``cat-file --batch``)."""
    prefix = settings.refs_prefix + "locks/"
    refs = snapshot.under(prefix)
    snapshot.read_bodies(sha for ref, sha in refs.items() if snapshot.kind(ref) == "commit")
    return [(ref[len(prefix):], sha, _info(snapshot.kind(ref), _message(snapshot.body(sha))))
            for ref, sha in refs.items()]


def break_lock(git: Git, settings: Settings, name: str, token: str) -> bool:
    """Delete lock ``name`` if it still has ``token``; False when it changed."""
    ref = settings.refs_prefix + "locks/" + name
    return git.push(settings.remote, [("", ref)], leases=[(ref, token)]).ok
