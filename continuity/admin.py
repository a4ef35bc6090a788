"""Looking after a line: ``status``, ``init``, ``locks`` and ``unlock``.

``status`` shows where each branch and environment stands; ``init`` creates
the line's missing branches; ``locks`` lists the locks held on the remote and
``unlock`` breaks one whose run is dead. None of them builds, checks or
deploys anything.
"""

from __future__ import annotations

from typing import Callable, TextIO

from invoke import Context, task

from . import config as _config
from . import results as _results
from .boundary import LINE_HELP, boundary, confirm
from .config import Settings
from .errors import LockError, UsageError
from .git import Git
from .ledger import Ledger, LedgerDamaged
from .lock import assessment, break_lock, describe_age, list_locks, who
from .remote import (
    Snapshot,
    check_branch_names,
    check_remote,
    missing_branches,
    push_master_command,
    reach,
    remote_heads,
)
from .report import Reporter
from .workspace import open_workspace

__all__ = ["status", "init", "locks", "unlock", "show_status", "init_branches"]

_SHOWN = 10  # commits listed per comparison


def show_status(settings: Settings, out: TextIO | None = None) -> None:
    """Print each branch's revision and what each one lacks; missing ones fail."""
    rep = Reporter(out)
    b = settings.branches
    names = list(dict.fromkeys([b.development, b.master, b.production]))
    snapshot = reach(settings, names)  # one fetch: the branches and every ledger
    git, heads = snapshot.git, snapshot.heads
    tested = _tested(snapshot, settings, rep.say)
    for name in names:
        mark = ", " + tested(heads[name]) if name in heads and name in (b.master, b.production) else ""
        rep.say("{:<12} {}{}".format(name, heads[name][:12] if name in heads else "missing on " + settings.remote, mark))
    for ahead, behind in ((b.development, b.master), (b.master, b.production)):
        if ahead in heads and behind in heads and ahead != behind:
            _compare(rep, git, ahead, heads[ahead], behind, heads[behind])
            # The other way round only when it holds something: production after a hotfix that has
            # not reached master yet, master with merge commits development never got.
            _compare(rep, git, behind, heads[behind], ahead, heads[ahead], also=True)
    damaged = _deployed(rep, snapshot, settings, heads.get(b.master), tested)
    missing = [n for n in names if n not in heads]
    if missing:
        raise missing_branches(settings, missing)
    if damaged:
        raise damaged


def _compare(rep: Reporter, git: Git, ahead: str, ahead_sha: str, behind: str, behind_sha: str,
             also: bool = False) -> None:
    rev_range = "{}..{}".format(behind_sha, ahead_sha)
    count = git.count(rev_range)
    if not count:
        if not also:
            rep.say("{} has nothing that {} lacks".format(ahead, behind))
        return
    rep.say("{} {}has {} commit(s) that {} lacks:".format(ahead, "also " if also else "", count, behind))
    for sha, subject, author in git.log(rev_range, limit=_SHOWN):
        rep.say("    {} {} ({})".format(sha[:12], subject, author))
    if count > _SHOWN:
        rep.say("    ... and {} more".format(count - _SHOWN))


def _tested(snapshot: Snapshot, settings: Settings, say: Callable[[str], None]) -> Callable[[str], str]:
    """``tested(revision)``: "tested" or "not tested (why)", from the results the snapshot holds."""
    store = _results.load(snapshot.git, settings.remote, snapshot)
    if store.warning:
        say("warning: " + store.warning)
    # The branches' trees in one read (an environment mostly runs one of them); the others as they come.
    b, heads = settings.branches, snapshot.heads
    store.for_trees([snapshot.git.tree(heads[name]) for name in (b.master, b.production) if name in heads])
    return lambda revision: _results.tested_mark(store, snapshot.git, revision, settings)


def _deployed(rep: Reporter, snapshot: Snapshot, settings: Settings, master_sha: str | None,
              tested: Callable[[str], str]) -> LedgerDamaged | None:
    """Per environment: what runs there, how far behind master, the last event.

    Returns the `LedgerDamaged` of the first environment whose records
    cannot be read (after listing the others), or None.
    """
    git = snapshot.git
    ledger = Ledger.of(git, settings, snapshot)
    names = list(dict.fromkeys(list(settings.known_environments()) + ledger.environments()))
    damaged = None
    for environment in names:
        try:
            state = ledger.state(environment, limit=1)
        except LedgerDamaged as exc:
            rep.say("{:<12} ledger damaged (see the error below)".format(environment))
            damaged = damaged or exc
            continue
        if not state.deployed and not state.entries:
            rep.say("{:<12} nothing deployed yet".format(environment))
            continue
        line = "{:<12} runs {}".format(environment, state.deployed[:12] if state.deployed else "nothing recorded")
        if master_sha and state.deployed and git.commit(state.deployed):
            line += _against_master(git, state.deployed, master_sha, settings.branches.master)
        if state.entries:
            last = state.entries[0]
            line += "; last: {} {} {} by {}".format(last.result, last.revision[:12], last.time, last.by)
        if state.deployed and git.commit(state.deployed):
            line += "; " + tested(state.deployed)
        rep.say(line)
    return damaged


def _against_master(git: Git, deployed: str, master_sha: str, master: str) -> str:
    """", N commit(s) behind master", and what it runs that master lacks (a hotfix), if anything."""
    text = ", {} commit(s) behind {}".format(git.count("{}..{}".format(deployed, master_sha)), master)
    extra = git.count("{}..{}".format(master_sha, deployed))
    return text + (", and runs {} commit(s) that {} lacks".format(extra, master) if extra else "")


def init_branches(settings: Settings, dry_run: bool = False, out: TextIO | None = None) -> list[str]:
    """Create the line's missing branches on the remote at master's revision."""
    rep = Reporter(out)
    ws = open_workspace(".", settings.git_timeout)
    git, b = ws.git, settings.branches
    check_remote(git, settings.remote)
    check_branch_names(git, settings)
    names = list(dict.fromkeys([b.development, b.master, b.production]))
    heads = remote_heads(git, settings.remote, names)
    if b.master not in heads:
        raise UsageError(
            "remote '{}' has no '{}' branch to start from; push your main line there first "
            "({}) or set continuity.branches.master".format(settings.remote, b.master, push_master_command(settings))
        )
    missing = [n for n in names if n not in heads]
    if not missing:
        rep.say("all branches exist on {}: {}; nothing to do".format(settings.remote, ", ".join(names)))
        return []
    start = heads[b.master]
    rep.say("will create {} on {} at {}'s revision {}".format(
        ", ".join("'{}'".format(m) for m in missing), settings.remote, b.master, start[:12]))
    if dry_run:
        rep.say("dry run: nothing was created")
        return missing
    git.fetch(settings.remote, "+refs/heads/{0}:refs/remotes/{1}/{0}".format(b.master, settings.remote))
    refs = ["refs/heads/" + m for m in missing]
    result = git.push(settings.remote, [(start, ref) for ref in refs], leases=[(ref, "") for ref in refs])
    if not result.ok:
        raise UsageError("another process created some of {} meanwhile; run `fab continuity.status{}`".format(
            ", ".join(missing), settings.line_option))
    rep.say("created {} on {}".format(", ".join("'{}'".format(m) for m in missing), settings.remote))
    return missing


# -- the tasks ---------------------------------------------------------------------


@task(help={"line": LINE_HELP})
@boundary
def status(c: Context, line: str | None = None) -> None:
    """Show where each branch and environment stands and what each one lacks."""
    show_status(_config.settings(c, line=line))


@task(help={"dry_run": "Say which branches would be created, create nothing.", "line": LINE_HELP})
@boundary
def init(c: Context, dry_run: bool = False, line: str | None = None) -> None:
    """Create the missing development/production branches on the remote from master."""
    init_branches(_config.settings(c, line=line), dry_run=dry_run)


@task(help={"line": LINE_HELP})
@boundary
def locks(c: Context, line: str | None = None) -> None:
    """List the locks held on the remote: who holds each, for how long, and whether its run is gone."""
    snapshot, settings = _reach(c, line)
    held = list_locks(snapshot, settings)
    for name, _, info in held:
        state, lead_in = assessment(info, settings)
        hint = "{}: fab continuity.unlock {}{}".format(lead_in, name, settings.line_option)
        print("{:<24} held by {} ({} old)".format(name, who(info), describe_age(info)))
        print("{:<24} {}".format("", "; ".join(filter(None, [state, hint]))))
    if not held:
        print("no locks are held on {}".format(settings.remote))


@task(
    help={
        "name": "The lock to break, as `fab continuity.locks` lists it: pipeline, deploy-staging, ...",
        "yes": "Do not ask for confirmation (for CI).",
        "line": LINE_HELP,
    }
)
@boundary
def unlock(c: Context, name: str, yes: bool = False, line: str | None = None) -> None:
    """Break a lock whose run is dead (after saying who held it)."""
    snapshot, settings = _reach(c, line)
    git = snapshot.git
    held = {lock_name: (token, info) for lock_name, token, info in list_locks(snapshot, settings)}
    if name not in held:
        raise UsageError("no lock {!r} is held on {} (held: {})".format(name, settings.remote, ", ".join(sorted(held)) or "none"))
    token, info = held[name]
    state, _ = assessment(info, settings)
    print("lock {} is held by {} ({} old){}".format(name, who(info), describe_age(info), "; " + state if state else ""))
    confirm("Break it? Only do this if that run is dead.", yes)
    if not break_lock(git, settings, name, token):
        raise LockError("lock {} changed hands meanwhile; nothing was broken".format(name))
    print("lock {} broken".format(name))


def _reach(c: Context, line: str | None) -> tuple[Snapshot, Settings]:
    settings = _config.settings(c, line=line)
    return reach(settings), settings
