"""Deploying on purpose: ``deploy``, ``promote``, ``rollback`` and ``history``.

Every one of them goes through the user's deploy task with the checkout at
exactly the revision deployed, under the environment's lock on the remote,
and leaves an entry in the ledger (see `continuity.ledger`).

* ``promote`` is the manual step to production: it fast-forwards the
  production branch to a revision of master, pushes it, and deploys it.
* ``deploy ENV`` deploys master (or a revision on master) to any configured
  environment but production, which only ``promote`` and hotfixes move.
* ``rollback ENV`` redeploys the previous good revision and marks the one it
  replaces as bad; a revision marked bad is not deployed again unless forced.
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any

from invoke import Context, task

from . import config as _config
from . import docker as _docker
from . import results as _results
from ._text import safe
from .boundary import JUNIT_HELP, LINE_HELP, boundary, confirm
from .config import Environment, Settings
from .deploy import DeployPolicy, deploy_decision, deploy_revision, preflight
from .errors import ContinuityError, UsageError
from .git import Git, RefUpdate
from .ledger import Ledger, State
from .lock import holder_of
from .publish import reported
from .record import RunState, start_record
from .remote import HEADS, reach, read_remote
from .report import Reporter
from .workspace import exclusive, restored_head

__all__ = ["deploy", "promote", "rollback", "history"]

Heads = dict[str, str]  # branch name -> sha, as fetched

_SHOWN = 10


def _resolve(git: Git, settings: Settings, name: str, heads: Heads) -> str | None:
    """A commit for ``name``: a branch just fetched, a branch on the remote (Jenkins has no local
    ones), then any revision git knows."""
    if name in heads:
        return heads[name]
    return git.commit("refs/remotes/{}/{}".format(settings.remote, name)) or git.commit(name)


def _revision(git: Git, name: str | None, settings: Settings, heads: Heads) -> str:
    """``name`` resolved to a commit that is on master (default: master's tip)."""
    master = settings.branches.master
    master_sha = heads[master]
    if not name:
        return master_sha
    sha = _resolve(git, settings, name, heads)
    if sha is None:
        raise UsageError("unknown revision {!r}; give a commit, tag or branch that exists on the remote".format(name))
    if not git.is_ancestor(sha, master_sha):
        raise UsageError("{} is not on {}: only revisions on {} are deployed".format(name, master, master))
    return sha


def _tested_only(git: Git, settings: Settings, revision: str, force: bool, command: list[str],
                 policy: DeployPolicy, snapshot: Any) -> DeployPolicy:
    """A revision named with --revision must have passed every check on its tree; ``--force`` lets it through,
    and the policy then says so (the ledger entry gets ``forced: true``). ``command`` is the task's, to rerun."""
    refusal = _results.untested_refusal(git, settings, revision, shlex.join(command + ["--force"]) + settings.line_option,
                                        snapshot)
    if refusal is None:
        return policy
    if not force:
        raise UsageError(refusal)
    return dataclasses.replace(policy, forced=True)


def _environment(settings: Settings, name: str) -> Environment:
    name = _config.environment_name(name)
    if name not in settings.known_environments():
        raise UsageError(
            "unknown environment {!r}; configured: {} (continuity.environments, auto_deploy, "
            "production_environment)".format(name, ", ".join(settings.known_environments()))
        )
    return settings.environment(name)


# -- deploy ---------------------------------------------------------------------


@task(
    name="deploy",
    help={
        "environment": "The environment to deploy to (one of continuity.environments or auto_deploy).",
        "revision": "A revision on master to deploy instead of master's tip (may be older than what runs).",
        "force": "Deploy even a revision marked bad by a rollback, or one whose tree was never tested.",
        "dry_run": "Say what would be deployed; deploy and record nothing.",
        "line": LINE_HELP,
        "junit": JUNIT_HELP,
    },
)
@boundary
def deploy(c: Context, environment: str, revision: str | None = None, force: bool = False, dry_run: bool = False,
           line: str | None = None, junit: str | None = None) -> None:
    """Deploy master (or a revision on it) to an environment, through your deploy task."""
    settings = _config.settings(c, line=line)
    junit = _config.absolute_path(junit) if junit else None  # now: a deploy task may chdir
    target = _environment(settings, environment)
    if target.name == settings.production_environment:
        raise UsageError("production moves with the production branch: use `fab continuity.promote{}` (or a "
                         "hotfix)".format(settings.line_option))
    rep = Reporter()
    ws, user_task = preflight(settings, need_deploy=True, names=[settings.branches.master])
    with exclusive(ws, say=rep.say), restored_head(ws, say=rep.say):
        snapshot = read_remote(ws.git, settings, [settings.branches.master], dry_run=dry_run)
        sha = _revision(ws.git, revision, settings, snapshot.heads)
        policy = DeployPolicy.manual(revision, force)
        if revision:
            policy = _tested_only(ws.git, settings, sha, force,
                                  ["fab", "continuity.deploy", target.name, "--revision", revision], policy, snapshot)
        state = Ledger.of(ws.git, settings, snapshot).state(target.name)
        current = state.deployed
        rep.say("plan: deploy {} to {} (now running: {}){}".format(
            sha[:12], target.name, current[:12] or "nothing recorded", _forced_note(policy)))
        if dry_run:
            _dry_run_decision(rep, ws.git, settings, state, target.name, sha, policy)
            rep.say("dry run: nothing was deployed or recorded")
            return
        record = start_record("deploy", settings, revisions={"candidate": sha, "base": current})
        with reported(settings, rep, record, junit):
            result = deploy_revision(c, user_task, ws.git, settings, target, sha, say=rep.say,
                                     policy=policy, snapshot=snapshot)
            record.deployed, record.state = {target.name: result}, RunState.DEPLOYED
            record.summary = "{}: {}".format(target.name, result)
            rep.say("result: {}: {}".format(target.name, result))


def _forced_note(policy: DeployPolicy) -> str:
    return "; untested, deployed because of --force" if policy.forced else ""


def _dry_run_decision(rep: Reporter, git: Git, settings: Settings, state: State, environment: str, revision: str,
                      policy: DeployPolicy) -> None:
    """Refuse, or say it would skip, exactly as the deploy would (the ledger may change before it runs)."""
    skip = deploy_decision(git, settings, state, environment, revision, policy)
    if skip:
        rep.say("plan: {}: {}".format(environment, skip))


# -- promote --------------------------------------------------------------------


@task(
    help={
        "revision": "A revision on master to promote instead of master's tip (its tree must have passed every check).",
        "force": "Promote a --revision whose tree was never tested.",
        "yes": "Do not ask for confirmation (for CI, which has no terminal).",
        "dry_run": "Print the plan; move, push and deploy nothing.",
        "line": LINE_HELP,
        "junit": JUNIT_HELP,
    }
)
@boundary
def promote(c: Context, revision: str | None = None, force: bool = False, yes: bool = False,
            dry_run: bool = False, line: str | None = None, junit: str | None = None) -> None:
    """Move production to master's revision (fast-forward only), push, deploy production."""
    settings = _config.settings(c, line=line)
    junit = _config.absolute_path(junit) if junit else None  # now: a deploy task may chdir
    b = settings.branches
    rep = Reporter()
    ws, user_task = preflight(settings, need_deploy=True, names=[b.master, b.production, b.development])
    git = ws.git
    with exclusive(ws, say=rep.say), restored_head(ws, say=rep.say):
        snapshot = read_remote(git, settings, [b.master, b.production, b.development], dry_run=dry_run)
        heads = snapshot.heads
        target = _revision(git, revision, settings, heads)
        production = heads[b.production]
        _require_fast_forward(git, settings, production, target, heads[b.master], heads[b.development])
        policy = DeployPolicy.promote()
        if revision:
            policy = _tested_only(git, settings, target, force, ["fab", "continuity.promote", "--revision", revision],
                                  policy, snapshot)
        environment = settings.environment(settings.production_environment)
        state = Ledger.of(git, settings, snapshot).state(environment.name)
        if target in state.bad:
            raise UsageError(
                "{} is marked bad for {} (a rollback replaced it); fix forward: let the pipeline bring a "
                "fix to {}, then promote that".format(target[:12], environment.name, b.master))
        if production == target and state.deployed == target:
            rep.say("nothing to do: {} is at {} and {} runs it".format(b.production, target[:12], environment.name))
            return
        _print_promotion(rep, git, settings, production, target, environment.name)
        if dry_run:
            _dry_run_decision(rep, git, settings, state, environment.name, target, policy)
            _docker.before_promote(settings, target)  # promote refuses a revision without a tested image
            rep.say("dry run: nothing was moved, pushed or deployed")
            return
        confirm("Promote {} to {}?".format(target[:12], environment.name), yes)
        record = start_record("promote", settings, revisions={"base": production, "candidate": target},
                              commits=git.commits("{}..{}".format(production, target)) if production != target else [])
        with reported(settings, rep, record, junit):
            _docker.before_promote(settings, target)  # the tested image exists, before anything moves
            # production moves in the push that takes the deploy lock (and writes the ledger intent)
            result = deploy_revision(c, user_task, git, settings, environment, target, say=rep.say,
                                     policy=policy, snapshot=snapshot,
                                     rides=_move_production(settings, production, target),
                                     moved=lambda: _production_moved(settings),
                                     landed=lambda: _docker.after_promote(settings, ws, target, rep.say))
            record.deployed, record.state = {environment.name: result}, RunState.DEPLOYED
            record.summary = "{} at {}; {}: {}".format(b.production, target[:12], environment.name, result)
            rep.say("result: " + record.summary)


def _require_fast_forward(git: Git, settings: Settings, production: str, target: str, master: str,
                          development: str) -> None:
    b = settings.branches
    if git.is_ancestor(production, target):
        return
    if not git.is_ancestor(production, master) and git.is_ancestor(production, development):
        raise UsageError(
            "{0} has {1} commit(s) that {2} lacks, but {3} has them: run the pipeline to bring {3} to {2}, "
            "then promote.".format(b.production, git.count("{}..{}".format(master, production)), b.master,
                                   b.development))
    if not git.is_ancestor(production, master):
        lacking = git.log("{}..{}".format(master, production), limit=_SHOWN)
        listed = "; ".join("{} {}".format(sha[:12], subject) for sha, subject, _ in lacking)
        raise UsageError(
            "{0} has {1} commit(s) that {2} lacks ({3}): a hotfix not merged back? Merge {0} into {4} "
            "and let the pipeline bring it to {2}, then promote.".format(
                b.production, git.count("{}..{}".format(master, production)), b.master, listed, b.development)
        )
    raise UsageError(
        "{} is at {}, newer than {}: promote only moves it forward. To go back, use "
        "`fab continuity.rollback {}{}`.".format(b.production, production[:12], target[:12],
                                                 settings.production_environment, settings.line_option)
    )


def _print_promotion(rep: Reporter, git: Git, settings: Settings, production: str, target: str,
                     environment: str) -> None:
    b = settings.branches
    if production == target:
        rep.say("plan: {} is already at {}; deploy it to {}".format(b.production, target[:12], environment))
        return
    commits = git.log("{}..{}".format(production, target), limit=_SHOWN)
    count = git.count("{}..{}".format(production, target)) if commits else 0
    rep.say("plan: move {} {} -> {} ({} commit(s)), push to {}, deploy {} to {}".format(
        b.production, production[:12], target[:12], count, settings.remote, target[:12], environment))
    for sha, subject, author in commits:
        rep.say("    {} {} ({})".format(sha[:12], subject, author))
    if count > len(commits):
        rep.say("    ... and {} more".format(count - len(commits)))


def _move_production(settings: Settings, production: str, target: str) -> list[RefUpdate]:
    """The production branch from ``production`` to ``target``, for the push that takes the deploy lock."""
    if production == target:
        return []
    return [RefUpdate(HEADS + settings.branches.production, target, production)]


def _production_moved(settings: Settings) -> ContinuityError:
    return ContinuityError("{} moved on {} meanwhile; nothing was pushed. Run promote again.".format(
        settings.branches.production, settings.remote))


# -- rollback -------------------------------------------------------------------


@task(
    help={
        "environment": "The environment to roll back.",
        "revision": "The revision to go back to (default: the previous good deploy in the ledger); its tree must "
                    "have passed every check.",
        "force": "Go back to a --revision whose tree was never tested.",
        "dry_run": "Say what would be redeployed and marked bad; change nothing.",
        "line": LINE_HELP,
        "junit": JUNIT_HELP,
    }
)
@boundary
def rollback(c: Context, environment: str, revision: str | None = None, force: bool = False,
             dry_run: bool = False, line: str | None = None, junit: str | None = None) -> None:
    """Redeploy the previous good revision of an environment and mark the replaced one bad."""
    settings = _config.settings(c, line=line)
    junit = _config.absolute_path(junit) if junit else None  # now: a deploy task may chdir
    target = _environment(settings, environment)
    b = settings.branches
    rep = Reporter()
    ws, user_task = preflight(settings, need_deploy=True, names=[b.master, b.production])
    git = ws.git
    with exclusive(ws, say=rep.say), restored_head(ws, say=rep.say):
        snapshot = read_remote(git, settings, [b.master, b.production], dry_run=dry_run)
        heads = snapshot.heads
        state = Ledger.of(git, settings, snapshot).state(target.name)
        if not state.deployed:
            raise UsageError("nothing is recorded as deployed to {}; there is nothing to roll back".format(target.name))
        back = _rollback_target(git, settings, state, revision, target.name, heads)
        if revision and not any(git.is_ancestor(back, heads[n]) for n in (b.master, b.production)):
            raise UsageError("{} is on neither {} nor {}: only revisions on those branches are deployed".format(
                revision, b.master, b.production))
        policy = DeployPolicy.rollback(state.deployed)
        if revision:
            policy = _tested_only(git, settings, back, force,
                                  ["fab", "continuity.rollback", target.name, "--revision", revision], policy,
                                  snapshot)
        rep.say("plan: redeploy {} to {} in place of {}, and mark {} bad for {}".format(
            back[:12], target.name, state.deployed[:12], state.deployed[:12], target.name))
        if dry_run:
            _dry_run_decision(rep, git, settings, state, target.name, back, policy)
            rep.say("dry run: nothing was deployed or recorded")
            return
        record = start_record("rollback", settings, revisions={"base": state.deployed, "candidate": back})
        with reported(settings, rep, record, junit):
            result = deploy_revision(c, user_task, git, settings, target, back, say=rep.say,
                                     policy=policy, snapshot=snapshot)
            record.deployed, record.state = {target.name: result}, RunState.DEPLOYED
            record.summary = "{}: {}; {} marked bad".format(target.name, result, state.deployed[:12])
            rep.say("result: " + record.summary)


def _rollback_target(git: Git, settings: Settings, state: State, revision: str | None, environment: str,
                     heads: Heads) -> str:
    if revision:
        sha = _resolve(git, settings, revision, heads)
        if sha is None:
            raise UsageError("unknown revision {!r}; fetch it or give a full commit id".format(revision))
        if sha == state.deployed:
            raise UsageError("{} already runs {}; name an earlier revision".format(environment, sha[:12]))
        return sha
    back = state.previous_good(state.deployed)
    if back is None:
        raise UsageError(
            "the ledger has no earlier good deploy of {}; name one with --revision".format(environment)
        )
    if git.commit(back) is None:
        raise UsageError("{} (the previous deploy) is no longer on the remote's branches".format(back[:12]))
    return back


# -- history --------------------------------------------------------------------


@task(
    auto_shortflags=False,
    help={
        "environment": "The environment whose deploys to list.",
        "limit": "How many entries to show, newest first (default: 20).",
        "line": LINE_HELP,
    }
)
@boundary
def history(c: Context, environment: str, limit: str | None = None, line: str | None = None) -> None:
    """List the deploys of an environment from the ledger on the remote, newest first."""
    settings = _config.settings(c, line=line)
    name = _config.environment_name(environment)
    try:
        count = int(limit) if limit is not None else 20
    except ValueError:
        raise UsageError("--limit takes a whole number, got {!r}".format(limit)) from None
    snapshot = reach(settings)  # one fetch: every ledger and lock of the remote
    state = Ledger.of(snapshot.git, settings, snapshot).state(name, limit=max(count, 1))
    held, gone = holder_of(snapshot, settings.refs_prefix + "locks/deploy-" + name)
    if not state.entries:
        print("no deploys of {} are recorded on {}".format(name, settings.remote))
        return
    bad = state.bad
    print("{:<20} {:<8} {:<12} {:<9} {}".format("time", "result", "revision", "task", "by"))
    for entry in state.entries:
        mark = " (marked bad)" if entry.result == "deployed" and entry.revision in bad else ""
        if entry.unsettled:
            running = entry is state.entries[0] and held and not gone  # its run still holds the lock
            mark = " (in progress)" if running else " (no outcome recorded: the run stopped)"
        extra = "".join("  {}={}".format(k, v) for k, v in sorted(entry.extra.items()))
        # safe(): an entry written by an older continuity may hold credentials in its BUILD_URL.
        print(safe("{:<20} {:<8} {:<12} {:<9} {}{}{}".format(
            entry.time, entry.result, entry.revision[:12], entry.task, entry.by, mark, extra)))
