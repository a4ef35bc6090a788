"""Problem-free: every configured check exits 0 on the candidate's tree.

Checks are shell commands the user wrote (``python -m pytest`` by default).
They run one after the other in the workspace, checked out at exactly the
candidate; the first failure stops the run. A check with a timeout that hangs
is killed together with the processes it started, and reported as such.
"""

from ._proc import run_shell
from .errors import CommandFailed

__all__ = ["run_checks"]


def run_checks(checks, cwd, env=None, out=None, say=print, record=None, verify=None):
    """Run ``checks`` in order; return their results or raise `CommandFailed`.

    ``record(name, command, result)`` is told about each check that ran;
    ``verify(culprit, result)`` is called after each one that passed.
    """
    results = []
    for check in checks:
        say("check: $ " + check.command)
        result = run_shell(check.command, cwd, timeout=check.timeout, env=env, out=out)
        results.append(result)
        if record is not None:
            record(check.name, check.command, result)
        if not result.ok:
            raise CommandFailed(
                "check '{}' {}; {}".format(check.name, result.describe(), result.tail_text()),
                result,
            )
        if verify is not None:
            verify(_named(check), result)
    return results


def _named(check):
    """"check 'NAME' (COMMAND)", or "check 'COMMAND'" when it has no name of its own."""
    command = "" if check.name == check.command else " ({})".format(check.command)
    return "check '{}'{}".format(check.name, command)
