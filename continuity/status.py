"""``fab continuity.status`` and ``fab continuity.init``."""

from .errors import UsageError
from .ledger import Ledger, LedgerDamaged
from .pipeline import _check_remote, check_branch_names, missing_branches, push_master_command, remote_heads
from .report import Reporter
from .workspace import open_workspace

__all__ = ["show_status", "init_branches"]

_SHOWN = 10  # commits listed per comparison


def show_status(settings, out=None):
    """Print each branch's revision and what each one lacks; missing ones fail."""
    rep = Reporter(out)
    ws = open_workspace(".", settings.git_timeout)
    git, b = ws.git, settings.branches
    _check_remote(git, settings.remote)
    names = list(dict.fromkeys([b.development, b.master, b.production]))
    heads = remote_heads(git, settings.remote, names)
    if heads:
        git.fetch(settings.remote, *["+refs/heads/{0}:refs/remotes/{1}/{0}".format(n, settings.remote) for n in heads])
    for name in names:
        rep.say("{:<12} {}".format(name, heads[name][:12] if name in heads else "missing on " + settings.remote))
    for ahead, behind in ((b.development, b.master), (b.master, b.production)):
        if ahead in heads and behind in heads and ahead != behind:
            _compare(rep, git, ahead, heads[ahead], behind, heads[behind])
            # The other way round only when it holds something: production after a hotfix that has
            # not reached master yet, master with merge commits development never got.
            _compare(rep, git, behind, heads[behind], ahead, heads[ahead], also=True)
    damaged = _deployed(rep, git, settings, heads.get(b.master))
    missing = [n for n in names if n not in heads]
    if missing:
        raise missing_branches(settings, missing)
    if damaged:
        raise damaged


def _compare(rep, git, ahead, ahead_sha, behind, behind_sha, also=False):
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


def _deployed(rep, git, settings, master_sha):
    """Per environment: what runs there, how far behind master, the last event.

    Returns the `LedgerDamaged` of the first environment whose records
    cannot be read (after listing the others), or None.
    """
    ledger = Ledger.of(git, settings)
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
        rep.say(line)
    return damaged


def _against_master(git, deployed, master_sha, master):
    """", N commit(s) behind master", and what it runs that master lacks (a hotfix), if anything."""
    text = ", {} commit(s) behind {}".format(git.count("{}..{}".format(deployed, master_sha)), master)
    extra = git.count("{}..{}".format(master_sha, deployed))
    return text + (", and runs {} commit(s) that {} lacks".format(extra, master) if extra else "")


def init_branches(settings, dry_run=False, out=None):
    """Create the line's missing branches on the remote at master's revision."""
    rep = Reporter(out)
    ws = open_workspace(".", settings.git_timeout)
    git, b = ws.git, settings.branches
    _check_remote(git, settings.remote)
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
