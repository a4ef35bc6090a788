"""Hotfixes: a branch from production, merged back into production and development.

``fab continuity.hotfix.start NAME`` creates ``hotfix/NAME`` (the prefix is
``continuity.hotfix.prefix``) on the remote at production's revision.

``fab continuity.hotfix.finish NAME`` then, each step skipping what is
already done so that running it again continues where it stopped:

1. merges the hotfix into production and into development, in memory
   (a conflict on either side stops here: nothing is pushed);
2. runs the build steps whose inputs changed and the checks on the new
   production tree, as the pipeline does (same stamps, same records);
3. pushes production, development and the optional tag in one atomic push;
4. deploys production when ``continuity.hotfix.deploy`` is true;
5. deletes the hotfix branch.

master gets the fix the usual way: the pipeline merges development into it.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Optional

from invoke import Collection, Context, task

from . import build as _build
from . import config as _config
from . import merge as _merge
from . import results as _results
from . import test as _test
from ._proc import Result
from .boundary import JUNIT_HELP, LINE_HELP, boundary
from .build import Decision
from .config import BuildStep, Settings
from .deploy import DeployPolicy, deploy_decision, deploy_revision, preflight
from .errors import ContinuityError, UsageError
from .git import Git, RefUpdate
from .ledger import Ledger
from .publish import reported
from .record import RunState, start_record
from .remote import HEADS, Snapshot, missing_branches, read_remote, remote_heads
from .report import Reporter
from .stage import Candidate
from .workspace import Workspace, command_env, exclusive, require_candidate, restored_head

__all__ = ["ns", "start", "finish"]

Heads = dict[str, str]  # branch name -> sha, as fetched
Plan = dict[str, Optional[Candidate]]  # side (production, development) -> its merge, None when it has the hotfix

def _finish_command(settings: Settings, name: str) -> str:
    """The command that runs finish again for hotfix ``name``, as a user types it."""
    argument = ["--name=" + name] if name.startswith("-") else [name]
    return shlex.join(["fab", "continuity.hotfix.finish"] + argument) + settings.line_option


def _advice(settings: Settings, name: str) -> str:
    """What to do after a conflict (a template for `merge.prepare`: {0} incoming, {1} receiving).

    Never "merge the other side into the hotfix": that would ship
    unreleased development work to production.
    """
    again = _finish_command(settings, name).replace("{", "{{").replace("}", "}}")
    return ("Merge '{0}' into '{1}' by hand, resolve the conflicts, push '{1}', then run `" + again
            + "` again: it skips the side that already has the hotfix.")


def _branch(settings: Settings, git: Git, name: str) -> str:
    branch = settings.hotfix.prefix + name
    if not name or not git.valid_branch(branch):
        raise UsageError("{!r} is not a valid hotfix name: {!r} is not a legal branch name".format(name, branch))
    if branch in vars(settings.branches).values():
        raise UsageError("{!r} is one of the line's own branches; pick another hotfix name".format(branch))
    return branch


@task(
    help={
        "name": "The hotfix's name; the branch is continuity.hotfix.prefix + NAME (hotfix/NAME).",
        "dry_run": "Say what would be created; create nothing.",
        "line": LINE_HELP,
    }
)
@boundary
def start(c: Context, name: str, dry_run: bool = False, line: str | None = None) -> None:
    """Create hotfix/NAME on the remote from production's revision."""
    settings = _config.settings(c, line=line)
    rep = Reporter()
    ws, _ = preflight(settings, need_deploy=False, names=[settings.branches.production])
    branch = _branch(settings, ws.git, name)
    heads = remote_heads(ws.git, settings.remote, [settings.branches.production, branch])  # one ls-remote
    if settings.branches.production not in heads:
        raise missing_branches(settings, [settings.branches.production])
    if branch in heads:
        raise UsageError("{} already exists on {} (at {}); finish it or pick another name".format(
            branch, settings.remote, heads[branch][:12]))
    production = heads[settings.branches.production]
    rep.say("plan: create {} on {} at {}'s revision {}".format(branch, settings.remote, settings.branches.production, production[:12]))
    if dry_run:
        rep.say("dry run: nothing was created")
        return
    ref = HEADS + branch
    if not ws.git.push(settings.remote, [(production, ref)], leases=[(ref, "")]).ok:
        raise ContinuityError("{} was created by someone else meanwhile".format(branch))
    rep.say("created {}; work on it with: {} && {}".format(
        branch, shlex.join(["git", "fetch", settings.remote]),
        shlex.join(["git", "switch", "-c", branch, "{}/{}".format(settings.remote, branch)])))


@task(
    help={
        "name": "The hotfix's name (as given to hotfix.start).",
        "tag": "Tag production's new revision with this name (default: continuity.hotfix.tag, if set).",
        "dry_run": "Print the plan; merge, check, push, deploy and delete nothing.",
        "line": LINE_HELP,
        "junit": JUNIT_HELP,
    }
)
@boundary
def finish(c: Context, name: str, tag: str | None = None, dry_run: bool = False, line: str | None = None,
           junit: str | None = None) -> None:
    """Check hotfix/NAME, merge it into production and development, push, tag, deploy, delete it."""
    settings = _config.settings(c, line=line)
    junit = _config.absolute_path(junit) if junit else None  # now: a deploy task may chdir
    b = settings.branches
    rep = Reporter()
    ws, user_task = preflight(settings, need_deploy=settings.hotfix.deploy, names=[b.production, b.development])
    git = ws.git
    branch = _branch(settings, git, name)
    tag = _tag(settings, git, name, tag)
    with exclusive(ws, say=rep.say), restored_head(ws, say=rep.say):
        # One read: both sides, the hotfix branch and the ledgers.
        snapshot = read_remote(git, settings, [b.production, b.development, branch], dry_run=dry_run, require=False)
        heads = snapshot.heads
        missing = [n for n in (b.production, b.development) if n not in heads]
        if missing:
            raise missing_branches(settings, missing)
        if branch not in heads:
            look = ("`fab continuity.history {}{}` shows its deploy".format(settings.production_environment,
                                                                            settings.line_option)
                    if settings.hotfix.deploy else "`fab continuity.status{}` shows where {} stands".format(
                        settings.line_option, b.production))
            raise UsageError("no branch {} on {}: nothing to finish (if it was finished, {})".format(
                branch, settings.remote, look))
        plan = _plan(git, settings, branch, heads, _advice(settings, name))
        candidate = plan["production"]
        decisions = _build.plan(git, settings.build, candidate.sha, ws.build_stamps) if candidate else []
        skip = _deploy_decision(git, settings, heads, plan, snapshot) if settings.hotfix.deploy else None
        _say_plan(rep, settings, branch, heads, plan, tag, decisions)
        if skip:
            rep.say("plan: {}: {}".format(settings.production_environment, skip))
        if dry_run:
            rep.say("dry run: nothing was merged, built, checked, pushed, deployed or deleted")
            return
        record = start_record("hotfix", settings, revisions={"base": heads[b.production], "candidate": heads[branch]},
                              commits=git.commits("{}..{}".format(heads[b.production], heads[branch])))
        with reported(settings, rep, record, junit):
            records: list[_results.Recorded] = []
            store = None
            if plan["production"] is not None:
                records, store = _check(rep, ws, settings, plan["production"], decisions, snapshot)
            again = _finish_command(settings, name)
            updates, production = _updates(git, settings, heads, plan, tag)
            delete = RefUpdate(HEADS + branch, "", heads[branch])
            results = _results_ride(rep, git, settings, records, store)
            deleted = []
            if settings.hotfix.deploy:
                # The merges and the tag ride on the push that takes the deploy lock; the branch's deletion on
                # the one that records the deploy.
                environment = settings.environment(settings.production_environment)
                result = deploy_revision(c, user_task, git, settings, environment, production, say=rep.say,
                                         policy=DeployPolicy.hotfix(), snapshot=snapshot, rides=updates,
                                         moved=lambda: _moved(settings, again),
                                         after=[delete] + results, after_landed=lambda: deleted.append(True))
                record.deployed = {environment.name: result}
                rep.say("deploy: {}: {}".format(environment.name, result))
            else:
                deleted += _push(git, settings, updates, delete, again, results)
            if not deleted and not git.transact(settings.remote, [delete]).ok:
                raise ContinuityError(
                "{} moved while finishing; its new commits are not merged yet: run "
                "`{}` again".format(branch, again))
            record.state = RunState.FINISHED
            record.summary = "{} finished; {} at {}; {} deleted".format(name, b.production, production[:12], branch)
            if not settings.hotfix.deploy:  # the branch moved, the environment did not: say so
                record.summary += "; the {} environment was not deployed (continuity.hotfix.deploy is off)".format(
                    settings.production_environment)
            rep.say("result: " + record.summary)


def _deploy_decision(git: Git, settings: Settings, heads: Heads, plan: Plan, snapshot: Snapshot) -> str | None:
    """Refuse what the deploy would refuse (a damaged ledger, a revision marked bad) before production moves."""
    environment = settings.production_environment
    revision = plan["production"].sha if plan["production"] else heads[settings.branches.production]
    state = Ledger.of(git, settings, snapshot).state(environment)
    return deploy_decision(git, settings, state, environment, revision, DeployPolicy.hotfix())


def _tag(settings: Settings, git: Git, name: str, tag: str | None) -> str | None:
    tag = tag if tag is not None else settings.hotfix.tag.replace("{name}", name)
    if tag and not git.ok("check-ref-format", "refs/tags/" + tag):
        raise UsageError("{!r} is not a valid tag name (continuity.hotfix.tag or --tag)".format(tag))
    return tag or None


def _plan(git: Git, settings: Settings, branch: str, heads: Heads, advice: str) -> Plan:
    """The merges still to do: {side: Candidate, or None when that side already has it}.

    Development receives what production will be, not just the hotfix: when
    production needs a merge commit, development gets it too, so production
    never has a commit that master (through development) lacks and the next
    promote can fast-forward.
    """
    b, hot = settings.branches, heads[branch]
    production = None
    if not git.is_ancestor(hot, heads[b.production]):
        message = "Merge {} into {}\n\nHotfix finished by continuity.".format(branch, b.production)
        production = _merge.prepare(git, heads[b.production], hot, message, (branch, b.production), advice=advice)
    result = production.sha if production else heads[b.production]
    development = None
    if not git.is_ancestor(result, heads[b.development]):
        incoming = branch if result == hot else "{} (with {})".format(b.production, branch)
        message = "Merge {} into {}\n\nHotfix finished by continuity.".format(incoming, b.development)
        development = _merge.prepare(git, heads[b.development], result, message, (branch, b.development), advice=advice)
    return {"production": production, "development": development}


def _say_plan(rep: Reporter, settings: Settings, branch: str, heads: Heads, plan: Plan, tag: str | None,
              decisions: Sequence[Decision]) -> None:
    b = settings.branches
    for side, name in (("production", b.production), ("development", b.development)):
        candidate = plan[side]
        if candidate is None:
            rep.say("plan: {} already has {}".format(name, branch))
        else:
            kind = "fast-forward" if candidate.fast_forward else "merge commit"
            rep.say("plan: merge {} into {} ({}) -> {}".format(branch, name, kind, candidate.sha[:12]))
    for line in _build.plan_lines(decisions):
        rep.say("plan: " + line)
    if plan["production"] is not None:
        rep.say("plan: run {} check(s) on {}".format(len(settings.checks), plan["production"].sha[:12]))
    if tag:
        rep.say("plan: tag {} as {}".format(b.production, tag))
    if settings.hotfix.deploy:
        rep.say("plan: deploy {} to {}".format(b.production, settings.production_environment))
    rep.say("plan: delete {} on {}".format(branch, settings.remote))


def _check(rep: Reporter, ws: Workspace, settings: Settings, candidate: Candidate,
           decisions: Sequence[Decision], snapshot: Snapshot) -> tuple[list[_results.Recorded], _results.Store]:
    """Build and check production's new revision, as the pipeline builds and checks master's.

    Checks that already passed on its tree are reused, as in the pipeline
    (a hotfix merge often gives a tree that was tested); returns what ran,
    to be recorded on the remote with the push that moves production, and
    the results as read.
    """
    ws.git.checkout(candidate.sha)
    tree = ws.git.tree(candidate.sha)
    env = command_env(ws, candidate.sha, candidate.base, settings.branches.production)
    verify = lambda culprit, result: require_candidate(ws, candidate.sha, culprit, result)  # noqa: E731
    records: list[_results.Recorded] = []

    def built(step: BuildStep, result: Result) -> None:
        records.append(_results.recorded(_results.build_unit(step), tree, candidate.sha, result))

    _build.run_stage(rep, ws, decisions, candidate.sha, env, verify=verify, done=built)
    store = _results.load(ws.git, settings.remote, snapshot)
    with rep.stage("check") as info:
        units = _results.check_units(settings.checks)
        todo, reused = _test.split_reused(settings, store, tree, units)
        _test.say_reused(rep.say, units, todo, reused)

        def done(unit: _results.Unit, result: Result, passed: bool, attempts: int) -> None:
            records.append(_results.recorded(unit, tree, candidate.sha, result, passed, attempts))

        _test.run_units(todo, ws.root, env=env, say=rep.say, record=rep.command, verify=verify, jobs=settings.jobs,
                        done=done)
        info["detail"] = _test.check_stage_detail(len({u.name for u in todo}), reused) + " on " + candidate.sha[:12]
    require_candidate(ws, candidate.sha, "the build or the checks")
    return records, store


def _results_ride(rep: Reporter, git: Git, settings: Settings, records: Sequence[_results.Recorded],
                  store: _results.Store | None) -> list[RefUpdate]:
    """What the build and the checks did on production's new tree, as a ref update for the last push.

    It goes with the push that deletes the hotfix branch, and is dropped
    from it (with a warning) when another run moved the results meanwhile:
    the hotfix itself never waits on its results.
    """
    rides: list[RefUpdate] = []
    if records and store is not None and not _results.ride(git, settings.remote, rides, records, store, RefUpdate):
        rep.say("warning: {} result(s) not recorded: {}".format(len(records), store.warning))
    return rides


def _updates(git: Git, settings: Settings, heads: Heads, plan: Plan,
             tag: str | None) -> tuple[list[RefUpdate], str]:
    """The merges of both sides and the tag, for one atomic push; and production's new revision.

    The tag is looked up on the remote first (one ``ls-remote``, only when a
    tag is asked for): one that already names production is left as it is.
    """
    b = settings.branches
    production = plan["production"].sha if plan["production"] else heads[b.production]
    updates = []
    for side, name in (("production", b.production), ("development", b.development)):
        merged = plan[side]
        if merged is not None:
            updates.append(RefUpdate(HEADS + name, merged.sha, heads[name]))
    if tag:
        existing = git.ls_remote(settings.remote, "refs/tags/" + tag).get("refs/tags/" + tag)
        if existing and existing != production:
            raise UsageError("tag {} already exists on {} at {}; pick another with --tag".format(tag, settings.remote, existing[:12]))
        if not existing:
            updates.append(RefUpdate("refs/tags/" + tag, production, ""))
    return updates, production


def _push(git: Git, settings: Settings, updates: list[RefUpdate], delete: RefUpdate, again: str,
          results: Sequence[RefUpdate] = ()) -> list[bool]:
    """One atomic push of both sides, the tag, the branch's deletion and the results; [True] when the deletion
    went with it. Results another run moved meanwhile are left out, then the deletion."""
    if git.transact(settings.remote, updates + [delete] + list(results)).ok:
        return [True]
    if results and git.transact(settings.remote, updates + [delete]).ok:
        return [True]
    if updates and not git.transact(settings.remote, updates).ok:
        raise _moved(settings, again)
    return []


def _moved(settings: Settings, again: str) -> ContinuityError:
    b = settings.branches
    return ContinuityError(
        "{} or {} moved on {} meanwhile; nothing was pushed. Run `{}` again "
        "(if another run finished this hotfix, it will say there is nothing left to do).".format(
            b.production, b.development, settings.remote, again))


ns = Collection("hotfix", start, finish)
