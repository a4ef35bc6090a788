"""Checks on many agents, and what was tested: ``candidate``, ``results`` and ``pipeline --candidate``.

A Jenkins job that outgrows one agent splits the pipeline in three, with the
remote as the meeting point (see docs/jenkins.rst):

1. ``fab continuity.candidate``: fetch, merge development into master in
   memory, run the build steps, and publish the candidate under
   ``refs/continuity/candidates/ID`` (`results.offer`); print the id.
2. ``fab continuity.test --candidate ID --shard I/N`` on N agents at once:
   each checks out the candidate, runs its part of the checks and records
   the results on the remote, keyed by the candidate's tree (`continuity.test`).
3. ``fab continuity.pipeline --candidate ID`` (`advance`): every check and
   every shard passed on that tree, and master is still the revision the
   candidate was made from; then the push (a compare-and-swap, as always)
   and the deploys, under the pipeline lock.

``fab continuity.results [REVISION]`` lists what was recorded for a
revision's tree.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Any

from invoke import Context, task

from . import build as _build
from . import config as _config
from . import deploy as _deploy
from . import push as _push
from . import results as _results
from ._text import safe
from .boundary import LINE_HELP, boundary
from .config import Settings
from .errors import ContinuityError, UsageError
from .git import Git, RefUpdate
from .ledger import Ledger
from .lock import remote_lock
from .merge import merge_message, prepare
from .publish import finish
from .record import RunRecord, RunState, start_record
from .remote import Snapshot, fetch_branches, reach, read_remote
from .report import Reporter
from .stage import Attempt, Candidate, perform, record_results
from .workspace import exclusive, restored_head

__all__ = ["candidate", "results", "advance"]


# -- fab continuity.candidate -------------------------------------------------------


@task(
    help={
        "output": "Also write the candidate's id to this file (for the Jenkinsfile); empty when there is nothing to do.",
        "dry_run": "Fetch, merge in memory and say which build steps would run; build and publish nothing.",
        "line": LINE_HELP,
    }
)
@boundary
def candidate(c: Context, output: str | None = None, dry_run: bool = False, line: str | None = None) -> None:
    """Merge development into master in memory, build it, publish it for agents to check; print its id."""
    settings = _config.settings(c, line=line)
    output = _config.absolute_path(output) if output else None
    _check_output(output)  # before anything is made or published: a wrong path changes nothing
    rep = Reporter()
    ws, _ = _deploy.preflight(settings, need_deploy=False)
    b = settings.branches
    with exclusive(ws, say=rep.say), restored_head(ws, say=rep.say):
        heads = fetch_branches(ws.git, settings, dry_run=dry_run)
        base, development = heads[b.master], heads[b.development]
        if ws.git.is_ancestor(development, base):
            rep.say("nothing to do: {} already contains {} at {}".format(b.master, b.development, development[:12]))
            _write(output, "")
            return
        made = prepare(ws.git, base, development, merge_message(settings), (b.development, b.master))
        if dry_run:
            decisions = _build.plan(ws.git, settings.build, made.sha, ws.build_stamps)
            for text in _build.plan_lines(decisions):
                rep.say("plan: " + text)
            rep.say("plan: publish {} ({} {} into {} {}) as {}ID on {}".format(
                made.sha[:12], b.development, development[:12], b.master, base[:12], _results.CANDIDATES,
                settings.remote))
            rep.say("dry run: nothing was built or published")
            return
        record = start_record("candidate", settings, revisions={"base": base, "development": development,
                                                                 "candidate": made.sha})
        attempt = Attempt(c, settings, ws, rep, record, base=base, development=development, candidate=made)
        try:
            attempt.check_out()
            perform(_build.STAGE, attempt)
        except ContinuityError:
            record_results(attempt)
            raise
        record_results(attempt)
        offered = _results.offer(ws.git, settings.remote, made.sha, base, development, made.fast_forward,
                                 settings.line)
    finish(settings, rep, record, summary="candidate {}".format(offered.id), send=False)
    rep.say("candidate {}: {} {} into {} {} -> {}, published as {}".format(
        offered.id, b.development, development[:12], b.master, base[:12], made.sha[:12], offered.ref))
    rep.say("check it on each agent with `fab continuity.test --candidate {0} [--shard I/N]`, then advance "
            "master with `fab continuity.pipeline --candidate {0}{1}`".format(offered.id, settings.line_option))
    _write(output, offered.id)
    print(offered.id)


def _check_output(path: str | None) -> None:
    """``--output``'s file can be written: its directory exists and is writable, and it is not a directory."""
    if not path:
        return
    directory = os.path.dirname(path)
    if os.path.isdir(path):
        raise UsageError("cannot write the candidate's id to {}: it is a directory; give a file name".format(path))
    if not os.path.isdir(directory):
        raise UsageError("cannot write the candidate's id to {}: the directory {} does not exist; create it "
                         "first".format(path, directory))
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError("cannot write the candidate's id to {}: the directory {} is not writable".format(
            path, directory))


def _write(path: str | None, text: str) -> None:
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + ("\n" if text else ""))
    except OSError as exc:
        raise UsageError("cannot write the candidate's id to {}: {}".format(path, exc.strerror or exc)) from None


# -- fab continuity.pipeline --candidate ----------------------------------------------


def advance(c: Any, settings: Settings, name: str, rep: Reporter | None = None, dry_run: bool = False,
            junit: str | None = None) -> RunRecord:
    """Advance master to the candidate ``name`` if every check and shard passed on its tree, then deploy."""
    rep = rep or Reporter()
    if settings.docker is not None:
        raise UsageError("--candidate does not build or publish Docker images yet: run `fab continuity.pipeline` "
                         "without it while continuity.docker is set")
    ws, deploy_task = _deploy.preflight(settings, need_deploy=bool(settings.auto_deploy))
    record = start_record("pipeline", settings, revisions={"base": "", "development": "", "candidate": ""})
    try:
        with exclusive(ws, say=rep.say), restored_head(ws, say=rep.say), ExitStack() as held:
            snapshot, offered = _ready(ws.git, settings, name, rep, record, dry_run)
            if offered is not None and not dry_run:
                Ledger.of(ws.git, settings, snapshot).check(settings.auto_deploy)
                with rep.stage("lock") as info:
                    lock = held.enter_context(remote_lock(ws.git, settings, "pipeline", say=rep.say))
                    info["detail"] = "pipeline lock on {}".format(settings.remote)
                if lock.waited:  # someone may have advanced it while we waited
                    snapshot, offered = _ready(ws.git, settings, name, rep, record)
            if offered is None or dry_run:
                if offered is not None:
                    _plan(rep, settings, offered)
                finish(settings, rep, record, summary=record.summary, junit=junit, send=False)
                rep.summary(record.summary)
                return record
            made = Candidate(offered.sha, offered.base, offered.development, offered.fast_forward)
            stages = [_build.STAGE, _push.STAGE, _deploy.STAGE]
            attempt = Attempt(c, settings, ws, rep, record, base=offered.base, development=offered.development,
                              deploy_task=deploy_task, lock=lock, candidate=made, snapshot=snapshot, held=held,
                              boarding=[record_results] + [stage.board for stage in stages if stage.board])
            _through(attempt, offered)
    except BaseException as exc:
        summary = ("FAILED: " if isinstance(exc, ContinuityError) else "") + (
            str(exc).splitlines()[0] if isinstance(exc, ContinuityError) else "stopped")
        finish(settings, rep, record, exc, summary, junit=junit)
        rep.summary(summary)
        raise
    summary = "{} advanced {} -> {}".format(settings.branches.master, record.base[:12], record.candidate[:12])
    for environment, result in record.deployed.items():
        summary += "; {}: {}".format(environment, result)
    finish(settings, rep, record, summary=summary, junit=junit)
    rep.summary(summary)
    return record


def _plan(rep: Reporter, settings: Settings, offered: _results.Offered) -> None:
    rep.say("plan: push {} to {} {} (only if it is still {})".format(
        offered.sha[:12], settings.remote, settings.branches.master, offered.base[:12]))
    for environment in settings.auto_deploy:
        rep.say("plan: deploy {} to {}".format(offered.sha[:12], environment))
    rep.say("plan: dry run: nothing was pushed or deployed")


def _through(attempt: Attempt, offered: _results.Offered) -> None:
    """Build (the steps this workspace has not built), push (deleting the candidate's ref with master), deploy."""
    settings = attempt.settings
    attempt.check_out()
    attempt.rides.append(RefUpdate(offered.ref, "", offered.record))  # gone with the master push that takes it
    try:
        perform(_build.STAGE, attempt)
        perform(_push.STAGE, attempt)
    except ContinuityError:
        record_results(attempt)
        raise
    if not attempt.pushed:
        raise UsageError("{} moved on {} while we held the lock; nothing was pushed: make a new candidate with "
                         "`fab continuity.candidate{}`".format(settings.branches.master, settings.remote,
                                                               settings.line_option))
    perform(_deploy.STAGE, attempt)


def _ready(git: Git, settings: Settings, name: str, rep: Reporter, record: RunRecord,
           dry_run: bool = False) -> tuple[Snapshot, _results.Offered | None]:
    """The snapshot, and the candidate once it is shown to be master's next revision and tested (None when
    master already is it)."""
    b = settings.branches
    with rep.stage("fetch") as info:
        snapshot = read_remote(git, settings, dry_run=dry_run)  # one connection: branches, results, candidates
        heads = snapshot.heads
        offered = _results.find_candidate(git, settings.remote, name, snapshot=snapshot)
        info["detail"] = "candidate {} {}, {} {}".format(offered.id, offered.sha[:12], b.master, heads[b.master][:12])
    record.revisions.update(base=offered.base, development=offered.development, candidate=offered.sha)
    if heads[b.master] == offered.sha:
        record.state = RunState.NOTHING_TO_DO
        record.summary = "nothing to do; {} is at candidate {} ({})".format(b.master, offered.id, offered.sha[:12])
        return snapshot, None
    if offered.line != settings.line:
        raise UsageError("candidate {} was made for line {}, not {}: pass --line {}".format(
            offered.id, offered.line or "?", settings.line, offered.line))
    if heads[b.master] != offered.base:
        raise UsageError(
            "candidate {} was made on {} {}, but {} is now {} on {}: make a new candidate with `fab "
            "continuity.candidate{}` and check that one".format(offered.id, b.master, offered.base[:12], b.master,
                                                              heads[b.master][:12], settings.remote,
                                                              settings.line_option))
    with rep.stage("results") as info:
        tree = git.tree(offered.sha)
        store = _results.load(git, settings.remote, snapshot)
        verdict = store.verdict(tree, _results.configured_checks(settings))
        if store.warning:
            rep.say("warning: " + store.warning)
        if not verdict.ok:
            raise ContinuityError("not advancing {} to candidate {}: on its tree {}, {}; check it with `fab "
                                  "continuity.test --candidate {}` (with the --shard or --check it needs)".format(
                                      b.master, offered.id, tree[:12], verdict.problem(), offered.id))
        info["detail"] = "{} result(s) passed on tree {}".format(len(verdict.passed), tree[:12])
    if dry_run:
        record.state = RunState.PLANNED
        record.summary = "dry run; {} would go from {} to candidate {} ({})".format(
            b.master, offered.base[:12], offered.id, offered.sha[:12])
    return snapshot, offered


# -- fab continuity.results -----------------------------------------------------------


@task(
    help={
        "revision": "The revision whose tree to look up (default: master on the remote).",
        "line": LINE_HELP,
    }
)
@boundary
def results(c: Context, revision: str | None = None, line: str | None = None) -> None:
    """List the check and build step results recorded for a revision's tree (default: master)."""
    settings = _config.settings(c, line=line)
    snapshot = reach(settings, [settings.branches.master])
    git, heads = snapshot.git, snapshot.heads
    name = revision or settings.branches.master
    sha = heads.get(name) or git.commit("refs/remotes/{}/{}".format(settings.remote, name)) or git.commit(name)
    if sha is None:
        raise UsageError("unknown revision {!r}; give a commit, tag or branch that exists here or on the "
                         "remote".format(name))
    tree = git.tree(sha)
    store = _results.load(git, settings.remote, snapshot)
    if store.warning:
        print("warning: " + store.warning)
    found = store.for_tree(tree)
    print("{} {} (tree {}) on {}".format(name, sha[:12], tree[:12], settings.remote))
    if not found:
        print("no results recorded for tree {}".format(tree[:12]))
    else:
        print("{:<9} {:>9}  {:<20}  {:<28} {:<6} {}".format("status", "duration", "when", "where", "shard", "what"))
        for rec in sorted(found.values(), key=lambda r: (r.kind != "build", r.name, r.shard)):
            where = rec.where[3:] if rec.where.startswith("in ") else rec.host
            print(safe("{:<9} {:>8.2f}s  {:<20}  {:<28} {:<6} {}".format(
                rec.status, rec.duration, rec.time, where, "{}/{}".format(rec.shard, rec.shards) if rec.shard else "-",
                "{} '{}'".format("build step" if rec.kind == "build" else "check", rec.name))))
    print(_results.tested_note(store, tree, settings) or "tested: every configured check passed on this tree")
