"""``fab continuity.pipeline``: keep master a candidate release.

The pipeline composes the other modules, in this order:

preflight  settings, the deploy task, the checkout, the remote, branch names
fetch      pin development's revision and master's revision on the remote
merge      the candidate: development merged into master (nothing changes yet)
build      the build steps whose inputs changed, on the candidate
check      every check on exactly the candidate's tree
push       master: base -> candidate, as a compare-and-swap on the remote
deploy     the user's deploy task for each ``auto_deploy`` environment

If master moved on the remote while we were testing, the push is refused by
the remote; we never push anyway. We start again from the fetch (keeping the
pinned development revision) up to ``max_attempts`` times, testing the new
candidate from scratch.
"""

from contextlib import ExitStack

from invoke import task

from . import build as _build
from . import config as _config
from . import docker as _docker
from . import merge as _merge
from . import test as _test
from ._text import redact
from .boundary import LINE_HELP, boundary
from .deploy import DeployPolicy, deploy_revision, preflight, redeploy_command
from .errors import ContinuityError, DeployError, GitError
from .ledger import Ledger
from .lock import remote_lock
from .publish import finish
from .record import RunState, StageStatus, start_record
from .remote import HEADS, fetch_branches, remote_heads, swap
from .report import Reporter
from .workspace import command_env, exclusive, require_candidate, restored_head

__all__ = ["pipeline", "run_pipeline", "sync_development"]


@task(
    help={
        "dry_run": "Fetch, merge in memory and print the plan; build, check, push and deploy nothing.",
        "junit": "Write a JUnit XML report (a test case per stage and per check) to this path.",
        "line": LINE_HELP,
    }
)
@boundary
def pipeline(c, dry_run=False, junit=None, line=None):
    """Build, check, merge development into master, push, deploy to auto_deploy."""
    settings = _config.settings(c, line=line)
    run_pipeline(c, settings, dry_run=dry_run, junit=junit)


def run_pipeline(c, settings, dry_run=False, reporter=None, junit=None):
    """The pipeline as a function; returns its `record.RunRecord` or raises.

    The record's ``state`` says how it ended (nothing-to-do, planned, pushed,
    deployed); ``base``, ``development``, ``candidate`` and ``deployed`` what
    it worked on. Whatever happens, the run ends with the summary, then the
    JUnit report (``junit`` or ``continuity.junit``) and the notifications.
    """
    junit = _config.absolute_path(junit) if junit else None  # now: a deploy task may chdir
    rep = reporter or Reporter()
    outcome = start_record("pipeline", settings, revisions={"base": "", "development": "", "candidate": ""})
    ws = None
    try:
        with rep.stage("preflight") as info:
            ws, deploy_task = _preflight(settings)
            info["detail"] = "{} at {}".format(settings.remote, redact(ws.git.remote_url(settings.remote)) or "?")
        with exclusive(ws), restored_head(ws, say=rep.say), ExitStack() as held:
            _run(c, settings, ws, deploy_task, rep, outcome, dry_run, held)
    except ContinuityError as exc:
        summary = "FAILED: " + _failure_summary(exc, outcome, settings)
        finish(settings, rep, _with_commits(ws, outcome), exc, summary, junit=junit)
        rep.summary(summary)
        raise
    except BaseException as exc:
        finish(settings, rep, _with_commits(ws, outcome), exc, "stopped", junit=junit)
        rep.summary("stopped")
        raise
    summary = _success_summary(outcome, settings)
    finish(settings, rep, _with_commits(ws, outcome), summary=summary, junit=junit)
    rep.summary(summary)
    return outcome


def _with_commits(ws, outcome):
    """The commits the run brings in (base..development), for the notifications."""
    if ws is not None and outcome.base and outcome.development:
        try:
            outcome.commits = ws.git.commits("{}..{}".format(outcome.base, outcome.development))
        except GitError:
            pass
    return outcome


def _preflight(settings):
    return preflight(settings, need_deploy=bool(settings.auto_deploy))


def _run(c, settings, ws, deploy_task, rep, outcome, dry_run, held):
    """Fetch; when there is work, take the line's pipeline lock (``held``) and fetch again.

    A run with nothing to do never touches the lock, so a job that polls
    often stays cheap; a dry run takes no lock at all.
    """
    git, branches = ws.git, settings.branches
    development = None
    locked = dry_run
    attempt = 0
    ledgers_checked = False
    while attempt < settings.max_attempts:
        with rep.stage("fetch") as info:
            heads = fetch_branches(git, settings, dry_run=dry_run)
            pinned = development or heads[branches.development]
            base = heads[branches.master]
            info["detail"] = "{} {}, {} {}".format(branches.development, pinned[:12], branches.master, base[:12])
        outcome.revisions.update(base=base, development=pinned)
        if git.is_ancestor(pinned, base):
            outcome.state = RunState.NOTHING_TO_DO
            rep.say("nothing to do: {} already contains {} at {}".format(branches.master, branches.development, pinned[:12]))
            sync_development(git, settings, pinned, base, rep.say, dry_run=dry_run)  # an earlier run could not
            return
        if not ledgers_checked:  # a damaged ledger would refuse the deploy after master moved: refuse now
            Ledger.of(git, settings).check(settings.auto_deploy)
            ledgers_checked = True
        if not locked:
            with rep.stage("lock") as info:
                lock = held.enter_context(remote_lock(git, settings, "pipeline", say=rep.say))
                info["detail"] = "pipeline lock on {}".format(settings.remote)
            locked = True
            continue  # fetch again: another run may have moved things while we waited
        development = pinned
        attempt += 1
        with rep.stage("merge") as info:
            candidate = _merge.prepare(git, base, development, _merge.merge_message(settings), (branches.development, branches.master))
            outcome.revisions["candidate"] = candidate.sha
            info["detail"] = "{} {}".format("fast-forward to" if candidate.fast_forward else "merge commit", candidate.sha[:12])
        decisions = _build.plan(git, settings.build, candidate.sha, ws.build_stamps)
        if dry_run:
            _print_plan(rep, git, settings, candidate, decisions)
            outcome.state = RunState.PLANNED
            return
        git.checkout(candidate.sha)
        env = command_env(candidate.sha, candidate.base, branches.master)
        _build.run_stage(rep, ws, decisions, candidate.sha, env, verify=_verifier(ws, candidate.sha))
        if settings.docker is not None:
            with rep.stage("image") as info:
                info["detail"] = _docker.pipeline_build(settings, ws, candidate, rep)
        with rep.stage("check") as info:
            _test.run_checks(settings.checks, ws.root, env=env, say=rep.say, record=rep.command,
                             verify=_verifier(ws, candidate.sha))
            count = len(settings.checks)
            if settings.docker is not None:
                count += _docker.pipeline_checks(settings, ws, candidate, rep)
            info["detail"] = _test.check_stage_detail(count)
        with rep.stage("push") as info:
            require_candidate(ws, candidate.sha, "the build or the checks")
            lock.check("pushing " + branches.master)  # a run that lost its lock pushes nothing
            pushed = _push(git, settings, candidate)
            info["detail"] = _push_detail(pushed, settings, candidate)
            info["status"] = StageStatus.OK if pushed else StageStatus.REFUSED
        if pushed:
            outcome.state = RunState.PUSHED
            sync_development(git, settings, candidate.development, candidate.sha, rep.say)
            if settings.docker is not None:
                with rep.stage("publish") as info:
                    info["detail"] = _docker.pipeline_publish(settings, ws, candidate, rep)
            break
        if attempt < settings.max_attempts:
            rep.say("{} moved while we were testing; starting again on the new {} (attempt {} of {})".format(
                branches.master, branches.master, attempt + 1, settings.max_attempts))
    else:
        raise ContinuityError(
            "{0} kept moving on {1} while we tested ({2} attempts); nothing was pushed. Run the pipeline "
            "again, or raise continuity.max_attempts. Something other than continuity may be pushing "
            "to {0}.".format(branches.master, settings.remote, settings.max_attempts)
        )
    _deploy_stage(c, settings, ws, deploy_task, rep, outcome)


def _verifier(ws, sha):
    """``verify(culprit, result)`` for build steps and checks: the checkout is still ``sha``."""
    return lambda culprit, result: require_candidate(ws, sha, culprit, result)


def _push(git, settings, candidate):
    """The compare-and-swap: None when refused, else the `PushResult`."""
    return swap(git, settings.remote, settings.branches.master, candidate.sha, candidate.base)


def sync_development(git, settings, development, master, say, dry_run=False):
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
    ref = HEADS + name
    try:
        ok = git.push(settings.remote, [(master, ref)], leases=[(ref, development)]).ok
    except GitError as exc:
        say("warning: could not bring {} to {}: {}; the next run tries again".format(name, master[:12], exc))
        return
    if ok:
        say("{} brought to {} {} (fast-forward from {})".format(
            name, settings.branches.master, master[:12], development[:12]))
    elif remote_heads(git, settings.remote, [name]).get(name) != master:
        say("{} moved on {} meanwhile: left as it is; the next run merges it and brings {} along then".format(
            name, settings.remote, name))


def _push_detail(pushed, settings, candidate):
    master = settings.branches.master
    if not pushed:
        return "refused: {} moved on {} since {}".format(master, settings.remote, candidate.base[:12])
    if pushed.up_to_date:
        return "{} was already at {} (pushed by another run)".format(master, candidate.sha[:12])
    return "{} {} -> {}".format(master, candidate.base[:12], candidate.sha[:12])


def _deploy_stage(c, settings, ws, deploy_task, rep, outcome):
    if not settings.auto_deploy:
        rep.skipped("deploy", "continuity.auto_deploy is empty")
        return
    with rep.stage("deploy") as info:
        for environment in settings.auto_deploy:
            rep.say("deploy: {} to {}".format(outcome.candidate[:12], environment))
            if environment == settings.production_environment:
                _advance_production(ws.git, settings, outcome.candidate, rep)
            try:
                result = deploy_revision(
                    c, deploy_task, ws.git, settings, settings.environment(environment), outcome.candidate,
                    say=rep.say, policy=DeployPolicy.pipeline(),
                )
            except DeployError as exc:
                # The next pipeline run has nothing to do: say how to deploy again.
                raise DeployError("{}; once fixed, `{}` deploys {}".format(
                    exc, redeploy_command(settings, environment), outcome.candidate[:12])) from exc
            outcome.deployed[environment] = result
            rep.say("deploy: {}: {}".format(environment, result))
        info["detail"] = ", ".join("{} {}".format(env, r.split(":")[0]) for env, r in outcome.deployed.items())
    outcome.state = RunState.DEPLOYED


def _advance_production(git, settings, candidate, rep):
    """With production in auto_deploy, the production branch follows what is deployed there."""
    production = settings.branches.production
    current = remote_heads(git, settings.remote, [production]).get(production)
    if current == candidate:
        return
    refusal = _production_refusal(git, settings, candidate, current)
    if refusal:
        raise refusal
    ref = HEADS + production
    if not git.push(settings.remote, [(candidate, ref)], leases=[(ref, current or "")]).ok:
        raise DeployError("{} moved on {} meanwhile; production was not deployed".format(production, settings.remote))
    rep.say("deploy: {} {} -> {} (production is in auto_deploy)".format(production, (current or "")[:12], candidate[:12]))


def _production_refusal(git, settings, candidate, current=None):
    """The `DeployError` when the production branch has commits ``candidate`` lacks, else None."""
    production = settings.branches.production
    current = current or remote_heads(git, settings.remote, [production]).get(production)
    if not current or current == candidate:
        return None
    git.fetch_objects(settings.remote, HEADS + production)
    if git.is_ancestor(current, candidate):
        return None
    return DeployError(
        "{} has commits {} lacks (a hotfix not merged back?); production was not deployed. Merge {} into "
        "{} and run the pipeline again.".format(production, settings.branches.master, production,
                                                settings.branches.development))


def _print_plan(rep, git, settings, candidate, decisions):
    """The stages a run would go through, in the order they run; refusals as the run would refuse."""
    say = lambda text: rep.say("plan: " + text)  # noqa: E731
    docker = _docker.pipeline_plan(settings, candidate) if settings.docker is not None else {}
    kind = "fast-forward" if candidate.fast_forward else "merge commit"
    say("merge {} {} into {} {} ({}) -> {}".format(
        settings.branches.development, candidate.development[:12], settings.branches.master,
        candidate.base[:12], kind, candidate.sha[:12]))
    for decision in decisions:
        say("build step '{}' would {}: {}".format(decision.step.name, "run" if decision.run else "be skipped", decision.reason))
    for line in docker.get("image", []):
        say(line)
    for check in settings.checks:
        say("check $ " + check.command)
    for line in docker.get("check", []):
        say(line)
    say("push {} to {} {} (only if it is still {})".format(
        candidate.sha[:12], settings.remote, settings.branches.master, candidate.base[:12]))
    if settings.sync_development and not candidate.fast_forward:
        say("bring {} to {} (fast-forward, only if it is still {})".format(
            settings.branches.development, candidate.sha[:12], candidate.development[:12]))
    for line in docker.get("publish", []):
        say(line)
    refusal = None
    for environment in settings.auto_deploy:
        if environment == settings.production_environment:
            refusal = _production_refusal(git, settings, candidate.sha)
        say("deploy {} to {}{}".format(candidate.sha[:12], environment, ": refused (see below)" if refusal else ""))
    say("dry run: nothing was built, checked, pushed or deployed")
    if refusal:
        raise refusal


def _success_summary(outcome, settings):
    master = settings.branches.master
    if outcome.state == "nothing-to-do":
        return "nothing to do; {} is at {}".format(master, outcome.base[:12])
    if outcome.state == "planned":
        return "dry run; {} would go from {} to {}".format(master, outcome.base[:12], outcome.candidate[:12])
    text = "{} advanced {} -> {}".format(master, outcome.base[:12], outcome.candidate[:12])
    for environment, result in outcome.deployed.items():
        text += "; {}: {}".format(environment, result)
    return text


def _failure_summary(exc, outcome, settings):
    first = str(exc).splitlines()[0]
    if outcome.state in ("pushed", "deployed"):
        return "{} advanced to {}, then: {}".format(settings.branches.master, outcome.candidate[:12], first)
    return "{} untouched; {}".format(settings.branches.master, first)
