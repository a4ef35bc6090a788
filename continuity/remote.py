"""Everything that talks to the remote about the line's branches.

Reaching it (`reach`, `check_remote`), checking the ground before a task
changes anything (`check_ground`), reading its heads (`remote_heads`),
fetching and pinning them (`fetch_branches`), and moving a branch with a
compare-and-swap (`swap`): a push that the remote applies only if the branch
is still where we saw it. Locks and the ledger, also kept on the remote, have
their own modules above this one.
"""

import shlex
from collections.abc import Iterable, Sequence
from typing import Optional

from ._text import redact
from .config import Settings
from .errors import ContinuityError, GitError, UsageError
from .git import Git, PushResult
from .workspace import Workspace, open_workspace

__all__ = ["HEADS", "reach", "check_remote", "check_branch_names", "check_ground", "remote_heads",
           "require_branches", "missing_branches", "push_master_command", "fetch_branches", "swap", "probe_push",
           "PROBE_SUFFIX"]

HEADS = "refs/heads/"


def reach(settings: Settings) -> Git:
    """The checkout's `Git`, once the remote is configured and answers (for read-only tasks)."""
    git = open_workspace(".", settings.git_timeout).git
    check_remote(git, settings.remote)
    remote_heads(git, settings.remote, [settings.branches.master])
    return git


def check_remote(git: Git, remote: str) -> None:
    """``remote`` is configured in this checkout; else a `UsageError` saying how to add it."""
    remotes = git.remotes()
    if remote not in remotes:
        known = ", ".join(remotes) if remotes else "none"
        raise UsageError(
            "remote '{}' is not configured in this checkout (remotes: {}); set continuity.remote "
            "or add it with `git remote add`".format(remote, known)
        )


def check_branch_names(git: Git, settings: Settings) -> None:
    """Every branch of the line is a name git accepts; else a `UsageError` naming the setting."""
    for role, name in vars(settings.branches).items():
        if not git.valid_branch(name):
            raise UsageError("continuity.branches.{}: {!r} is not a valid git branch name".format(role, name))


def check_ground(ws: Workspace, settings: Settings, names: Optional[Sequence[str]] = None) -> dict[str, str]:
    """Check the ground before changing anything; return {branch: sha} of ``names`` on the remote.

    The remote, the branch names, a full (not shallow) history, and the
    branches on the remote (``names``, default the line's three).
    """
    check_remote(ws.git, settings.remote)
    check_branch_names(ws.git, settings)
    if ws.git.run("rev-parse", "--is-shallow-repository") == "true":
        raise UsageError(
            "this checkout is a shallow clone; continuity needs the history to merge and compare: run "
            "`git fetch --unshallow {}` (in Jenkins: turn off the git plugin's shallow clone)".format(settings.remote)
        )
    return require_branches(ws.git, settings, names or list(vars(settings.branches).values()))


def remote_heads(git: Git, remote: str, names: Iterable[str]) -> dict[str, str]:
    """{branch name: sha} for those of ``names`` that exist on ``remote``."""
    names = list(names)
    try:
        refs = git.ls_remote(remote, *[HEADS + n for n in names])
    except GitError as exc:
        raise UsageError(
            "cannot reach remote '{}' ({}): {}; check `git remote -v` and your credentials".format(
                remote, redact(git.remote_url(remote)) or "no URL", str(exc).split(" failed: ", 1)[-1]
            )
        ) from None
    return {ref[len(HEADS):]: sha for ref, sha in refs.items() if ref[len(HEADS):] in names}


def require_branches(git: Git, settings: Settings, names: Sequence[str]) -> dict[str, str]:
    """The remote answers and has every branch in ``names``; else a `UsageError`."""
    heads = remote_heads(git, settings.remote, names)
    missing = [name for name in dict.fromkeys(names) if name not in heads]
    if missing:
        raise missing_branches(settings, missing)
    return heads


def missing_branches(settings: Settings, missing: Sequence[str]) -> UsageError:
    """The `UsageError` for branches the remote lacks, with the way to create them."""
    if settings.branches.master in missing:
        return UsageError(
            "remote '{}' has no '{}' branch: push your main line there first "
            "({}), or set continuity.branches.master; then `fab continuity.init{}` creates the others".format(
                settings.remote, settings.branches.master, push_master_command(settings), settings.line_option)
        )
    return UsageError(
        "remote '{}' has no branch {}; create {} with `fab continuity.init{}`".format(
            settings.remote, " and no branch ".join("'{}'".format(m) for m in missing),
            "it" if len(missing) == 1 else "them", settings.line_option,
        )
    )


def push_master_command(settings: Settings) -> str:
    """The git command that puts the checkout's revision on the remote as the line's master."""
    return shlex.join(["git", "push", settings.remote, "HEAD:refs/heads/" + settings.branches.master])


def fetch_branches(git: Git, settings: Settings, names: Optional[Sequence[str]] = None,
                   dry_run: bool = False) -> dict[str, str]:
    """Fetch the line's branches (or ``names``); return {branch name: sha}.

    A missing branch is a `UsageError` pointing to ``fab continuity.init``.
    A dry run fetches objects only: no local ref moves.
    """
    wanted: list[str] = list(dict.fromkeys(names or vars(settings.branches).values()))
    heads = require_branches(git, settings, wanted)
    if dry_run:
        git.fetch_objects(settings.remote, *[HEADS + n for n in wanted])
        if all(git.commit(sha) for sha in heads.values()):
            return heads
        raise ContinuityError("a branch moved on {} while fetching; run again".format(settings.remote))
    tracking = ["refs/remotes/{}/{}".format(settings.remote, n) for n in wanted]
    git.fetch(settings.remote, *["+{}{}:{}".format(HEADS, n, t) for n, t in zip(wanted, tracking)])
    # Pin what was fetched, not what ls-remote saw: a branch may move between.
    pinned = {name: git.commit(ref) for name, ref in zip(wanted, tracking)}
    return {name: sha for name, sha in pinned.items() if sha}


def swap(git: Git, remote: str, branch: str, new: str, old: str) -> Optional[PushResult]:
    """Move ``branch`` on ``remote`` from ``old`` ("" = absent) to ``new`` ("" = delete), or nothing.

    The remote applies it only if the branch is still ``old``: returns the
    `PushResult`, or None when it was refused because the branch moved.
    """
    ref = HEADS + branch
    result = git.push(remote, [(new, ref)], leases=[(ref, old)])
    return result if result.ok else None


#: The ref `probe_push` asks the remote to create, under an existing branch: ``refs/heads/BRANCH/continuity-doctor``.
PROBE_SUFFIX = "/continuity-doctor"

#: How git sums up a remote that accepted the push and could not write the ref (the refusal `probe_push` expects).
_UNWRITABLE = ("[remote rejected] (failed to update ref)", "[remote rejected] (failed to lock)")


def probe_push(git: Git, remote: str, branch: str, sha: str) -> Optional[str]:
    """Whether ``remote`` takes our pushes, tried without moving anything; None when it does, else what it said.

    The push asks to create ``refs/heads/BRANCH/continuity-doctor`` at
    ``sha``, the commit ``BRANCH`` has there (so no object is sent). git
    cannot create it while ``BRANCH`` exists: a ref cannot also be a
    directory of refs. So the remote authenticates us, opens receive-pack
    (where hosting services check write access), runs its pre-receive and
    update hooks on the command, and only then fails to write the ref: the
    refusal we expect. Any other refusal is the answer. The lease (the ref
    must not exist) keeps git from sending anything should it exist.
    """
    ref = HEADS + branch + PROBE_SUFFIX
    if not git.commit(sha):
        git.fetch_objects(remote, HEADS + branch)
    proc = git.call("push", "--porcelain", "--no-verify", "--force-with-lease={}:".format(ref), remote,
                    "{}:{}".format(sha, ref))
    output = (proc.stdout + proc.stderr).strip()
    ours = [line for line in output.splitlines() if ":{}\t".format(ref) in line]  # "FLAG\tSRC:DST\tSUMMARY"
    if proc.returncode == 0 and any(line[:1] in "*+ " for line in ours):  # written after all: BRANCH vanished
        git.push(remote, [("", ref)], leases=[(ref, sha)])
        return "the remote created {} (it should not have: did {} vanish?); it was deleted again".format(ref, branch)
    said = [line[len("remote:"):].strip() for line in output.splitlines() if line.startswith("remote:")]
    said = [line for line in said if line]
    reason = _refusal(output)
    if proc.returncode and _expected(said, reason):
        return None
    text = reason or "git push exited with {}".format(proc.returncode)
    if said:
        text += "; it said: " + " / ".join(said[-2:])
    return redact(text)


def _refusal(output: str) -> Optional[str]:
    """What git said about the probe ref (``[remote rejected] (REASON)``), or its fatal error."""
    lines = [line for line in output.splitlines() if line.strip() and not line.startswith(("remote:", "To "))]
    reason = next((line.split("\t")[-1].strip() for line in lines if line.startswith("!")), None)
    return reason or next((line for line in lines if line.startswith(("fatal:", "error:"))), None)


def _expected(said: Sequence[str], reason: Optional[str]) -> bool:
    """The remote accepted the push and only failed to write the ref because the branch is in its way."""
    if any("exists; cannot create" in line for line in said):
        return True
    # A server that hides its errors: the summary alone, when it said no error of its own.
    return not any(line.startswith("error:") for line in said) and reason in _UNWRITABLE
