"""``fab continuity.flaky``: which checks fail, then pass when they run again, and how often.

A check with ``retries: N`` that fails and then passes on the same tree is
recorded as ``flaky`` (see `continuity.results`). This task reads every result
on the remote (one read: `remote.reach`) and, for each check definition
(its command and shards: a changed command is another check), counts the
trees it ran on, how many of those it was flaky or failed on, and when and
where it was last flaky. The flakiest come first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field

from invoke import Context, task

from . import config as _config
from . import results as _results
from ._dataclass import dataclass
from ._text import safe
from .boundary import LINE_HELP, boundary
from .remote import reach

__all__ = ["flaky", "Flakes", "flake_rates"]


@dataclass
class Flakes:
    """One check definition over the recorded results."""

    name: str
    key: str
    runs: int = 0  # trees it has a result on (a sharded check: every shard's)
    flaky: int = 0  # trees where it (a shard of it) failed, then passed
    failed: int = 0  # trees where it failed or timed out
    last: _results.Recorded | None = None  # its newest flaky result
    trees: dict[str, str] = field(default_factory=dict)  # tree -> its worst status there

    @property
    def rate(self) -> float:
        return self.flaky / self.runs if self.runs else 0.0


_WORST = {_results.PASSED: 0, _results.FLAKY: 1, _results.TIMED_OUT: 2, _results.FAILED: 2}


def flake_rates(records: Sequence[_results.Recorded]) -> list[Flakes]:
    """A `Flakes` per check definition in ``records``, the highest flake rate first."""
    found: dict[str, Flakes] = {}
    for rec in sorted(records, key=lambda r: r.time):
        if rec.kind != "check" or rec.status not in _WORST:
            continue
        entry = found.setdefault(rec.key, Flakes(rec.name, rec.key))
        entry.name = rec.name  # the newest name of that definition
        before = entry.trees.get(rec.tree, _results.PASSED)
        entry.trees[rec.tree] = max(before, rec.status, key=lambda status: _WORST[status])
        if rec.status == _results.FLAKY:
            entry.last = rec
    for entry in found.values():
        statuses = list(entry.trees.values())
        entry.runs = len(statuses)
        entry.flaky = statuses.count(_results.FLAKY)
        entry.failed = len([s for s in statuses if _WORST[s] == 2])
    return sorted(found.values(), key=lambda e: (-e.rate, -e.flaky, e.name))


@task(help={"line": LINE_HELP})
@boundary
def flaky(c: Context, line: str | None = None) -> None:
    """List the checks with their flake rate (failed, then passed on a retry) over the recorded results."""
    settings = _config.settings(c, line=line)
    snapshot = reach(settings)
    store = _results.load(snapshot.git, settings.remote, snapshot)
    if store.warning:
        print("warning: " + store.warning)
    rates = flake_rates(store.every())
    if not any(entry.flaky for entry in rates):
        print("no flaky checks recorded on {} ({} check definition(s) with results)".format(
            settings.remote, len(rates)))
        return
    configured = {unit.key for unit in _results.configured_checks(settings)}
    print("{:>6} {:>5} {:>6} {:>6}  {:<42} {}".format("rate", "runs", "flaky", "failed", "last flaky", "check"))
    for entry in rates:
        last = "{} {}".format(entry.last.time, entry.last.where) if entry.last else "-"
        note = "" if entry.key in configured else " (not configured now)"
        print(safe("{:>5.0f}% {:>5} {:>6} {:>6}  {:<42} '{}'{}".format(
            entry.rate * 100, entry.runs, entry.flaky, entry.failed, last, entry.name, note)))
