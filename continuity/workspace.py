"""The checkout continuity works in (a Jenkins workspace, or yours).

continuity needs a clean checkout of tracked files: it checks out the
candidate to build and test it, and the deployed revision to deploy it. It
takes a local lock so two runs never share one checkout, and it puts HEAD back
where it found it when it is done, whatever happened.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import partial
from typing import Any, Callable

from . import _proc
from ._dataclass import dataclass
from ._text import one_line
from .config import Settings
from .errors import CommandFailed, GitError, UsageError
from .git import Git

__all__ = ["open_workspace", "Workspace", "require_candidate", "require_clean", "checkout_state", "command_env", "Here",
           "checkout_here", "exclusive", "restored_head"]


class Workspace:
    """A checkout: its `Git`, its root, and where continuity keeps its state in it (``.git/continuity``)."""

    def __init__(self, git: Git, git_dir: str, shallow: bool = False) -> None:
        self.git = git
        self.root = git.path
        self.state_dir = os.path.join(git_dir, "continuity")
        self.shallow = shallow  # a shallow clone: continuity needs the history (`remote.check_ground`)
        self._start: tuple[str | None, str | None, list[str]] | None = None
        #: Tracked paths flagged skip-worktree or assume-unchanged when the run began (a sparse
        #: checkout has some): `require_candidate` refuses any others, `restored_head` unflags them.
        self.flagged: frozenset[str] = frozenset()
        #: This run, for the commands it starts here (``CONTINUITY_RUN_ID``, see `command_env`).
        self.run_id = os.urandom(8).hex()

    def start(self) -> tuple[str | None, str | None, list[str]]:
        """(branch ref or None, HEAD's commit, [tracked files with changes]) when the task began.

        One ``git status``, read once: `exclusive` refuses a dirty checkout
        with it and `restored_head` knows where to return from it.
        Submodules do not count, as for ``git status --ignore-submodules``.
        """
        if self._start is None:
            head, branch, changed = _status(self.git, "all")
            self._start = (branch, head, changed)
        return self._start

    @property
    def build_stamps(self) -> str:
        return os.path.join(self.state_dir, "builds")


def open_workspace(path: str = ".", timeout: float = 300) -> Workspace:
    """The `Workspace` containing ``path``; `UsageError` outside a checkout."""
    try:  # one process: the root, the git directory, and whether the clone is shallow
        root, git_dir, shallow = (Git(path, timeout).run(
            "rev-parse", "--show-toplevel", "--absolute-git-dir", "--is-shallow-repository").splitlines() + ["", ""])[:3]
    except GitError as exc:
        if "work tree" in exc.stderr:
            raise UsageError("continuity needs a checkout with a work tree, not a bare repository") from None
        raise UsageError(
            "{} is not inside a git checkout; run fab from your project's repository "
            "(in Jenkins: from the workspace root)".format(os.path.abspath(path))
        ) from None
    return Workspace(Git(root, timeout), git_dir, shallow=shallow == "true")


#: Set for every build step and check to the run that started it (`Workspace.run_id`): the mark
#: by which the next run in the checkout finds what a killed run left running (`stop_killed_run`).
RUN_ID = "CONTINUITY_RUN_ID"


def command_env(ws: Workspace, revision: str, base: str, branch: str) -> dict[str, str]:
    """The environment of build steps and checks: ours, plus what they are building and checking.

    ``CONTINUITY_REVISION`` is the commit checked out, ``CONTINUITY_BASE``
    the revision of ``CONTINUITY_BRANCH`` it was made from;
    ``CONTINUITY_RUN_ID`` names the run (``ws.run_id``).
    """
    return dict(os.environ, CONTINUITY_REVISION=revision, CONTINUITY_BASE=base, CONTINUITY_BRANCH=branch,
                **{RUN_ID: ws.run_id})


def stop_killed_run(killed_run: str, say: Callable[[str], None] = print) -> None:
    """Stop what the run ``killed_run`` (its id) left running, and say so.

    A build step or check runs in a process group of its own, which its run
    stops when the command ends or the run is interrupted. A run killed with
    SIGKILL (or by the OOM killer) stops nothing: its check would go on,
    writing build output and test files under the next run's checks. Every
    such command carries its run's id in its environment
    (``CONTINUITY_RUN_ID``), and a run keeps its id in ``run.lock`` until
    it ends: `exclusive` finds there the id of a run that was killed, and
    calls this with the checkout's lock held. Each process with that id
    (read in ``/proc/PID/environ``, where we may) has its process group
    stopped: SIGTERM, then SIGKILL after the grace. What a run that ended
    left on purpose (a daemon that detached itself) is not touched. Without
    ``/proc`` it does nothing.
    """
    mark = "\0{}={}\0".format(RUN_ID, killed_run).encode()
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return
    ours = {os.getpid(), os.getpgid(0)}
    groups: dict[int, list[int]] = {}
    for pid in pids:
        try:
            with open("/proc/{}/environ".format(pid), "rb") as environ:
                if mark not in b"\0" + environ.read():
                    continue
            group = os.getpgid(pid)
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if pid not in ours and group not in ours:
            groups.setdefault(group, []).append(pid)
    if not groups:
        return
    found = sorted(pid for members in groups.values() for pid in members)
    say("stopping {} process(es) a killed run left running in this checkout: {}".format(
        len(found), _some([_describe_process(pid) for pid in found])))
    _proc.stop_groups(list(groups), found)


def _describe_process(pid: int) -> str:
    try:
        with open("/proc/{}/cmdline".format(pid), "rb") as cmdline:
            words = cmdline.read().split(b"\0")
    except OSError:
        words = []
    return "pid {} {}".format(pid, one_line(b" ".join(words).decode("utf-8", "replace").strip())[:60] or "?")


@dataclass(frozen=True)
class Here:
    """The checkout as it is, for the tasks that build or check it in place (``fab continuity.build``, ``test``)."""

    workspace: Workspace
    revision: str  # HEAD
    uncommitted: tuple[str, ...]  # tracked files whose content differs from HEAD
    env: Mapping[str, str]  # the environment of its build steps and checks (`command_env`)

    @property
    def committed(self) -> bool:
        return not self.uncommitted

    @property
    def note(self) -> str:
        """What a summary adds about uncommitted changes ("" when there are none)."""
        if self.committed:
            return ""
        return " with uncommitted changes to {} tracked file(s)".format(len(self.uncommitted))

    def kept(self, say: Callable[[str], None] = print) -> AbstractContextManager[None]:
        """Put the checkout back when the block ends, as the pipeline does, if it was clean at the start.

        With uncommitted changes it is left alone: those are the user's work.
        """
        return restored_head(self.workspace, say, in_place=True) if self.committed else nullcontext()

    def verifier(self) -> Callable[[str, Any], None] | None:
        """``verify(culprit, result)`` after a step or check, as in the pipeline; None with uncommitted
        changes, which a step or check may legitimately be part of."""
        if not self.committed:
            return None
        return lambda culprit, result: require_candidate(self.workspace, self.revision, culprit, result)


def checkout_here(settings: Settings) -> Here:
    """The `Here` of the current directory's checkout, for the line of ``settings``.

    Its build steps and checks see ``CONTINUITY_REVISION`` (HEAD),
    ``CONTINUITY_BRANCH`` (the line's master) and ``CONTINUITY_BASE`` (master
    as last fetched from the remote, or HEAD when it was never fetched).
    """
    ws = open_workspace(".", settings.git_timeout)
    head, changed = checkout_state(ws.git)
    if not head or ws.git.commit(head) is None:
        raise UsageError("this checkout has no commit yet; commit your work first")
    master = settings.branches.master
    base = ws.git.commit("refs/remotes/{}/{}".format(settings.remote, master)) or head
    return Here(ws, head, tuple(changed), command_env(ws, head, base, master))


def require_clean(ws: Workspace) -> None:
    dirty = ws.start()[2]
    if dirty:
        shown = ", ".join(dirty[:5]) + (" and {} more".format(len(dirty) - 5) if len(dirty) > 5 else "")
        raise UsageError(
            "the checkout has uncommitted changes to tracked files ({}); commit or stash them: "
            "continuity checks out the revisions it tests and deploys".format(shown)
        )


def checkout_state(git: Git) -> tuple[str | None, list[str]]:
    """(HEAD's commit, [tracked paths that differ from it in the index or the work tree]).

    One ``git status``: cheap enough to run after every build step and check.
    Untracked files (build output) do not count, nor untracked files in submodules.
    """
    head, _, changed = _status(git, "untracked")
    return head, changed


def _status(git: Git, ignore_submodules: str) -> tuple[str | None, str | None, list[str]]:
    """One ``git status --porcelain=v2 --branch``, parsed (`_parse_status`); untracked files never count."""
    proc = git.call("status", "--porcelain=v2", "--branch", "--untracked-files=no",
                    "--ignore-submodules=" + ignore_submodules, "-z")
    if proc.returncode:
        raise GitError("git status failed: {}".format((proc.stderr.strip().splitlines() or ["?"])[-1]))
    return _parse_status(proc.stdout)


def _parse_status(out: str) -> tuple[str | None, str | None, list[str]]:
    """(HEAD's commit, its branch ref or None when detached, [changed tracked paths]) from ``status --porcelain=v2 --branch -z``."""
    head = branch = None
    changed: list[str] = []
    records = iter(out.split("\0"))
    for record in records:
        if record.startswith("# branch.oid "):
            oid = record[len("# branch.oid "):]
            head = oid if oid != "(initial)" else None
        elif record.startswith("# branch.head "):
            name = record[len("# branch.head "):]
            branch = "refs/heads/" + name if name != "(detached)" else None
        elif record[:2] in _FIELDS_BEFORE_PATH:
            changed.append(record.split(" ", _FIELDS_BEFORE_PATH[record[:2]])[-1])
            if record.startswith("2 "):
                next(records, None)  # a rename's original path
    return head, branch, changed


def flagged_paths(git: Git) -> frozenset[str]:
    """Tracked paths git is told not to look at (skip-worktree, assume-unchanged).

    ``git status`` does not see edits to those: a check that flags a file and
    then edits it would change the tree the next checks test while the
    checkout looks clean. ``git ls-files -v`` shows the flags: ``S`` for
    skip-worktree, a lowercase tag for assume-unchanged.
    """
    out = git.run("ls-files", "-v", "-z")
    return frozenset(record[2:] for record in out.split("\0")
                     if len(record) > 2 and (record[0] == "S" or record[0].islower()))


#: ``git status --porcelain=v2`` records: the number of fields before the path.
_FIELDS_BEFORE_PATH = {"1 ": 8, "2 ": 9, "u ": 10}


def require_candidate(ws: Workspace, sha: str, culprit: str, result: Any = None) -> None:
    """The checkout is still exactly ``sha``, else `CommandFailed` naming ``culprit``.

    A build step or check that checks out another revision, commits, or edits
    tracked files would have the checks that follow it test another tree than
    the one we push.
    """
    head, changed = checkout_state(ws.git)
    hidden = sorted(flagged_paths(ws.git) - ws.flagged)
    if head == sha and not changed and not hidden:
        return
    what = []
    if head != sha:
        what.append("moved HEAD to {}".format((head or "?")[:12]))
    if changed:
        what.append("changed tracked files: " + _some(changed))
    if hidden:
        what.append("hid tracked files from git status (skip-worktree or assume-unchanged): " + _some(hidden))
    raise CommandFailed(
        "{} {} (the revision checked out is {}); build steps and checks must leave the checkout as they found "
        "it: write build output to untracked files (.gitignore), and do not check out, commit, edit or flag "
        "tracked files".format(culprit, " and ".join(what), sha[:12]),
        result,
    )


def _some(paths: list[str]) -> str:
    more = " and {} more".format(len(paths) - 5) if len(paths) > 5 else ""
    return ", ".join(paths[:5]) + more


@contextmanager
def exclusive(ws: Workspace, clean: bool = True, say: Callable[[str], None] = print) -> Iterator[None]:
    """Only one continuity run per checkout at a time; it starts from a clean checkout (unless not ``clean``).

    ``run.lock`` holds this run's pid and id while it runs, and is emptied
    when it ends. An id found there when we take the lock is a run that was
    killed: what it left running is stopped first (`stop_killed_run`, which
    tells ``say``).
    """
    os.makedirs(ws.state_dir, exist_ok=True)
    with open(os.path.join(ws.state_dir, "run.lock"), "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = " ".join(handle.read().split()[:2]) or "another process"
            raise UsageError(
                "another continuity run ({}) is using this checkout; wait for it to finish".format(holder)
            ) from None
        handle.seek(0)
        left = handle.read().split()  # "pid N run ID" of a run that never got to its end
        if len(left) == 4 and left[2] == "run":
            stop_killed_run(left[3], say)
        handle.seek(0)
        handle.truncate()
        handle.write("pid {} run {}".format(os.getpid(), ws.run_id))
        handle.flush()
        try:
            if clean:
                require_clean(ws)
            yield
        finally:
            handle.seek(0)
            handle.truncate()  # ended: nothing of ours is left for a later run to stop
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def restored_head(ws: Workspace, say: Callable[[str], None] = print, in_place: bool = False) -> Iterator[None]:
    """Put HEAD back (branch or detached commit) when the block ends.

    Where to put it back is read just before the block's first checkout
    (`Git.before_checkout`): only a checkout moves HEAD before a build step,
    check or deploy runs in it. A task that never checked anything out
    (nothing to do, a skipped deploy) has nothing to put back, and asks git
    nothing, neither at the start nor at the end. ``in_place``: the block
    runs commands in the checkout as it is (``fab continuity.test``): read
    it at once, and always look at the end.
    """
    checkouts = ws.git.checkouts
    note = partial(_note_start, ws)
    if in_place:
        note()
    else:
        ws.git.before_checkout.append(note)
    try:
        yield
    finally:
        if note in ws.git.before_checkout:  # nothing was checked out
            ws.git.before_checkout.remove(note)
        if in_place or ws.git.checkouts != checkouts:
            _put_back(ws, say)


def _note_start(ws: Workspace) -> None:
    ws.start()
    ws.flagged = flagged_paths(ws.git)


def _put_back(ws: Workspace, say: Callable[[str], None]) -> None:
    # The run started clean, so tracked changes now are the build's or a
    # check's, never the user's: put the checkout back exactly, files a
    # check hid from git status included.
    branch, sha, _ = ws.start()
    hidden = sorted(flagged_paths(ws.git) - ws.flagged)
    if hidden:
        for flag in ("--no-skip-worktree", "--no-assume-unchanged"):  # one per call: the last one given wins
            ws.git.call("update-index", flag, "--", *hidden)
    head, on_branch, changed = _status(ws.git, "all")  # one status: where HEAD is, and what changed
    if hidden or (on_branch, head) != (branch, sha) or changed:
        _return_to(ws.git, branch, sha, say)


def _return_to(git: Git, branch: str | None, sha: str | None, say: Callable[[str], None]) -> None:
    # Detach first, then point HEAD at the branch: no branch name is ever
    # parsed as an option by `git checkout`.
    target = (git.commit(branch) if branch else None) or sha
    if target is None:  # there was no commit to return to
        return
    try:
        git.checkout(target, force=True)
        if branch:
            git.run("symbolic-ref", "HEAD", branch)
    except GitError as exc:
        say("warning: could not check out {} again: {}".format(branch or sha, exc))
