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

import inspect
import os
import re
import shlex
from contextlib import contextmanager

from ._text import one_line
from .errors import ContinuityError, DeployError, UsageError
from .ledger import Ledger
from .lock import remote_lock

__all__ = ["find_deploy_task", "register_deploy", "deploy_revision", "call_deploy", "annotate", "describe_failure",
           "redeploy_command", "history_command", "marked_bad", "deploy_decision"]

_registered = {}


def register_deploy(task, name="deploy"):
    """Use ``task`` as the deploy task when not running under ``fab``.

    ``fab`` lets continuity find the task in the fabfile's root collection;
    a program of your own built on Invoke or Fabric can register it here.
    """
    _registered[name] = task
    return task


def find_deploy_task(name):
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


def _from_program(name):
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


def annotate(**fields):
    """Add fields (e.g. ``image_digest=...``) to the ledger entry of the deploy in progress.

    Call it from your deploy task (the Docker rollout helper does); values
    are recorded as ``key: value`` lines in the entry.
    """
    odd = sorted(key for key in fields if not _FIELD.match(key))
    if odd:
        raise UsageError("annotate(): {!r} is not a field name (letters, digits, '_', '.' and '-')".format(odd[0]))
    reserved = sorted(set(fields) & _RESERVED)
    if reserved:
        raise UsageError("annotate(): {} is recorded by continuity itself; use other names".format(", ".join(reserved)))
    _annotations.update({key: str(value) for key, value in fields.items()})


_annotations = {}
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_RESERVED = {"environment", "revision", "result", "time", "by", "task", "line", "previous", "error", "reason"}


def deploy_revision(c, task, git, settings, target, revision, say=print, how="pipeline",
                    newer_wins=True, allow_bad=False, mark_replaced_bad=False, expect_current=None):
    """Deploy ``revision`` to ``target`` (a `config.Environment`) and record it.

    Under the environment's lock: skip when that revision, or a newer one
    (``newer_wins``), already runs there; refuse a revision marked bad unless
    ``allow_bad``; check the revision out; call the user's task; append the
    result to the ledger (and, with ``mark_replaced_bad``, a bad mark for the
    revision it replaced) and move ``deployed/ENV`` in one atomic push.
    With ``expect_current``, refuse when another revision than that one
    runs there by the time we hold the lock (a rollback planned on it).
    Returns "deployed" or why it skipped.
    """
    environment = target.name
    ledger = Ledger.of(git, settings)
    with remote_lock(git, settings, "deploy-" + environment, say=say) as lock:
        state = ledger.state(environment)
        if expect_current is not None and state.deployed != expect_current:
            raise ContinuityError(
                "{} changed while we waited for its lock: it now runs {}, not {}; nothing was deployed. "
                "Look at `{}` and run the task again.".format(
                    environment, state.deployed[:12] or "nothing", expect_current[:12],
                    history_command(settings, environment)))
        skip = deploy_decision(git, settings, state, environment, revision, newer_wins, allow_bad)
        if skip:
            return skip
        git.checkout(revision)
        _annotations.clear()
        record = {"revision": revision, "task": how, "line": settings.line, "previous": state.deployed}
        lock.check("deploying to " + environment)  # a run that lost its lock deploys nothing
        try:
            call_deploy(c, task, target, revision, say=say, line=settings.line)
        except DeployError as exc:
            try:
                ledger.append(environment, [dict(record, result="failed", error=str(exc), **_annotations)], state=state)
            except ContinuityError as ledger_error:  # the deploy's own failure is what matters
                say("warning: could not record the failed deploy in the ledger: {}".format(ledger_error))
            raise
        records = [dict(record, result="deployed", **_annotations)]
        if mark_replaced_bad and state.deployed and state.deployed != revision:
            records.append({"revision": state.deployed, "result": "bad", "task": how, "line": settings.line,
                            "reason": "replaced by {} {}".format(how, revision[:12])})
        try:
            lock.check("recording the deploy")
            ledger.append(environment, records, deployed=revision, state=state)
        except ContinuityError as exc:
            raise ContinuityError(
                "{} was deployed to {}, but recording it in the ledger on {} failed: {}; `{}` "
                "records it on a new deploy".format(revision[:12], environment, settings.remote, exc,
                                                    redeploy_command(settings, environment))
            ) from exc
        return "deployed"


def deploy_decision(git, settings, state, environment, revision, newer_wins=True, allow_bad=False):
    """What `deploy_revision` does with ``revision`` given the ledger ``state``.

    Returns why it skips ("skipped: ..."), or None when it deploys; raises
    the refusal of a revision marked bad. Dry runs call it too, so that
    they refuse and skip exactly what the deploy would.
    """
    skip = _skip_reason(git, state, environment, revision, newer_wins)
    if skip:
        return skip
    if revision in state.bad and not allow_bad:
        raise marked_bad(settings, environment, revision)
    return None


def marked_bad(settings, environment, revision):
    """The `UsageError` for deploying a revision a rollback marked bad, with what to do instead."""
    text = "{} is marked bad for {} (see `{}`); ".format(revision[:12], environment,
                                                        history_command(settings, environment))
    if environment == settings.production_environment:  # `deploy` refuses production: no --force there
        return UsageError(text + "fix forward (promote a newer revision of {}, or finish a hotfix), or roll "
                          "back to another revision".format(settings.branches.master))
    force = shlex.join(["fab", "continuity.deploy", environment, "--revision", revision, "--force"])
    return UsageError(text + "deploy another revision, or pass --force if you mean it: `{}{}`".format(
        force, settings.line_option))


def history_command(settings, environment):
    return "fab continuity.history {}{}".format(environment, settings.line_option)


def redeploy_command(settings, environment):
    """The command that deploys ``environment`` again: promote for production, else deploy."""
    task = "promote" if environment == settings.production_environment else "deploy " + environment
    return "fab continuity.{}{}".format(task, settings.line_option)


def _skip_reason(git, state, environment, revision, newer_wins):
    if not newer_wins or not state.deployed:
        return None
    if state.deployed == revision:
        return "skipped: {} already runs {}".format(environment, revision[:12])
    if git.commit(state.deployed) and git.is_ancestor(revision, state.deployed):
        return "skipped: {} already runs {}, which is newer".format(environment, state.deployed[:12])
    return None


def call_deploy(c, task, target, revision, say=print, line="main"):
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
            from .hosts import deploy_hosts

            return deploy_hosts(c, task, target, kwargs, say=say)
        try:
            task(c, **kwargs)
        except SystemExit as exc:  # sys.exit() in the task: 0 is success, anything else a failure
            if exc.code not in (None, 0):
                raise DeployError("deploy to {} failed: the task exited with {!r}".format(environment, exc.code)) from None
        except Exception as exc:  # Ctrl-C and SIGTERM are BaseExceptions: they pass
            raise DeployError("deploy to {} failed: {}".format(environment, describe_failure(exc))) from exc


def describe_failure(exc):
    """One line for an exception raised by the user's deploy code.

    Our own errors (``docker.tested_image()`` called from the task, say) are
    written for people: their message's first line, as it would be printed
    for any other task. Anything else is named by its class, with its last line.
    """
    result = getattr(exc, "result", None)
    if result is not None and hasattr(result, "command") and hasattr(result, "exited"):
        return "command {!r} exited with code {}".format(result.command, result.exited)
    if isinstance(exc, ContinuityError):
        return one_line(exc.message.strip().splitlines()[0]) if exc.message.strip() else type(exc).__name__
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return "{}: {}".format(type(exc).__name__, lines[-1].strip() if lines else "no message")


def _accepts(task, name):
    body = getattr(task, "body", task)
    try:
        params = inspect.signature(body).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


@contextmanager
def _environ(**values):
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
