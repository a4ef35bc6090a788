"""Build steps: run only the ones whose inputs changed.

A step is ``{name, command, paths}``. After a step succeeds, continuity writes
a stamp in the workspace's git directory (``.git/continuity/builds/NAME``)
with the revision it built and a digest of the step's definition. On the next
run the step runs when:

* there is no stamp (no earlier build in this workspace), or
* the step's command or paths changed, or
* a file matching one of its paths changed between the stamped revision and
  the candidate (in a kept Jenkins workspace that is master, since the last
  run built what it pushed).

Otherwise it is skipped, and the report says why either way.
"""

import fnmatch
import hashlib
import json
import os
from dataclasses import dataclass

from ._proc import run_shell
from .errors import CommandFailed

__all__ = ["Decision", "plan", "run_step", "matches"]


@dataclass(frozen=True)
class Decision:
    step: object  # config.BuildStep
    run: bool
    reason: str


def matches(path, pattern):
    """True when ``path`` (relative, with '/') is covered by ``pattern``.

    ``*`` matches across '/', so ``src/*`` covers everything below ``src``;
    a pattern naming a directory (``src`` or ``src/``) covers what is in it.
    """
    if pattern.startswith("./"):
        pattern = pattern[2:]
    directory = pattern.rstrip("/")
    return fnmatch.fnmatchcase(path, pattern) or path.startswith(directory + "/")


def plan(git, steps, candidate, stamp_dir):
    """A `Decision` per step: run it or skip it, and why."""
    return [_decide(git, step, candidate, _read_stamp(stamp_dir, step.name)) for step in steps]


def _decide(git, step, candidate, stamp):
    if stamp is None:
        return Decision(step, True, "no earlier build in this workspace")
    if stamp.get("definition") != _definition(step):
        return Decision(step, True, "its command or paths changed")
    built = git.commit(stamp.get("revision") or "")
    if built is None:
        return Decision(step, True, "the last build's revision is unknown here")
    if built == candidate:
        return Decision(step, False, "already built at this revision")
    changed = [p for p in git.changed_files(built, candidate) if any(matches(p, pat) for pat in step.paths)]
    if changed:
        more = " and {} more".format(len(changed) - 3) if len(changed) > 3 else ""
        return Decision(step, True, "changed: " + ", ".join(changed[:3]) + more)
    return Decision(step, False, "no changes under " + ", ".join(step.paths))


def run_step(step, cwd, candidate, stamp_dir, env=None, out=None):
    """Run one step; write its stamp on success, raise `CommandFailed` otherwise."""
    result = run_shell(step.command, cwd, timeout=step.timeout, env=env, out=out)
    if not result.ok:
        raise CommandFailed(
            "build step '{}' ({}) {}; {}".format(step.name, step.command, result.describe(), result.tail_text()),
            result,
        )
    _write_stamp(stamp_dir, step, candidate)
    return result


def _definition(step):
    text = json.dumps([step.command, list(step.paths)])
    return hashlib.sha256(text.encode()).hexdigest()


def _read_stamp(stamp_dir, name):
    try:
        with open(os.path.join(stamp_dir, name), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_stamp(stamp_dir, step, candidate):
    os.makedirs(stamp_dir, exist_ok=True)
    path = os.path.join(stamp_dir, step.name)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump({"revision": candidate, "definition": _definition(step)}, f)
    os.replace(path + ".tmp", path)
