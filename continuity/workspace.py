"""The checkout continuity works in (a Jenkins workspace, or yours).

continuity needs a clean checkout of tracked files: it checks out the
candidate to build and test it, and the deployed revision to deploy it. It
takes a local lock so two runs never share one checkout, and it puts HEAD back
where it found it when it is done, whatever happened.
"""

import fcntl
import os
from contextlib import contextmanager

from .errors import GitError, UsageError
from .git import Git

__all__ = ["open_workspace", "Workspace"]


class Workspace:
    def __init__(self, git, git_dir):
        self.git = git
        self.root = git.path
        self.state_dir = os.path.join(git_dir, "continuity")

    @property
    def build_stamps(self):
        return os.path.join(self.state_dir, "builds")


def open_workspace(path=".", timeout=300):
    """The `Workspace` containing ``path``; `UsageError` outside a checkout."""
    probe = Git(path, timeout)
    try:
        root = probe.toplevel()
        git_dir = probe.git_dir()
    except GitError:
        raise UsageError(
            "{} is not inside a git checkout; run fab from your project's repository "
            "(in Jenkins: from the workspace root)".format(os.path.abspath(path))
        ) from None
    if not root:
        raise UsageError("continuity needs a checkout with a work tree, not a bare repository")
    return Workspace(Git(root, timeout), git_dir)


def require_clean(ws):
    dirty = ws.git.dirty_files()
    if dirty:
        shown = ", ".join(dirty[:5]) + (" and {} more".format(len(dirty) - 5) if len(dirty) > 5 else "")
        raise UsageError(
            "the checkout has uncommitted changes to tracked files ({}); commit or stash them: "
            "continuity checks out the revisions it tests and deploys".format(shown)
        )


@contextmanager
def exclusive(ws):
    """Only one continuity run per checkout at a time; it starts from a clean checkout."""
    os.makedirs(ws.state_dir, exist_ok=True)
    with open(os.path.join(ws.state_dir, "run.lock"), "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UsageError(
                "another continuity run ({}) is using this checkout; wait for it to finish".format(holder)
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write("pid {}".format(os.getpid()))
        handle.flush()
        try:
            require_clean(ws)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def restored_head(ws, say=print):
    """Put HEAD back (branch or detached commit) when the block ends."""
    branch, sha = ws.git.head()
    try:
        yield
    finally:
        # The run started clean, so tracked changes now are the build's or a
        # check's, never the user's: put the checkout back exactly.
        if ws.git.head() != (branch, sha) or ws.git.dirty_files():
            _return_to(ws.git, branch, sha, say)


def _return_to(git, branch, sha, say):
    # Detach first, then point HEAD at the branch: no branch name is ever
    # parsed as an option by `git checkout`.
    target = (git.commit(branch) if branch else None) or sha
    try:
        git.checkout(target, force=True)
        if branch:
            git.run("symbolic-ref", "HEAD", branch)
    except GitError as exc:
        say("warning: could not check out {} again: {}".format(branch or sha, exc))
