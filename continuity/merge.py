"""The candidate: development merged into master, without touching anything.

The candidate is a commit that exists only in the local object database until
the checks pass: a fast-forward when master is an ancestor of development,
otherwise a merge commit whose first parent is master. Neither branch, the
index nor the work tree changes here, so a conflict leaves nothing behind.

``fab continuity.merge`` shows what the pipeline would merge: it fetches
the line's development and master (objects only: no ref moves), makes the
candidate in memory, lists the commits it brings in, and changes nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from typing import Optional

from invoke import Context, task

from . import config as _config
from .boundary import LINE_HELP, boundary
from .config import Settings
from .errors import GitError, MergeConflict
from .git import Git
from .record import build_url
from .remote import check_ground, fetch_branches
from .report import Reporter
from .stage import Attempt, Candidate, Stage
from .workspace import open_workspace

__all__ = ["Candidate", "prepare", "merge_message", "show_merge", "STAGE"]

_SHOWN = 10  # commits listed
_How = tuple[tuple[str, str], Optional[str]]  # (incoming, receiving) branch names, and the advice on a conflict

_MERGE_TREE_VERSION = (2, 38)  # first git with `merge-tree --write-tree`


def prepare(git: Git, base: str, development: str, message: str, names: tuple[str, str] = ("development", "master"),
            advice: str | None = None) -> Candidate:
    """Return the `Candidate` for merging ``development`` into ``base``.

    ``names`` are the (incoming, receiving) branch names, for messages;
    ``advice`` replaces the default "how to fix a conflict" sentence.
    """
    if git.is_ancestor(base, development):
        return Candidate(development, base, development, True)
    if git.version() >= _MERGE_TREE_VERSION:
        sha = _merge_in_memory(git, base, development, message, (names, advice))
    else:
        sha = _merge_in_worktree(git, base, development, message, git.identity_env(), (names, advice))
    return Candidate(sha, base, development, False)


def merge_message(settings: Settings) -> str:
    """The message of the pipeline's merge commit: what was merged, by whom, in which build."""
    message = "Merge {} into {}\n\nTested and merged by continuity.".format(
        settings.branches.development, settings.branches.master
    )
    if build_url():  # on master for good, since master never rewinds: redacted
        message += "\nBuild: " + build_url()
    return message


def _merge_in_memory(git: Git, base: str, development: str, message: str, names: _How) -> str:
    proc = git.call("merge-tree", "--write-tree", "--name-only", "--no-messages", base, development)
    lines = proc.stdout.splitlines()
    if proc.returncode == 1:
        raise _conflict(lines[1:], names)
    if proc.returncode != 0 or not lines:
        raise GitError("git merge-tree failed: " + (proc.stderr.strip() or "no tree"))
    tree = lines[0].strip()
    return git.commit_tree(tree, "-p", base, "-p", development, "-m", message)


def _merge_in_worktree(git: Git, base: str, development: str, message: str, env: dict[str, str],
                       names: _How) -> str:
    """For git older than 2.38: merge in a throwaway worktree, then drop it."""
    path = tempfile.mkdtemp(prefix="continuity-merge-")
    os.rmdir(path)
    git.run("worktree", "add", "--quiet", "--detach", path, base)
    try:
        proc = git.call("-C", path, "merge", "--no-ff", "--no-edit", "-m", message, development, env=env)
        if proc.returncode != 0:
            files = git.run("-C", path, "diff", "--name-only", "--diff-filter=U").splitlines()
            if files:
                raise _conflict(files, names)
            raise GitError("git merge failed: " + (proc.stderr.strip() or proc.stdout.strip()))
        return git.run("-C", path, "rev-parse", "HEAD")
    finally:
        git.call("worktree", "remove", "--force", path)
        shutil.rmtree(path, ignore_errors=True)
        git.call("worktree", "prune")


def _conflict(files: Iterable[str], how: _How) -> MergeConflict:
    (incoming, receiving), advice = how
    files = sorted({f.strip() for f in files if f.strip()})
    listed = ", ".join(files) if files else "(git named no files)"
    advice = advice or "Merge '{1}' into '{0}', resolve the conflicts and push '{0}' again."
    return MergeConflict(
        "'{}' does not merge cleanly into '{}'; conflicting files: {}. ".format(incoming, receiving, listed)
        + advice.format(incoming, receiving),
        files,
    )


# -- the pipeline's merge stage ----------------------------------------------------------


def _run(attempt: Attempt) -> str:
    settings, b = attempt.settings, attempt.settings.branches
    candidate = prepare(attempt.git, attempt.base, attempt.development, merge_message(settings),
                        (b.development, b.master))
    attempt.candidate = candidate
    attempt.record.revisions["candidate"] = candidate.sha
    return "{} {}".format("fast-forward to" if candidate.fast_forward else "merge commit", candidate.sha[:12])


def _plan(attempt: Attempt) -> list[str]:
    b, candidate = attempt.settings.branches, attempt.candidate
    assert candidate is not None, "the merge stage runs first"
    kind = "fast-forward" if candidate.fast_forward else "merge commit"
    return ["merge {} {} into {} {} ({}) -> {}".format(
        b.development, candidate.development[:12], b.master, candidate.base[:12], kind, candidate.sha[:12])]


#: The candidate, made in memory: it changes nothing, so it runs in dry runs too.
STAGE = Stage("merge", _run, _plan, dry=True)


# -- fab continuity.merge -------------------------------------------------------------


@task(name="merge", help={"line": LINE_HELP})
@boundary
def show_merge(c: Context, line: str | None = None) -> None:
    """Show what the pipeline would merge (development into master, in memory); change nothing."""
    settings = _config.settings(c, line=line)
    b = settings.branches
    rep = Reporter()
    ws = open_workspace(".", settings.git_timeout)
    check_ground(ws, settings, [b.development, b.master])
    git = ws.git
    heads = fetch_branches(git, settings, [b.development, b.master], dry_run=True)
    development, base = heads[b.development], heads[b.master]
    rep.say("{} {}, {} {} on {}".format(b.development, development[:12], b.master, base[:12], settings.remote))
    if git.is_ancestor(development, base):
        rep.say("nothing to merge: {} already contains {} at {}".format(b.master, b.development, development[:12]))
        return
    _list_commits(rep, git, base, development, b.development, b.master)
    candidate = prepare(git, base, development, merge_message(settings), (b.development, b.master))
    kind = "fast-forward" if candidate.fast_forward else "merge commit"
    rep.say("{} merges cleanly into {} ({}) -> candidate {}".format(b.development, b.master, kind, candidate.sha[:12]))
    rep.say("nothing was merged or pushed: `fab continuity.pipeline{}` builds, checks and pushes it".format(
        settings.line_option))


def _list_commits(rep: Reporter, git: Git, base: str, development: str, incoming: str, receiving: str) -> None:
    rev_range = "{}..{}".format(base, development)
    count = git.count(rev_range)
    rep.say("{} has {} commit(s) that {} lacks:".format(incoming, count, receiving))
    for sha, subject, author in git.log(rev_range, limit=_SHOWN):
        rep.say("    {} {} ({})".format(sha[:12], subject, author))
    if count > _SHOWN:
        rep.say("    ... and {} more".format(count - _SHOWN))
