"""Everything that talks to the remote about the line's branches.

Reaching it (`reach`, `check_remote`), checking the ground before a task
changes anything (`check_ground`), reading it (`read_remote`, a `Snapshot`),
and moving a branch with a compare-and-swap (`swap`): a push that the remote
applies only if the branch is still where we saw it. Locks and the ledger,
also kept on the remote, have their own modules above this one; they read
what they need from the `Snapshot` a task took.

One read per task
-----------------
`read_remote` reads everything a task needs in ONE fetch (one connection):
the branches it names, into ``refs/remotes/REMOTE/BRANCH`` as a Jenkins
checkout has them, and every ref under ``refs/continuity/`` (locks, ledgers,
deployed revisions of every line), mirrored into ``refs/continuity-remote/
REMOTE/`` with ``--prune`` so that a lock deleted on the remote vanishes here
too (`MIRROR`). One ``for-each-ref`` then lists them all with their object
types, and object bodies (lock tokens) come from one ``cat-file --batch``.

A dry run must leave every local ref as it was: it reads with ``ls-remote``
and fetches missing objects without refs (``--refmap=``), so it costs two
connections where a run costs one.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence

from ._text import redact
from .config import Settings
from .errors import ContinuityError, GitError, UsageError
from .git import Git, PushResult, RefUpdate
from .workspace import Workspace, open_workspace

__all__ = ["HEADS", "CONTINUITY", "MIRROR", "Snapshot", "read_remote", "RefUpdate", "reach", "check_remote",
           "check_branch_names", "check_ground", "remote_heads", "missing_branches",
           "push_master_command", "fetch_branches", "swap", "probe_push", "PROBE_SUFFIX"]

HEADS = "refs/heads/"
CONTINUITY = "refs/continuity/"
#: Where `read_remote` mirrors the remote's ``refs/continuity/*``: ``MIRROR + REMOTE + "/" + rest``.
MIRROR = "refs/continuity-remote/"


class Snapshot:
    """What the remote held when a task read it: branch heads and every ``refs/continuity/`` ref.

    ``heads`` is {branch: sha}; ``refs`` is {ref as named on the remote:
    (sha, object type)} for the refs under ``refs/continuity/``. Every object
    they name is in the local repository (except in a dry run, for a ref
    whose object could not be fetched: its type is then "missing object").
    """

    def __init__(self, git: Git, remote: str, heads: dict[str, str], refs: dict[str, tuple[str, str]]) -> None:
        self.git, self.remote = git, remote
        self.heads = heads
        self.refs = refs
        self._bodies: dict[str, str] = {}

    def sha(self, ref: str) -> str:
        """The sha of ``ref`` on the remote, "" when it has none."""
        return self.refs.get(ref, ("", ""))[0]

    def kind(self, ref: str) -> str:
        """The object type of ``ref`` ("commit", "blob", "tag", ...), "" when absent."""
        return self.refs.get(ref, ("", ""))[1]

    def under(self, prefix: str) -> dict[str, str]:
        """{ref: sha} of the refs whose name starts with ``prefix``, sorted."""
        return {ref: sha for ref, (sha, _) in sorted(self.refs.items()) if ref.startswith(prefix)}

    def body(self, sha: str) -> str:
        """The raw content of object ``sha`` (a commit's headers and message)."""
        if sha not in self._bodies:
            self.read_bodies([sha])
        return self._bodies.get(sha, "")

    def read_bodies(self, shas: Iterable[str]) -> None:
        """Read the objects ``shas`` in one ``git cat-file --batch``."""
        wanted = [sha for sha in dict.fromkeys(shas) if sha not in self._bodies]
        if wanted:
            self._bodies.update(self.git.cat_batch(wanted))


def read_remote(git: Git, settings: Settings, names: Sequence[str] | None = None, dry_run: bool = False,
                require: bool = True) -> Snapshot:
    """Read the remote in one connection: the branches ``names`` (default the line's) and ``refs/continuity/*``.

    A missing branch is a `UsageError` pointing to ``fab continuity.init``
    (with ``require=False``, it is left out of ``heads``); an unreachable
    remote a `UsageError` saying so. A dry run moves no local ref.
    """
    wanted: list[str] = list(dict.fromkeys(vars(settings.branches).values() if names is None else names))
    if dry_run:
        return _read_without_refs(git, settings, wanted, require)
    remote = settings.remote
    try:
        _fetch_all(git, remote, wanted)
    except GitError as exc:
        # Only now, on the way to an error: which branches are missing (or is the remote unreachable)?
        heads = remote_heads(git, remote, wanted)
        missing = [name for name in wanted if name not in heads]
        if not missing:
            raise UsageError("cannot fetch from remote '{}': {}".format(remote, str(exc).split(" failed: ", 1)[-1])) from None
        if require:
            raise missing_branches(settings, missing) from None
        wanted = [name for name in wanted if name in heads]
        _fetch_all(git, remote, wanted)
    return _snapshot(git, remote, wanted)


def _fetch_all(git: Git, remote: str, names: Sequence[str]) -> None:
    refspecs = ["+{}{}:refs/remotes/{}/{}".format(HEADS, n, remote, n) for n in names]
    refspecs.append("+{}*:{}{}/*".format(CONTINUITY, MIRROR, remote))
    git.run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--prune", remote, *refspecs)


def _snapshot(git: Git, remote: str, names: Sequence[str]) -> Snapshot:
    """The `Snapshot` of what the fetch wrote: one ``for-each-ref``."""
    tracking = {"refs/remotes/{}/{}".format(remote, n): n for n in names}
    mirror = MIRROR + remote + "/"
    out = git.run("for-each-ref", "--format=%(objectname) %(objecttype) %(tree) %(refname)", *tracking, mirror)
    heads: dict[str, str] = {}
    refs: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        sha, kind, tree, ref = line.split(" ", 3)
        if kind == "commit":
            git.known(sha, tree)
        if ref in tracking and kind == "commit":
            heads[tracking[ref]] = sha
        elif ref.startswith(mirror):
            refs[CONTINUITY + ref[len(mirror):]] = (sha, kind)
    return Snapshot(git, remote, heads, refs)


def _read_without_refs(git: Git, settings: Settings, names: Sequence[str], require: bool) -> Snapshot:
    """A dry run's read: ``ls-remote``, then the objects it lacks without any ref (``--refmap=``)."""
    remote = settings.remote
    listed = _ls_remote(git, remote, [HEADS + n for n in names] + [CONTINUITY + "*"])
    heads = {ref[len(HEADS):]: sha for ref, sha in listed.items() if ref.startswith(HEADS) and ref[len(HEADS):] in names}
    missing = [name for name in names if name not in heads]
    if missing and require:
        raise missing_branches(settings, missing)
    ours = {ref: sha for ref, sha in listed.items() if ref.startswith(CONTINUITY)}
    kinds = _kinds(git, list(heads.values()) + list(ours.values()))
    lacking = [HEADS + n for n, sha in heads.items() if sha not in kinds]
    lacking += [ref for ref, sha in ours.items() if sha not in kinds]
    if lacking:
        proc = git.call("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--refmap=", remote, *lacking)
        if proc.returncode and any(HEADS + n in lacking for n in heads):
            raise ContinuityError("a branch moved on {} while fetching; run again".format(remote))
        kinds = _kinds(git, list(heads.values()) + list(ours.values()))
    if not all(kinds.get(sha) == "commit" for sha in heads.values()):
        raise ContinuityError("a branch moved on {} while fetching; run again".format(remote))
    refs = {ref: (sha, kinds.get(sha, "missing object")) for ref, sha in ours.items()}
    return Snapshot(git, remote, heads, refs)


def _kinds(git: Git, shas: Sequence[str]) -> dict[str, str]:
    """{sha: object type} of those of ``shas`` this repository has."""
    if not shas:
        return {}
    out = git.run("cat-file", "--batch-check=%(objectname) %(objecttype)", input="".join(s + "\n" for s in shas))
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line and not line.endswith(" missing"))


def _ls_remote(git: Git, remote: str, patterns: Sequence[str]) -> dict[str, str]:
    try:
        return git.ls_remote(remote, *patterns)
    except GitError as exc:
        raise _unreachable(git, remote, exc) from None


def _unreachable(git: Git, remote: str, exc: GitError) -> UsageError:
    return UsageError(
        "cannot reach remote '{}' ({}): {}; check `git remote -v` and your credentials".format(
            remote, redact(git.remote_url(remote)) or "no URL", str(exc).split(" failed: ", 1)[-1]))


def reach(settings: Settings, names: Sequence[str] = ()) -> Snapshot:
    """The remote read in one fetch (`read_remote`), once it is configured and answers (for read-only tasks)."""
    git = open_workspace(".", settings.git_timeout).git
    check_remote(git, settings.remote)
    return read_remote(git, settings, list(names), require=False)


def check_remote(git: Git, remote: str) -> None:
    """``remote`` is configured in this checkout; else a `UsageError` saying how to add it."""
    if git.remote_url(remote):  # the usual case, in one process whose answer the run needs anyway
        return
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


def check_ground(ws: Workspace, settings: Settings, names: Sequence[str] | None = None) -> None:
    """Check the ground before changing anything: what can be checked without a connection.

    The remote is configured, the branch names are valid, the history is
    full (not shallow). Whether the remote answers and has the branches
    (``names``) is learnt by the task's one read (`read_remote`).
    """
    check_remote(ws.git, settings.remote)
    check_branch_names(ws.git, settings)
    if ws.shallow:
        raise UsageError(
            "this checkout is a shallow clone; continuity needs the history to merge and compare: run "
            "`git fetch --unshallow {}` (in Jenkins: turn off the git plugin's shallow clone)".format(settings.remote)
        )


def remote_heads(git: Git, remote: str, names: Iterable[str]) -> dict[str, str]:
    """{branch name: sha} for those of ``names`` that exist on ``remote``."""
    names = list(names)
    refs = _ls_remote(git, remote, [HEADS + n for n in names])
    return {ref[len(HEADS):]: sha for ref, sha in refs.items() if ref[len(HEADS):] in names}


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


def fetch_branches(git: Git, settings: Settings, names: Sequence[str] | None = None,
                   dry_run: bool = False) -> dict[str, str]:
    """Fetch the line's branches (or ``names``); return {branch name: sha}: `read_remote`'s heads."""
    return read_remote(git, settings, names, dry_run=dry_run).heads


def swap(git: Git, remote: str, branch: str, new: str, old: str) -> PushResult | None:
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


def probe_push(git: Git, remote: str, branch: str, sha: str) -> str | None:
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


def _refusal(output: str) -> str | None:
    """What git said about the probe ref (``[remote rejected] (REASON)``), or its fatal error."""
    lines = [line for line in output.splitlines() if line.strip() and not line.startswith(("remote:", "To "))]
    reason = next((line.split("\t")[-1].strip() for line in lines if line.startswith("!")), None)
    return reason or next((line for line in lines if line.startswith(("fatal:", "error:"))), None)


def _expected(said: Sequence[str], reason: str | None) -> bool:
    """The remote accepted the push and only failed to write the ref because the branch is in its way."""
    if any("exists; cannot create" in line for line in said):
        return True
    # A server that hides its errors: the summary alone, when it said no error of its own.
    return not any(line.startswith("error:") for line in said) and reason in _UNWRITABLE
