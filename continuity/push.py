"""The pipeline's push stage: master from its base to the candidate, as a compare-and-swap.

The remote moves master only if it is still the revision the candidate was
made from; otherwise the push is refused (the stage's status is
``refused``) and the pipeline starts again on the new master. The same
atomic push brings development along after a merge commit, carries what the
other stages put on it (`stage.Attempt`: the deploy stage's locks and ledger
intents, rides) and releases the pipeline lock: one connection.
"""

from __future__ import annotations

from typing import Callable

from .config import Settings
from .errors import GitError, LockError
from .git import Git, PushResult, RefUpdate
from .lock import push_coordinated
from .record import RunState, StageStatus
from .remote import HEADS, remote_heads, swap
from .stage import Attempt, Candidate, Done, Stage
from .workspace import require_candidate

__all__ = ["STAGE", "sync_development"]


def _run(attempt: Attempt) -> Done:
    settings, candidate = attempt.settings, attempt.candidate
    assert candidate is not None and attempt.lock is not None
    require_candidate(attempt.ws, candidate.sha, "the build or the checks")
    attempt.lock.check("pushing " + settings.branches.master)  # a run that lost its lock pushes nothing
    for board in attempt.boarding:
        board(attempt)
    pushed = _push(attempt, candidate)
    attempt.pushed = pushed is not None
    if attempt.pushed:
        attempt.record.state = RunState.PUSHED
    return Done(_detail(pushed, settings, candidate), StageStatus.OK if pushed else StageStatus.REFUSED)


def _push(attempt: Attempt, candidate: Candidate) -> PushResult | None:
    """master base -> candidate in one atomic push with what rides on it, releasing the pipeline lock.

    Refused when master moved (None: the pipeline starts again, still
    holding its lock). When something else was stale, it is dropped and the
    push tried again: development (the next run brings it along), a ride,
    or the deploy coordination as a whole (the deploy stage then waits for
    its locks). When the remote refuses the push outright (a hook, a
    permission), it is tried again without development, then with master
    alone: master's push is what must not fail for the rest.
    """
    settings, lock = attempt.settings, attempt.lock
    assert lock is not None
    master = RefUpdate(HEADS + settings.branches.master, candidate.sha, candidate.base)
    development = _development(settings, candidate)
    refused: GitError | None = None  # why development could not come along
    while True:
        coordination, takes = attempt.coordination, attempt.takes
        updates = [master] + ([development] if development else []) + attempt.rides + coordination
        try:
            result = push_coordinated(attempt.git, settings, updates, take=takes, release=[lock])
        except GitError as exc:
            if development is not None:
                development, refused = None, exc
            elif coordination or takes or attempt.rides or lock.rides:
                attempt.coordination, attempt.takes, attempt.claims, attempt.rides = [], [], {}, []
                lock.rides = []
            else:
                raise
            continue
        if result.ok:
            if refused is not None:
                attempt.rep.say("warning: could not bring {} to {}: {}; the next run tries again".format(
                    settings.branches.development, candidate.sha[:12], refused))
            attempt.coordinated = bool(coordination or takes)
            for held, _ in takes:
                held.start_renewing()
            attempt.brought = None if _development(settings, candidate) is None or refused else development is not None
            return result
        stale = result.stale
        if lock.ref in stale:
            lock.check("pushing " + settings.branches.master)  # raises: the renewal that lost it says why
            raise LockError("lost lock {}; stopped before pushing {}".format(lock.ref, settings.branches.master))
        dropped: set[str] = set()
        if development is not None and development.ref in stale:
            dropped.add(development.ref)
            development = None
        dropped |= {ride.ref for ride in attempt.rides + lock.rides if ride.ref in stale}
        attempt.rides = [ride for ride in attempt.rides if ride.ref not in stale]
        lock.rides = [ride for ride in lock.rides if ride.ref not in stale]
        if stale & ({u.ref for u in coordination} | {held.ref for held, _ in takes}):
            attempt.coordination, attempt.takes, attempt.claims = [], [], {}
            dropped.add("coordination")
        if master.ref in stale or not dropped:
            return None


def _development(settings: Settings, candidate: Candidate) -> RefUpdate | None:
    """development brought along to a merge commit (a fast-forward leaves it where master goes)."""
    if not settings.sync_development or candidate.development == candidate.sha:
        return None
    return RefUpdate(HEADS + settings.branches.development, candidate.sha, candidate.development)


def _detail(pushed: PushResult | None, settings: Settings, candidate: Candidate) -> str:
    master = settings.branches.master
    if not pushed:
        return "refused: {} moved on {} since {}".format(master, settings.remote, candidate.base[:12])
    if pushed.up_to_date:
        return "{} was already at {} (pushed by another run)".format(master, candidate.sha[:12])
    return "{} {} -> {}".format(master, candidate.base[:12], candidate.sha[:12])


def _bring_development(attempt: Attempt) -> None:
    """Say what became of development, which rode on the master push after a merge commit."""
    settings, candidate = attempt.settings, attempt.candidate
    if not attempt.pushed or candidate is None or attempt.brought is None:
        return
    name = settings.branches.development
    if attempt.brought:
        attempt.rep.say("{} brought to {} {} (fast-forward from {})".format(
            name, settings.branches.master, candidate.sha[:12], candidate.development[:12]))
    else:
        attempt.rep.say("{} moved on {} meanwhile: left as it is; the next run merges it and brings {} along "
                        "then".format(name, settings.remote, name))


def _plan(attempt: Attempt) -> list[str]:
    settings, candidate = attempt.settings, attempt.candidate
    assert candidate is not None
    lines = ["push {} to {} {} (only if it is still {})".format(
        candidate.sha[:12], settings.remote, settings.branches.master, candidate.base[:12])]
    if settings.sync_development and not candidate.fast_forward:
        lines.append("bring {} to {} (fast-forward, only if it is still {})".format(
            settings.branches.development, candidate.sha[:12], candidate.development[:12]))
    return lines


#: master: base -> candidate, then development brought along.
STAGE = Stage("push", _run, _plan, then=_bring_development)


def sync_development(git: Git, settings: Settings, development: str, master: str, say: Callable[[str], None],
                     dry_run: bool = False) -> None:
    """Fast-forward development from ``development`` (its pinned revision) to ``master``.

    After a merge commit, master has a commit development lacks; if
    development never got it, every later run would merge again, forever.
    ``master`` contains ``development``, so this is a fast-forward, pushed
    with a lease: if anyone pushed to development meanwhile, nothing moves
    and the next run merges their work and brings development along then.
    One leased push is atomic on the remote, so it needs no pipeline lock,
    and a failure is only reported: master's push stands.
    """
    name = settings.branches.development
    if not settings.sync_development or development == master:
        return
    if dry_run:
        say("plan: bring {} {} to {}'s {} (fast-forward, only if it is still {})".format(
            name, development[:12], settings.branches.master, master[:12], development[:12]))
        return
    try:
        ok = swap(git, settings.remote, name, master, development) is not None
    except GitError as exc:
        say("warning: could not bring {} to {}: {}; the next run tries again".format(name, master[:12], exc))
        return
    if ok:
        say("{} brought to {} {} (fast-forward from {})".format(
            name, settings.branches.master, master[:12], development[:12]))
    elif remote_heads(git, settings.remote, [name]).get(name) != master:
        say("{} moved on {} meanwhile: left as it is; the next run merges it and brings {} along then".format(
            name, settings.remote, name))
