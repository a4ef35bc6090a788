"""Counting what a task asks of the remote, and of git, in a test workspace.

`Connections` installs the wrappers the issue describes: in the workspace,
``remote.origin.uploadpack`` and ``remote.origin.receivepack`` name small
scripts that append a line to a log, then exec the real ``git upload-pack`` /
``git receive-pack``. With a local-path remote git honours both for
``ls-remote``, ``fetch`` and ``push``: every connection is one line.

`traced` runs ``fab`` with ``GIT_TRACE2_EVENT`` and counts the git processes
continuity itself started (top-level git commands, not their children).
"""

import json
import os

SERVICES = ("upload-pack", "receive-pack")

_WRAPPER = """#!/bin/sh
echo {service} >> '{log}'
exec git {service} "$@"
"""


class Connections:
    """The connections a workspace makes to its origin, counted by wrapper scripts."""

    def __init__(self, ws, directory):
        from conftest import git

        self.log = directory / "connections.log"
        for service in SERVICES:
            script = directory / ("wrap-" + service)
            script.write_text(_WRAPPER.format(service=service, log=self.log))
            script.chmod(0o755)
            git(ws, "config", "remote.origin." + service.replace("-", ""), str(script))

    def reset(self):
        if self.log.exists():
            self.log.unlink()

    def counts(self):
        """{"upload-pack": n, "receive-pack": n} since the last `reset`."""
        lines = self.log.read_text().split() if self.log.exists() else []
        return {service: lines.count(service) for service in SERVICES}

    def total(self):
        return sum(self.counts().values())


def git_commands(trace):
    """How many git commands the traced process started itself (children such as upload-pack not counted)."""
    count = 0
    with open(trace, encoding="utf-8", errors="replace") as events:
        for line in events:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "start" and "/" not in event.get("sid", ""):
                count += 1
    return count


def traced_env(trace):
    """The environment that makes every git process append its trace2 events to ``trace``."""
    return {"GIT_TRACE2_EVENT": os.fspath(trace)}
