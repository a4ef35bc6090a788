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

import os
import shlex
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from invoke import task

from . import build as _build
from . import config as _config
from . import merge as _merge
from . import test as _test
from ._task import boundary
from ._text import redact
from .deploy import deploy_revision, find_deploy_task, redeploy_command
from .errors import ContinuityError, DeployError, GitError, UsageError
from .ledger import Ledger, build_url
from .lock import remote_lock
from .report import Reporter, RunRecord
from .workspace import exclusive, open_workspace, require_candidate, restored_head

__all__ = ["pipeline", "status", "init", "run_pipeline", "preflight", "fetch_branches", "reach",
           "check_branch_names", "sync_development", "Outcome"]

_HEADS = "refs/heads/"


@dataclass
class Outcome:
    """What a pipeline run did, for the summary and for callers."""

    state: str = "running"  # nothing-to-do | planned | pushed | deployed
    base: str = ""
    candidate: str = ""
    development: str = ""
    deployed: dict = field(default_factory=dict)


LINE_HELP = "The development line to work on (a name under continuity.lines); default: the main line."


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
    """The pipeline as a function; returns an `Outcome` or raises.

    Whatever happens, the run ends with the summary, then the JUnit report
    (``junit`` or ``continuity.junit``) and the notifications.
    """
    junit = _config.absolute_path(junit) if junit else None  # now: a deploy task may chdir
    rep = reporter or Reporter()
    outcome = Outcome()
    ws = None
    try:
        with rep.stage("preflight") as info:
            ws, deploy_task = _preflight(settings)
            info["detail"] = "{} at {}".format(settings.remote, redact(ws.git.remote_url(settings.remote)) or "?")
        with exclusive(ws), restored_head(ws, say=rep.say), ExitStack() as held:
            _run(c, settings, ws, deploy_task, rep, outcome, dry_run, held)
    except ContinuityError as exc:
        summary = "FAILED: " + _failure_summary(exc, outcome, settings)
        _after_run(settings, rep, _record(settings, ws, rep, outcome, summary, exc), junit)
        rep.summary(summary)
        raise
    except BaseException as exc:
        _after_run(settings, rep, _record(settings, ws, rep, outcome, "stopped", exc), junit)
        rep.summary("stopped")
        raise
    summary = _success_summary(outcome, settings)
    _after_run(settings, rep, _record(settings, ws, rep, outcome, summary), junit)
    rep.summary(summary)
    return outcome


def _record(settings, ws, rep, outcome, summary, exc=None):
    """The `RunRecord` handed to the JUnit writer and the notifiers."""
    failed = [stage for stage in rep.stages if stage.status == "FAILED"]
    result = getattr(exc, "result", None)
    record = RunRecord(
        task="pipeline",
        line=getattr(settings, "line", "") or "main",
        ok=exc is None,
        state=outcome.state if exc is None else "failed",
        summary=summary,
        stages=list(rep.stages),
        checks=list(rep.checks),
        error=str(exc) if exc is not None else "",
        failed_stage=failed[-1].name if failed else "",
        failed_command=getattr(result, "command", "") or "",
        output_tail=getattr(result, "tail", "") or "",
        revisions={"base": outcome.base, "development": outcome.development, "candidate": outcome.candidate},
        deployed=dict(outcome.deployed),
        build_url=build_url(),
        remote=settings.remote,
        branches=dict(vars(settings.branches)),
    )
    if ws is not None and outcome.base and outcome.development:
        try:
            record.commits = ws.git.commits("{}..{}".format(outcome.base, outcome.development))
        except GitError:
            pass
    return record


@contextmanager
def reported(settings, rep, task_name, run):
    """Give a task other than the pipeline the same JUnit report and notifications.

    ``run`` is a dict the task fills as it goes: ``revisions``, ``deployed``,
    ``commits``, ``state`` and ``summary``.
    """
    try:
        yield run
    except BaseException as exc:
        _after_run(settings, rep, _task_record(settings, rep, task_name, run, exc), None)
        raise
    _after_run(settings, rep, _task_record(settings, rep, task_name, run), None)


def _task_record(settings, rep, task_name, run, exc=None):
    failed = [stage for stage in rep.stages if stage.status == "FAILED"]
    result = getattr(exc, "result", None)
    return RunRecord(
        task=task_name,
        line=settings.line,
        ok=exc is None,
        state=run.get("state", "done") if exc is None else "failed",
        summary=run.get("summary", "") if exc is None else "FAILED: " + (str(exc).splitlines() or [""])[0],
        stages=list(rep.stages),
        checks=list(rep.checks),
        error=str(exc) if exc is not None else "",
        failed_stage=failed[-1].name if failed else (task_name if exc is not None else ""),
        failed_command=getattr(result, "command", "") or "",
        output_tail=getattr(result, "tail", "") or "",
        revisions=dict(run.get("revisions", {})),
        commits=list(run.get("commits", [])),
        deployed=dict(run.get("deployed", {})),
        build_url=build_url(),
        remote=settings.remote,
        branches=dict(vars(settings.branches)),
    )


def _after_run(settings, rep, record, junit):
    """JUnit report and notifications: they never change the run's result."""
    path = junit or settings.junit
    if path:
        from .junit import write_report

        try:
            write_report(path, record)
            rep.say("junit report written to {}".format(path))
        except OSError as exc:
            rep.say("warning: could not write the junit report {}: {}".format(path, exc))
    if settings.notify is not None:
        from .notify import send

        send(settings.notify, record, say=rep.say)


def _preflight(settings):
    return preflight(settings, need_deploy=bool(settings.auto_deploy))


def preflight(settings, need_deploy, names=None):
    """Check the ground before changing anything; return (workspace, deploy task or None).

    The checkout, the user's deploy task (when ``need_deploy``), the remote,
    the branch names, a clean work tree, and the branches on the remote
    (``names``, default the line's three).
    """
    ws = open_workspace(".", settings.git_timeout)
    deploy_task = find_deploy_task(settings.deploy_task) if need_deploy else None
    _check_remote(ws.git, settings.remote)
    check_branch_names(ws.git, settings)
    if ws.git.run("rev-parse", "--is-shallow-repository") == "true":
        raise UsageError(
            "this checkout is a shallow clone; continuity needs the history to merge and compare: run "
            "`git fetch --unshallow {}` (in Jenkins: turn off the git plugin's shallow clone)".format(settings.remote)
        )
    _require_branches(ws.git, settings, names or list(vars(settings.branches).values()))
    return ws, deploy_task


def check_branch_names(git, settings):
    """Every branch of the line is a name git accepts; else a `UsageError` naming the setting."""
    for role, name in vars(settings.branches).items():
        if not git.valid_branch(name):
            raise UsageError("continuity.branches.{}: {!r} is not a valid git branch name".format(role, name))


def reach(settings):
    """The checkout's `Git`, once the remote is configured and answers (for read-only tasks)."""
    git = open_workspace(".", settings.git_timeout).git
    _check_remote(git, settings.remote)
    remote_heads(git, settings.remote, [settings.branches.master])
    return git


def _require_branches(git, settings, names):
    """The remote answers and has every branch in ``names``; else a `UsageError`."""
    heads = remote_heads(git, settings.remote, names)
    missing = [name for name in dict.fromkeys(names) if name not in heads]
    if missing:
        raise missing_branches(settings, missing)
    return heads


def missing_branches(settings, missing):
    """The `UsageError` for branches the remote lacks, with the way to create them."""
    if settings.branches.master in missing:
        return UsageError(
            "remote '{0}' has no '{1}' branch: push your main line there first "
            "({2}), or set continuity.branches.master; then `fab continuity.init{3}` creates the others".format(
                settings.remote, settings.branches.master, push_master_command(settings), settings.line_option)
        )
    return UsageError(
        "remote '{}' has no branch {}; create {} with `fab continuity.init{}`".format(
            settings.remote, " and no branch ".join("'{}'".format(m) for m in missing),
            "it" if len(missing) == 1 else "them", settings.line_option,
        )
    )


def push_master_command(settings):
    """The git command that puts the checkout's revision on the remote as the line's master."""
    return shlex.join(["git", "push", settings.remote, "HEAD:refs/heads/" + settings.branches.master])


def _check_remote(git, remote):
    remotes = git.remotes()
    if remote not in remotes:
        known = ", ".join(remotes) if remotes else "none"
        raise UsageError(
            "remote '{}' is not configured in this checkout (remotes: {}); set continuity.remote "
            "or add it with `git remote add`".format(remote, known)
        )


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
        outcome.base, outcome.development = base, pinned
        if git.is_ancestor(pinned, base):
            outcome.state = "nothing-to-do"
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
            candidate = _merge.prepare(git, base, development, _merge_message(settings), (branches.development, branches.master))
            outcome.candidate = candidate.sha
            info["detail"] = "{} {}".format("fast-forward to" if candidate.fast_forward else "merge commit", candidate.sha[:12])
        decisions = _build.plan(git, settings.build, candidate.sha, ws.build_stamps)
        if dry_run:
            _print_plan(rep, git, settings, candidate, decisions)
            outcome.state = "planned"
            return
        git.checkout(candidate.sha)
        env = _command_env(candidate, settings)
        _build.run_stage(rep, ws, decisions, candidate.sha, env, verify=_verifier(ws, candidate.sha))
        if settings.docker is not None:
            with rep.stage("image") as info:
                info["detail"] = _docker().pipeline_build(settings, ws, candidate, rep)
        with rep.stage("check") as info:
            _test.run_checks(settings.checks, ws.root, env=env, say=rep.say, record=rep.command,
                             verify=_verifier(ws, candidate.sha))
            count = len(settings.checks)
            if settings.docker is not None:
                count += _docker().pipeline_checks(settings, ws, candidate, rep)
            info["detail"] = "{} check(s) passed".format(count) if count else "no checks configured (continuity.checks)"
        with rep.stage("push") as info:
            require_candidate(ws, candidate.sha, "the build or the checks")
            lock.check("pushing " + branches.master)  # a run that lost its lock pushes nothing
            pushed = _push(git, settings, candidate)
            info["detail"] = _push_detail(pushed, settings, candidate)
            info["status"] = "ok" if pushed else "refused"
        if pushed:
            outcome.state = "pushed"
            sync_development(git, settings, candidate.development, candidate.sha, rep.say)
            if settings.docker is not None:
                with rep.stage("publish") as info:
                    info["detail"] = _docker().pipeline_publish(settings, ws, candidate, rep)
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


def _docker():
    from . import docker

    return docker


def fetch_branches(git, settings, names=None, dry_run=False):
    """Fetch the line's branches (or ``names``); return {branch name: sha}.

    A missing branch is a `UsageError` pointing to ``fab continuity.init``.
    A dry run fetches objects only: no local ref moves.
    """
    names = list(dict.fromkeys(names or vars(settings.branches).values()))
    heads = _require_branches(git, settings, names)
    if dry_run:
        git.fetch_objects(settings.remote, *[_HEADS + n for n in names])
        if all(git.commit(sha) for sha in heads.values()):
            return heads
        raise ContinuityError("a branch moved on {} while fetching; run again".format(settings.remote))
    tracking = ["refs/remotes/{}/{}".format(settings.remote, n) for n in names]
    git.fetch(settings.remote, *["+{}{}:{}".format(_HEADS, n, t) for n, t in zip(names, tracking)])
    # Pin what was fetched, not what ls-remote saw: a branch may move between.
    return {name: git.commit(ref) for name, ref in zip(names, tracking)}


def remote_heads(git, remote, names):
    """{branch name: sha} for those of ``names`` that exist on ``remote``."""
    try:
        refs = git.ls_remote(remote, *[_HEADS + n for n in names])
    except GitError as exc:
        raise UsageError(
            "cannot reach remote '{}' ({}): {}; check `git remote -v` and your credentials".format(
                remote, redact(git.remote_url(remote)) or "no URL", str(exc).split(" failed: ", 1)[-1]
            )
        ) from None
    return {ref[len(_HEADS):]: sha for ref, sha in refs.items() if ref[len(_HEADS):] in names}


def _merge_message(settings):
    message = "Merge {} into {}\n\nTested and merged by continuity.".format(
        settings.branches.development, settings.branches.master
    )
    if build_url():  # on master for good, since master never rewinds: redacted
        message += "\nBuild: " + build_url()
    return message


def _command_env(candidate, settings):
    return dict(
        os.environ,
        CONTINUITY_REVISION=candidate.sha,
        CONTINUITY_BASE=candidate.base,
        CONTINUITY_BRANCH=settings.branches.master,
    )


def _verifier(ws, sha):
    """``verify(culprit, result)`` for build steps and checks: the checkout is still ``sha``."""
    return lambda culprit, result: require_candidate(ws, sha, culprit, result)


def _push(git, settings, candidate):
    """The compare-and-swap: None when refused, else the `PushResult`."""
    ref = _HEADS + settings.branches.master
    result = git.push(settings.remote, [(candidate.sha, ref)], leases=[(ref, candidate.base)])
    return result if result.ok else None


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
    ref = _HEADS + name
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
                    say=rep.say, how="pipeline",
                )
            except ContinuityError as exc:
                # Master has moved, so the next pipeline run has nothing to do: whatever
                # stopped the deploy (the task, a lock, the ledger), say how to deploy again.
                exc.message = "{}; once fixed, `{}` deploys {}".format(
                    exc.message, redeploy_command(settings, environment), outcome.candidate[:12])
                raise
            outcome.deployed[environment] = result
            rep.say("deploy: {}: {}".format(environment, result))
        info["detail"] = ", ".join("{} {}".format(env, r.split(":")[0]) for env, r in outcome.deployed.items())
    outcome.state = "deployed"


def _advance_production(git, settings, candidate, rep):
    """With production in auto_deploy, the production branch follows what is deployed there."""
    production = settings.branches.production
    current = remote_heads(git, settings.remote, [production]).get(production)
    if current == candidate:
        return
    refusal = _production_refusal(git, settings, candidate, current)
    if refusal:
        raise refusal
    ref = _HEADS + production
    if not git.push(settings.remote, [(candidate, ref)], leases=[(ref, current or "")]).ok:
        raise DeployError("{} moved on {} meanwhile; production was not deployed".format(production, settings.remote))
    rep.say("deploy: {} {} -> {} (production is in auto_deploy)".format(production, (current or "")[:12], candidate[:12]))


def _production_refusal(git, settings, candidate, current=None):
    """The `DeployError` when the production branch has commits ``candidate`` lacks, else None."""
    production = settings.branches.production
    current = current or remote_heads(git, settings.remote, [production]).get(production)
    if not current or current == candidate:
        return None
    git.fetch_objects(settings.remote, _HEADS + production)
    if git.is_ancestor(current, candidate):
        return None
    return DeployError(
        "{} has commits {} lacks (a hotfix not merged back?); production was not deployed. Merge {} into "
        "{} and run the pipeline again.".format(production, settings.branches.master, production,
                                                settings.branches.development))


def _print_plan(rep, git, settings, candidate, decisions):
    """The stages a run would go through, in the order they run; refusals as the run would refuse."""
    say = lambda text: rep.say("plan: " + text)  # noqa: E731
    docker = _docker().pipeline_plan(settings, candidate) if settings.docker is not None else {}
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


# -- status and init ----------------------------------------------------------


@task(help={"line": LINE_HELP})
@boundary
def status(c, line=None):
    """Show where each branch and environment stands and what each one lacks."""
    from .status import show_status

    show_status(_config.settings(c, line=line))


@task(help={"dry_run": "Say which branches would be created, create nothing.", "line": LINE_HELP})
@boundary
def init(c, dry_run=False, line=None):
    """Create the missing development/production branches on the remote from master."""
    from .status import init_branches

    init_branches(_config.settings(c, line=line), dry_run=dry_run)
