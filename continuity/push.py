"""The pipeline's push stage: master from its base to the candidate, as a compare-and-swap.

The remote moves master only if it is still the revision the candidate was
made from; otherwise the push is refused (the stage's status is
``refused``) and the pipeline starts again on the new master. Then, after a
merge commit, development is brought along (`sync_development`).
"""

from typing import Callable, Optional

from .config import Settings
from .errors import GitError
from .git import Git, PushResult
from .record import RunState, StageStatus
from .remote import remote_heads, swap
from .stage import Attempt, Candidate, Done, Stage
from .workspace import require_candidate

__all__ = ["STAGE", "sync_development"]


def _run(attempt: Attempt) -> Done:
    settings, candidate = attempt.settings, attempt.candidate
    assert candidate is not None and attempt.lock is not None
    require_candidate(attempt.ws, candidate.sha, "the build or the checks")
    attempt.lock.check("pushing " + settings.branches.master)  # a run that lost its lock pushes nothing
    pushed = swap(attempt.git, settings.remote, settings.branches.master, candidate.sha, candidate.base)
    attempt.pushed = pushed is not None
    if attempt.pushed:
        attempt.record.state = RunState.PUSHED
    return Done(_detail(pushed, settings, candidate), StageStatus.OK if pushed else StageStatus.REFUSED)


def _detail(pushed: Optional[PushResult], settings: Settings, candidate: Candidate) -> str:
    master = settings.branches.master
    if not pushed:
        return "refused: {} moved on {} since {}".format(master, settings.remote, candidate.base[:12])
    if pushed.up_to_date:
        return "{} was already at {} (pushed by another run)".format(master, candidate.sha[:12])
    return "{} {} -> {}".format(master, candidate.base[:12], candidate.sha[:12])


def _bring_development(attempt: Attempt) -> None:
    if attempt.pushed and attempt.candidate is not None:
        sync_development(attempt.git, attempt.settings, attempt.candidate.development, attempt.candidate.sha,
                         attempt.rep.say)


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
