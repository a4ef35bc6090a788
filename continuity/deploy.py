"""Deploying through the user's own ``deploy`` task.

continuity assumes nothing about how a project deploys: it calls the task the
user wrote, ``deploy(c, environment)``, with the workspace checked out at the
revision being deployed. That revision is also given to the task:

* as the ``revision`` argument, when the task accepts one;
* as ``CONTINUITY_REVISION`` (with ``CONTINUITY_ENVIRONMENT`` and
  ``CONTINUITY_LINE``) in the environment of the process, which every
  command it runs inherits.

A task that accepts a ``line`` argument also gets the development line.

Deploys to one environment are serialized by a lock on the remote and
recorded in the ledger there (see `continuity.ledger`). The pipeline never
deploys a revision that is older than (an ancestor of) the recorded one, so
two racing runs cannot put an older revision over a newer one.
"""

from __future__ import annotations

import inspect
import os
import shlex
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import field
from typing import Any, Callable

from ._dataclass import dataclass
from ._proc import Heartbeat, heartbeat
from .config import Environment, Settings
from .errors import ContinuityError, DeployError, GitError, UsageError
from .git import Git, PushResult, RefUpdate
from .hosts import deploy_hosts, describe_failure
from .ledger import DEPLOYING, Ledger, State, annotate, take_annotations
from .lock import HeldLock, free_or_gone, push_coordinated, remote_lock
from .record import RunState
from .remote import HEADS, Snapshot, check_ground, read_remote, remote_heads, swap
from .stage import Attempt, Stage
from .workspace import Workspace, open_workspace

Say = Callable[[str], None]

__all__ = ["DeployPolicy", "Claim", "claim", "preflight", "find_deploy_task", "register_deploy", "deploy_revision", "call_deploy",
           "annotate", "describe_failure", "redeploy_command", "history_command", "marked_bad", "deploy_decision",
           "STAGE"]


@dataclass(frozen=True)
class DeployPolicy:
    """How a deploy treats what already runs there; one per kind of task, by name.

    ``task`` is recorded in the ledger entry. With ``newer_wins``, a deploy
    of the revision that runs there, or of an older one, is skipped. With
    ``allow_bad``, a revision a rollback marked bad is deployed anyway.
    ``replaces`` is the revision a rollback planned to replace: the deploy is
    refused when another one runs there by the time it holds the lock, and
    the one it replaces is marked bad.
    """

    task: str
    newer_wins: bool = True
    allow_bad: bool = False
    replaces: str | None = None
    forced: bool = False  # --force let an untested revision through: the ledger entry says ``forced: true``

    @classmethod
    def pipeline(cls) -> DeployPolicy:
        """The pipeline's auto deploys: never an older revision over a newer one."""
        return cls("pipeline")

    @classmethod
    def manual(cls, revision: str | None = None, force: bool = False) -> DeployPolicy:
        """``fab continuity.deploy``: master's tip as the pipeline would; a named ``revision`` even
        if it is older; ``force`` even if it is marked bad."""
        return cls("deploy", newer_wins=revision is None, allow_bad=force)

    @classmethod
    def promote(cls) -> DeployPolicy:
        return cls("promote")

    @classmethod
    def hotfix(cls) -> DeployPolicy:
        return cls("hotfix")

    @classmethod
    def rollback(cls, replacing: str) -> DeployPolicy:
        """Back to an older revision, in place of ``replacing``, which is marked bad."""
        return cls("rollback", newer_wins=False, replaces=replacing)


def preflight(settings: Settings, need_deploy: bool,
              names: Sequence[str] | None = None) -> tuple[Workspace, Any]:
    """Check the ground before changing anything; return (workspace, deploy task or None).

    The checkout, the user's deploy task (when ``need_deploy``), then the
    remote and its branches (``names``, default the line's three): see
    `remote.check_ground`.
    """
    ws = open_workspace(".", settings.git_timeout)
    deploy_task = find_deploy_task(settings.deploy_task) if need_deploy else None
    check_ground(ws, settings, names)
    return ws, deploy_task

_registered: dict[str, Any] = {}


def register_deploy(task: Any, name: str = "deploy") -> Any:
    """Use ``task`` as the deploy task when not running under ``fab``.

    ``fab`` lets continuity find the task in the fabfile's root collection;
    a program of your own built on Invoke or Fabric can register it here.
    """
    _registered[name] = task
    return task


def find_deploy_task(name: str) -> Any:
    """The user's deploy task, or `UsageError` saying how to provide one."""
    task = _from_program(name) or _registered.get(name)
    if task is None:
        raise UsageError(
            "no '{0}' task found in your fabfile; define `@task def {0}(c, environment): ...` "
            "and add it to your collection: ns = Collection({0}, continuity)".format(name)
        )
    if not _accepts(task, "environment"):
        raise UsageError(
            "your '{0}' task takes no 'environment' argument; continuity calls it as "
            "{0}(c, environment=NAME): define `def {0}(c, environment): ...`".format(name)
        )
    return task


def _from_program(name: str) -> Any:
    try:
        from fabric.main import program
    except ImportError:  # pragma: no cover - fabric is a dependency
        return None
    root = getattr(program, "collection", None)
    if root is None:
        return None
    try:
        return root[root.transform(name)]
    except (KeyError, ValueError):
        return None


@dataclass
class Claim:
    """An environment's deploy lock and ledger intent, taken together in one push.

    ``state`` is the ledger as the task read it: the intent's parent is its
    head, and the push that takes ``lock`` moves ``ledger/ENV`` from that head
    to ``intent`` (its lease), so once the push lands the state we decided on
    is the current one, under the lock, with no read again. ``holder`` is the
    lease that takes the lock ("" free, or a gone holder's token).
    """

    lock: HeldLock
    holder: str
    ledger: Ledger
    environment: str
    state: State
    record: dict[str, Any]
    intent: str
    after: list[RefUpdate] = field(default_factory=list)  # rides on the record of a successful deploy
    after_landed: Callable[[], None] | None = None

    def updates(self) -> list[RefUpdate]:
        """The ledger's part of the push; the lock's is ``take``."""
        return self.ledger.updates(self.environment, self.state, self.intent)

    @property
    def take(self) -> list[tuple[HeldLock, str]]:
        return [(self.lock, self.holder)]


def claim(git: Git, settings: Settings, environment: str, revision: str, policy: DeployPolicy, snapshot: Snapshot,
          say: Say = print) -> str | Claim | None:
    """What deploying ``revision`` to ``environment`` needs, from the task's ``snapshot`` of the remote.

    Returns why it skips ("skipped: ..."), or the `Claim` to push (nothing is
    pushed yet), or None when the lock is held (or odd): then the deploy takes
    the waiting path. Raises what the deploy would refuse (a revision marked
    bad, a damaged ledger, a rollback whose environment changed).
    """
    ledger = Ledger.of(git, settings, snapshot)
    state = ledger.state(environment)
    _require_replaced(settings, environment, state, policy)
    skip = deploy_decision(git, settings, state, environment, revision, policy)
    if skip:
        return skip
    lock = HeldLock(git, settings, "deploy-" + environment, say)
    holder = free_or_gone(snapshot, lock.ref, say)
    if holder is None:
        return None
    record = {"revision": revision, "task": policy.task, "line": settings.line, "previous": state.deployed,
              "forced": "true" if policy.forced else ""}
    intent = ledger.commit_records(state.head, environment, [dict(record, result=DEPLOYING)])
    return Claim(lock, holder, ledger, environment, state, record, intent)


def deploy_revision(c: Any, task: Any, git: Git, settings: Settings, target: Environment, revision: str,
                    say: Say = print, policy: DeployPolicy | None = None, snapshot: Snapshot | None = None,
                    claimed: Claim | None = None, rides: Sequence[RefUpdate] = (),
                    moved: Callable[[], Exception] | None = None,
                    landed: Callable[[], None] | None = None, after: Sequence[RefUpdate] = (),
                    after_landed: Callable[[], None] | None = None) -> str:
    """Deploy ``revision`` to ``target`` (a `config.Environment`) and record it.

    Under the environment's lock, as ``policy`` (a `DeployPolicy`, default
    the pipeline's) says: skip or refuse (see `deploy_decision`); check the
    revision out; call the user's task; record the outcome. Returns
    "deployed" or why it skipped.

    The remote is told three things, each in one atomic push: the lock and
    the ledger intent (with ``rides``, ref updates that must land first, such
    as promote's production branch: when one of them is stale, ``moved()`` is
    raised and nothing moved; ``landed()`` is called once they are on the
    remote, before the deploy); then the outcome, ``deployed/ENV`` and the
    lock's release, with ``after`` (ref updates that go with a successful
    deploy's record, such as hotfix.finish deleting its branch: when that
    push landed, ``after_landed()`` is called). ``claimed`` is a `Claim` some other push already took
    (the pipeline's master push); with ``snapshot``, what the task read
    decides and the lock is taken at once when free. Without either, or when
    the lock is held, the deploy waits for the lock (`remote_lock`) and reads
    the ledger again under it.
    """
    policy = policy or DeployPolicy.pipeline()
    rides = list(rides)
    prepared: str | Claim | None = None
    if claimed is None and snapshot is not None:
        prepared = claim(git, settings, target.name, revision, policy, snapshot, say)
        if isinstance(prepared, Claim):
            try:
                pushed = push_coordinated(git, settings, rides + prepared.updates(), take=prepared.take)
            except GitError:  # refused outright (a hook, a ref in the way): the waiting way says what it is
                prepared.lock.let_go()
                pushed = PushResult(False, "")
            if pushed.ok:
                claimed, rides = prepared, []
            elif pushed.stale & {ride.ref for ride in rides}:
                raise moved() if moved is not None else _moved(settings, rides)
    if claimed is not None:
        claimed.after, claimed.after_landed = list(after), after_landed
        with claimed.lock.held():
            if landed is not None:
                landed()
            return _deploy_claimed(c, task, git, settings, target, revision, say, policy, claimed)
    if rides and not git.transact(settings.remote, rides).ok:
        raise moved() if moved is not None else _moved(settings, rides)
    if landed is not None:
        landed()
    if isinstance(prepared, str):
        return prepared
    return _deploy_waiting(c, task, git, settings, target, revision, say, policy, list(after), after_landed)


def _moved(settings: Settings, rides: Sequence[RefUpdate]) -> ContinuityError:
    return ContinuityError("{} moved on {} meanwhile; nothing was deployed".format(
        ", ".join(ride.ref for ride in rides), settings.remote))


def _deploy_waiting(c: Any, task: Any, git: Git, settings: Settings, target: Environment, revision: str, say: Say,
                    policy: DeployPolicy, after: list[RefUpdate], after_landed: Callable[[], None] | None) -> str:
    """The contention path: wait for the lock, read the ledger again under it, push the intent, deploy."""
    environment = target.name
    with remote_lock(git, settings, "deploy-" + environment, say=say) as lock:
        ledger = Ledger.of(git, settings, read_remote(git, settings, names=[]))
        state = ledger.state(environment)
        _require_replaced(settings, environment, state, policy, waited=True)
        skip = deploy_decision(git, settings, state, environment, revision, policy)
        if skip:
            return skip
        record = {"revision": revision, "task": policy.task, "line": settings.line, "previous": state.deployed,
                  "forced": "true" if policy.forced else ""}
        intent = ledger.commit_records(state.head, environment, [dict(record, result=DEPLOYING)])
        held = Claim(lock, "", ledger, environment, state, record, intent, after, after_landed)
        lock.check("deploying to " + environment)
        try:
            written = git.transact(settings.remote, held.updates()).ok
        except GitError as exc:  # the remote refuses ledger writes: deploy anyway, as the outcome will say
            say("warning: could not record the deploy's intent in the ledger: {}".format(exc))
            held.intent, written = state.head, True
        if not written:
            raise ContinuityError(
                "the ledger of {} on {} changed while we held its lock (something that does not take the lock "
                "wrote it); nothing was deployed: see `{}`".format(
                    environment, settings.remote, history_command(settings, environment)))
        return _deploy_claimed(c, task, git, settings, target, revision, say, policy, held)


def _require_replaced(settings: Settings, environment: str, state: State, policy: DeployPolicy,
                      waited: bool = False) -> None:
    """A rollback replaces only the revision it planned to replace."""
    if policy.replaces is not None and state.deployed != policy.replaces:
        raise ContinuityError(
            "{} changed {}: it now runs {}, not {}; nothing was deployed. "
            "Look at `{}` and run the task again.".format(
                environment, "while we waited for its lock" if waited else "meanwhile",
                state.deployed[:12] or "nothing", policy.replaces[:12], history_command(settings, environment)))


def _deploy_claimed(c: Any, task: Any, git: Git, settings: Settings, target: Environment, revision: str, say: Say,
                    policy: DeployPolicy, held: Claim) -> str:
    """Deploy under a lock we hold, with our intent on the ledger; record the outcome and release in one push."""
    environment, lock, state = target.name, held.lock, held.state
    git.checkout(revision)
    take_annotations(clear=True)
    lock.check("deploying to " + environment)  # a run that lost its lock deploys nothing
    try:
        with heartbeat(Heartbeat(settings.heartbeat, "deploy to " + environment, say)):
            call_deploy(c, task, target, revision, say=say, line=settings.line)
    except DeployError as exc:
        try:
            _record(git, settings, held, [dict(held.record, result="failed", error=str(exc), **take_annotations())])
        except ContinuityError as ledger_error:  # the deploy's own failure is what matters
            say("warning: could not record the failed deploy in the ledger: {}".format(ledger_error))
        raise
    records = [dict(held.record, result="deployed", **take_annotations())]
    if policy.replaces and state.deployed and state.deployed != revision:
        records.append({"revision": state.deployed, "result": "bad", "task": policy.task, "line": settings.line,
                        "reason": "replaced by {} {}".format(policy.task, revision[:12])})
    try:
        lock.check("recording the deploy")
        _record(git, settings, held, records, deployed=revision, after=held.after)
    except ContinuityError as exc:
        raise ContinuityError(
            "{} was deployed to {}, but recording it in the ledger on {} failed: {}; `{}` "
            "records it on a new deploy".format(revision[:12], environment, settings.remote, exc,
                                                redeploy_command(settings, environment))
        ) from exc
    return "deployed"


def _record(git: Git, settings: Settings, held: Claim, records: list[dict[str, Any]],
            deployed: str | None = None, after: Sequence[RefUpdate] = ()) -> None:
    """The outcome on top of our intent, ``deployed/ENV`` and the lock's release: one atomic push.

    Refused only when the ledger or the lock changed under us (something
    that ignores the lock wrote it): then today's way, which reads the
    ledger again and appends with leases; the lock is let go after.
    """
    ledger, environment = held.ledger, held.environment
    head = ledger.commit_records(held.intent, environment, records)
    after_intent = State(held.state.deployed, held.intent, [])
    updates = ledger.updates(environment, after_intent, head, deployed)
    if push_coordinated(git, settings, updates + list(after), release=[held.lock]).ok:
        if after and held.after_landed is not None:
            held.after_landed()
        return
    if after and push_coordinated(git, settings, updates, release=[held.lock]).ok:
        return  # one of ``after`` was stale: the record stands, without them
    Ledger.of(git, settings).append(environment, records, deployed=deployed, state=after_intent)


def deploy_decision(git: Git, settings: Settings, state: State, environment: str, revision: str,
                    policy: DeployPolicy | None = None) -> str | None:
    """What `deploy_revision` does with ``revision`` given the ledger ``state`` and ``policy``.

    Returns why it skips ("skipped: ..."), or None when it deploys; raises
    the refusal of a revision marked bad. Dry runs call it too, so that
    they refuse and skip exactly what the deploy would.
    """
    policy = policy or DeployPolicy.pipeline()
    skip = _skip_reason(git, state, environment, revision, policy.newer_wins)
    if skip:
        return skip
    if revision in state.bad and not policy.allow_bad:
        raise marked_bad(settings, environment, revision)
    return None


def marked_bad(settings: Settings, environment: str, revision: str) -> UsageError:
    """The `UsageError` for deploying a revision a rollback marked bad, with what to do instead."""
    text = "{} is marked bad for {} (see `{}`); ".format(revision[:12], environment,
                                                        history_command(settings, environment))
    if environment == settings.production_environment:  # `deploy` refuses production: no --force there
        return UsageError(text + "fix forward (promote a newer revision of {}, or finish a hotfix), or roll "
                          "back to another revision".format(settings.branches.master))
    force = shlex.join(["fab", "continuity.deploy", environment, "--revision", revision, "--force"])
    return UsageError(text + "deploy another revision, or pass --force if you mean it: `{}{}`".format(
        force, settings.line_option))


def history_command(settings: Settings, environment: str) -> str:
    return "fab continuity.history {}{}".format(environment, settings.line_option)


def redeploy_command(settings: Settings, environment: str) -> str:
    """The command that deploys ``environment`` again: promote for production, else deploy."""
    task = "promote" if environment == settings.production_environment else "deploy " + environment
    return "fab continuity.{}{}".format(task, settings.line_option)


def _skip_reason(git: Git, state: State, environment: str, revision: str, newer_wins: bool) -> str | None:
    if not newer_wins or not state.deployed:
        return None
    if state.deployed == revision:
        return "skipped: {} already runs {}".format(environment, revision[:12])
    if git.commit(state.deployed) and git.is_ancestor(revision, state.deployed):
        return "skipped: {} already runs {}, which is newer".format(environment, state.deployed[:12])
    return None


# -- the pipeline's deploy stage ---------------------------------------------------------


def _board(attempt: Attempt) -> None:
    """Right before the master push: put each auto_deploy environment's lock and ledger intent on it.

    With production in auto_deploy, the production branch goes in the same
    push. What is skipped is decided now, from the run's snapshot; an
    environment whose lock is held, or that would be refused, gets nothing
    here and goes the waiting way in the deploy stage (which says why).
    """
    settings, sha, snapshot = attempt.settings, attempt.sha, attempt.snapshot
    attempt.coordination, attempt.takes, attempt.claims, attempt.coordinated = [], [], {}, False
    if snapshot is None:
        return
    for environment in settings.auto_deploy:
        if environment == settings.production_environment:
            production = settings.branches.production
            current = snapshot.heads.get(production, "")
            if current != sha:
                if not current or _production_refusal(attempt.git, settings, sha, current):
                    continue
                attempt.coordination.append(RefUpdate(HEADS + production, sha, current))
        try:
            prepared = claim(attempt.git, settings, environment, sha, DeployPolicy.pipeline(), snapshot,
                             attempt.rep.say)
        except ContinuityError:
            continue  # refused: the deploy stage refuses it after master moved, as it always did
        attempt.claims[environment] = prepared
        if isinstance(prepared, Claim):
            attempt.coordination += prepared.updates()
            attempt.takes += prepared.take
            if attempt.held is not None:
                attempt.held.callback(prepared.lock.let_go)  # a lock the push may take is let go at the end


def _deploy_all(attempt: Attempt) -> str:
    """Deploy the candidate to each ``auto_deploy`` environment, in order."""
    settings, rep, sha = attempt.settings, attempt.rep, attempt.sha
    deployed = attempt.record.deployed
    claims = attempt.claims if attempt.coordinated else {}
    for environment in settings.auto_deploy:
        rep.say("deploy: {} to {}".format(sha[:12], environment))
        prepared = claims.get(environment)
        if environment == settings.production_environment:
            _advance_production(attempt, rep.say)
        try:
            if isinstance(prepared, str):
                result = prepared
            else:
                result = deploy_revision(attempt.c, attempt.deploy_task, attempt.git, settings,
                                         settings.environment(environment), sha, say=rep.say,
                                         policy=DeployPolicy.pipeline(), claimed=prepared)
        except ContinuityError as exc:
            # Master has moved, so the next pipeline run has nothing to do: whatever
            # stopped the deploy (the task, a lock, the ledger), say how to deploy again.
            exc.message = "{}; once fixed, `{}` deploys {}".format(
                exc.message, redeploy_command(settings, environment), sha[:12])
            raise
        deployed[environment] = result
        rep.say("deploy: {}: {}".format(environment, result))
    attempt.record.state = RunState.DEPLOYED
    return ", ".join("{} {}".format(env, r.split(":")[0]) for env, r in deployed.items())


def _advance_production(attempt: Attempt, say: Say) -> None:
    """With production in auto_deploy, the production branch follows what is deployed there.

    Normally it moved in the master push already; otherwise (it moved, or
    has commits master lacks) it is moved here, or refused.
    """
    git, settings, candidate = attempt.git, attempt.settings, attempt.sha
    production = settings.branches.production
    ref = HEADS + production
    moved = [u for u in attempt.coordination if u.ref == ref] if attempt.coordinated else []
    if moved:
        say("deploy: {} {} -> {} (production is in auto_deploy)".format(production, moved[0].old[:12], candidate[:12]))
        return
    current = remote_heads(git, settings.remote, [production]).get(production)
    if current == candidate:
        return
    refusal = _production_refusal(git, settings, candidate, current)
    if refusal:
        raise refusal
    if swap(git, settings.remote, production, candidate, current or "") is None:
        raise DeployError("{} moved on {} meanwhile; production was not deployed".format(production, settings.remote))
    say("deploy: {} {} -> {} (production is in auto_deploy)".format(production, (current or "")[:12], candidate[:12]))


def _production_refusal(git: Git, settings: Settings, candidate: str,
                        current: str | None = None) -> DeployError | None:
    """The `DeployError` when the production branch has commits ``candidate`` lacks, else None."""
    production = settings.branches.production
    current = current or remote_heads(git, settings.remote, [production]).get(production)
    if not current or current == candidate:
        return None
    if not git.commit(current):
        git.fetch_objects(settings.remote, HEADS + production)
    if git.is_ancestor(current, candidate):
        return None
    return DeployError(
        "{} has commits {} lacks (a hotfix not merged back?); production was not deployed. Merge {} into "
        "{} and run the pipeline again.".format(production, settings.branches.master, production,
                                                settings.branches.development))


def _plan(attempt: Attempt) -> list[str]:
    """A line per environment; the production refusal the run would meet is kept for after the plan."""
    settings, sha = attempt.settings, attempt.sha
    lines = []
    for environment in settings.auto_deploy:
        if environment == settings.production_environment:
            current = attempt.snapshot.heads.get(settings.branches.production) if attempt.snapshot else None
            attempt.refusal = _production_refusal(attempt.git, settings, sha, current)
        lines.append("deploy {} to {}{}".format(sha[:12], environment,
                                                 ": refused (see below)" if attempt.refusal else ""))
    return lines


#: The user's deploy task for each ``auto_deploy`` environment, once master advanced.
STAGE = Stage("deploy", _deploy_all, _plan, after_push=True, board=_board,
              skip=lambda attempt: "" if attempt.settings.auto_deploy else "continuity.auto_deploy is empty")


def call_deploy(c: Any, task: Any, target: Environment, revision: str, say: Say = print, line: str = "main") -> Any:
    """Run the user's task for ``target`` (a `config.Environment`).

    With hosts configured, the task runs once per host with a Fabric
    Connection (see `continuity.hosts`); otherwise once, locally, with ``c``.
    Any exception it raises becomes `DeployError`.
    """
    environment = target.name
    kwargs = {"environment": environment}
    if _accepts(task, "revision"):
        kwargs["revision"] = revision
    if _accepts(task, "line"):
        kwargs["line"] = line
    with _environ(CONTINUITY_REVISION=revision, CONTINUITY_ENVIRONMENT=environment, CONTINUITY_LINE=line):
        if target.hosts:
            return deploy_hosts(c, task, target, kwargs, say=say)
        try:
            task(c, **kwargs)
        except SystemExit as exc:  # sys.exit() in the task: 0 is success, anything else a failure
            if exc.code not in (None, 0):
                raise DeployError("deploy to {} failed: the task exited with {!r}".format(environment, exc.code)) from None
        except Exception as exc:  # Ctrl-C and SIGTERM are BaseExceptions: they pass
            raise DeployError("deploy to {} failed: {}".format(environment, describe_failure(exc))) from exc


def _accepts(task: Any, name: str) -> bool:
    body = getattr(task, "body", task)
    try:
        params = inspect.signature(body).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
