"""Deploying through the user's own ``deploy`` task.

continuity assumes nothing about how a project deploys: it calls the task the
user wrote, ``deploy(c, environment)``, with the workspace checked out at the
revision being deployed. That revision is also given to the task:

* as the ``revision`` argument, when the task accepts one;
* as ``CONTINUITY_REVISION`` (and ``CONTINUITY_ENVIRONMENT``) in the
  environment of the process, which every command it runs inherits.

Deploys to one environment are serialized by a lock on the remote and
recorded in ``refs/continuity/deployed/ENVIRONMENT`` there. A run never
deploys a revision that is older than (an ancestor of) the recorded one, so
two racing runs cannot put an older revision over a newer one.
"""

import inspect
import os
from contextlib import contextmanager

from .errors import DeployError, UsageError
from .lock import remote_lock

__all__ = ["find_deploy_task", "register_deploy", "deploy_revision", "DEPLOYED_PREFIX"]

DEPLOYED_PREFIX = "refs/continuity/deployed/"

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


def deploy_revision(c, task, git, remote, target, revision, lock_timeout, say=print):
    """Deploy ``revision`` to ``target`` (a `config.Environment`) unless a newer one is there.

    Returns "deployed" or a sentence saying why it was skipped.
    """
    environment = target.name
    with remote_lock(git, remote, "deploy-" + environment, lock_timeout, say=say):
        ref = DEPLOYED_PREFIX + environment
        current = git.ls_remote(remote, ref).get(ref)
        if current == revision:
            return "skipped: {} already runs {}".format(environment, revision[:12])
        if current and _have(git, remote, ref, current) and git.is_ancestor(revision, current):
            return "skipped: {} already runs {}, which is newer".format(environment, current[:12])
        git.checkout(revision)
        call_deploy(c, task, target, revision, say=say)
        result = git.push(remote, [(revision, ref)], leases=[(ref, current or "")])
        if not result.ok:
            say("warning: could not record the deploy of {} to {}".format(revision[:12], environment))
        return "deployed"


def call_deploy(c, task, target, revision, say=print):
    """Run the user's task for ``target`` (a `config.Environment`).

    With hosts configured, the task runs once per host with a Fabric
    Connection (see `continuity.hosts`); otherwise once, locally, with ``c``.
    Any exception it raises becomes `DeployError`.
    """
    environment = target.name
    kwargs = {"environment": environment}
    if _accepts(task, "revision"):
        kwargs["revision"] = revision
    with _environ(CONTINUITY_REVISION=revision, CONTINUITY_ENVIRONMENT=environment):
        if target.hosts:
            from .hosts import deploy_hosts

            return deploy_hosts(c, task, target, kwargs, say=say)
        try:
            task(c, **kwargs)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            detail = str(exc).strip().splitlines()
            raise DeployError(
                "deploy to {} failed: {}: {}".format(
                    environment, type(exc).__name__, detail[-1] if detail else "no message"
                )
            ) from exc


def _have(git, remote, ref, sha):
    """Make sure we have the recorded commit locally, to compare ancestry."""
    if git.commit(sha):
        return True
    local = "refs/continuity-remote/deployed/" + ref[len(DEPLOYED_PREFIX):]
    git.call("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", remote, "+{}:{}".format(ref, local))
    return git.commit(sha) is not None


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
