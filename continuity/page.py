"""``fab continuity.report --html PATH``: a page of what runs where.

It reads the remote (the ledger of each environment, the locks, master's
newest commits) into a `page_html.Page` and writes it as one self-contained
HTML file. It reads the remote in one fetch, as ``status`` does (which
updates the remote-tracking refs and continuity's mirror of the remote's
``refs/continuity/``), and changes nothing there: the only file it writes is PATH, replaced atomically
(written next to it, then renamed), so a web server or Jenkins never serves half a page.

The check results recorded on the remote (``refs/continuity/results``,
keyed by tree: see `continuity.results`) say whether each candidate and
each environment's revision is tested: `recorded_results` turns revisions
into their recorded checks, a configured check without a result included
("not run"), so "passed" means what ``status`` calls tested.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Callable

from invoke import Context, task

from . import config as _config
from . import culprit as _culprit
from . import results as _results
from ._text import redact
from .boundary import LINE_HELP, boundary
from .config import Settings
from .errors import GitError, UsageError
from .git import Git
from .ledger import Entry, Ledger, LedgerDamaged, State
from .lock import assessment, list_locks
from .page_html import TIME_FORMAT, Candidate, CheckResult, EnvironmentView, Event, LockView, Page, render
from .remote import Snapshot, missing_branches, reach
from .report import Reporter

__all__ = ["report", "gather", "check_target", "write_page", "Results", "no_results"]

EVENTS = 50  # ledger entries read per environment
CANDIDATES = 20  # master's commits listed

#: Recorded check results of revisions: ``results(git, settings, shas)`` returns
#: {sha: [CheckResult, ...]} for those that have some. Revisions left out show
#: "no recorded results" (a candidate) and "unknown" (an environment's "tested").
Results = Callable[[Git, Settings, Sequence[str]], Mapping[str, list[CheckResult]]]


def no_results(git: Git, settings: Settings, shas: Sequence[str]) -> Mapping[str, list[CheckResult]]:
    """No check result is recorded on the remote (yet): every revision is untested as far as we know."""
    return {}


def gather(snapshot: Snapshot, settings: Settings,
           results: Results = no_results) -> tuple[Page, LedgerDamaged | None]:
    """Read ``snapshot`` (the remote, read once) into a `Page`; also the first `LedgerDamaged` met."""
    git, master = snapshot.git, settings.branches.master
    if master not in snapshot.heads:
        raise missing_branches(settings, [master])
    master_sha = snapshot.heads[master]
    page = Page(line=settings.line, remote=_remote(git, settings), master=master, master_sha=master_sha,
                generated=datetime.now(timezone.utc).strftime(TIME_FORMAT), events_shown=EVENTS)
    page.candidates = _candidates(git, master_sha)
    damaged = None
    ledger = Ledger.of(git, settings, snapshot)
    for environment in _environment_names(ledger, settings):
        view, error = _environment(git, ledger, settings, environment, master_sha)
        page.environments.append(view)
        damaged = damaged or error
    page.locks = _locks(snapshot, settings)
    _add_results(page, results(git, settings, _revisions(page)))
    found = _culprit.known(settings, snapshot)
    if found is not None:
        page.culprit = "{} at {} contains {}; the pipeline waits for a fix".format(
            settings.branches.development, found.development[:12], found.said)
    return page, damaged


def _remote(git: Git, settings: Settings) -> str:
    url = redact(git.remote_url(settings.remote))
    return "{} ({})".format(settings.remote, url) if url else settings.remote


def _environment_names(ledger: Ledger, settings: Settings) -> list[str]:
    """The configured environments, then any other with records on the remote."""
    return list(dict.fromkeys(list(settings.known_environments()) + ledger.environments()))


def _environment(git: Git, ledger: Ledger, settings: Settings, name: str,
                 master_sha: str) -> tuple[EnvironmentView, LedgerDamaged | None]:
    view = EnvironmentView(name, configured=name in settings.known_environments())
    try:
        state = ledger.state(name, limit=EVENTS)
    except LedgerDamaged as exc:
        view.damaged = exc.message
        return view, exc
    view.events = [_event(entry) for entry in state.entries]
    if state.deployed:
        _runs(view, git, state, master_sha)
    return view, None


def _runs(view: EnvironmentView, git: Git, state: State, master_sha: str) -> None:
    """What ``view``'s environment runs: the revision, its subject, since when, by whom."""
    view.revision = state.deployed
    view.marked_bad = state.deployed in state.bad
    if git.commit(state.deployed):
        view.subject = git.run("log", "-1", "--format=%s", state.deployed, "--")
        view.behind = git.count("{}..{}".format(state.deployed, master_sha))
    deploy = next((e for e in state.entries if e.result == "deployed" and e.revision == state.deployed), None)
    if deploy is not None:
        view.since, view.by, view.task = deploy.time, deploy.by, deploy.task


def _event(entry: Entry) -> Event:
    detail = entry.extra.get("error") or entry.extra.get("reason") or ""
    return Event(time=entry.time, result=entry.result, revision=entry.revision, task=entry.task, by=entry.by,
                 detail=detail)


def _candidates(git: Git, master_sha: str) -> list[Candidate]:
    """master's newest commits on its first-parent line: the candidates the pipeline pushed."""
    out = git.run("log", "-z", "--first-parent", "--max-count={}".format(CANDIDATES),
                  "--format=%H%x00%s%x00%an%x00%ct", master_sha, "--")
    fields = out.split("\0")
    found = []
    for index in range(0, len(fields) - 3, 4):
        sha, subject, author, stamp = fields[index:index + 4]
        moment = datetime.fromtimestamp(int(stamp), timezone.utc) if stamp.isdigit() else None
        found.append(Candidate(sha.strip(), subject, author, moment.strftime(TIME_FORMAT) if moment else ""))
    return found


def _locks(snapshot: Snapshot, settings: Settings) -> list[LockView]:
    views = []
    for name, _, info in list_locks(snapshot, settings):
        state, _ = assessment(info, settings)
        holder = "pid {} on {}".format(info.get("pid", "?"), info.get("host", "?")) if "pid" in info else "unknown"
        views.append(LockView(name=name, holder=holder, since=info.get("started", ""), build=info.get("build", ""),
                              condition=_condition(state), detail=state))
    return views


def _condition(state: str) -> str:
    """One word for `lock.assessment`'s sentence: the badge of the lock."""
    if state.startswith("not a continuity lock"):
        return "foreign"
    if "probably gone" in state or "stale" in state:
        return "stale"
    if "gone" in state:
        return "gone"
    return "alive" if "alive" in state else "held"


def recorded_results(snapshot: Snapshot) -> Results:
    """The `Results` the remote holds (``refs/continuity/results``, as ``snapshot`` read it)."""
    store = None

    def results(git: Git, settings: Settings, shas: Sequence[str]) -> Mapping[str, list[CheckResult]]:
        nonlocal store
        store = store or _results.load(git, settings.remote, snapshot)
        found: dict[str, list[CheckResult]] = {}
        for sha in shas:
            try:
                tree = git.tree(sha)
            except GitError:  # not here (an old deploy of a revision this clone never fetched)
                continue
            recorded = store.for_tree(tree)
            if not any(rec.kind == "check" for rec in recorded.values()):
                continue
            found[sha] = [CheckResult(_label(rec), rec.status.replace("-", " "), rec.duration, rec.build)
                          for _, rec in sorted(recorded.items()) if rec.kind == "check"]
            found[sha] += [CheckResult(unit.name, "not run") for unit in _results.configured_checks(settings)
                           if unit.file not in recorded]
        return found

    return results


def _label(rec: _results.Recorded) -> str:
    return rec.name + (" (shard {}/{})".format(rec.shard, rec.shards) if rec.shard else "")


def _revisions(page: Page) -> list[str]:
    shas = [c.sha for c in page.candidates] + [e.revision for e in page.environments if e.revision]
    return list(dict.fromkeys(shas))


def _add_results(page: Page, recorded: Mapping[str, list[CheckResult]]) -> None:
    for candidate in page.candidates:
        if candidate.sha in recorded:
            candidate.checks = list(recorded[candidate.sha])
    verdicts = {c.sha: c.verdict for c in page.candidates if c.checks is not None}
    for env in page.environments:
        if env.revision in recorded and env.revision not in verdicts:
            verdicts[env.revision] = Candidate(env.revision, "", "", "", list(recorded[env.revision])).verdict
        env.tested = verdicts.get(env.revision, "")


# -- writing it -----------------------------------------------------------------------------------


def check_target(path: str) -> str:
    """The absolute path to write, once its directory exists and is writable; else a `UsageError`."""
    target = os.path.abspath(path)
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise UsageError("cannot write {}: the directory {} does not exist; create it first".format(path, directory))
    if os.path.isdir(target):
        raise UsageError("cannot write {}: it is a directory; give a file name, e.g. {}".format(
            path, os.path.join(path, "continuity.html")))
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError("cannot write {}: the directory {} is not writable".format(path, directory))
    return target


def write_page(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file next to it, then a rename."""
    target = check_target(path)
    mode = _mode(target)
    try:
        fd, temporary = tempfile.mkstemp(dir=os.path.dirname(target), prefix="." + os.path.basename(target) + ".",
                                         suffix=".tmp")
    except OSError as exc:
        raise UsageError("cannot write {}: {}".format(path, exc.strerror or exc)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException as exc:
        os.unlink(temporary)
        if isinstance(exc, OSError):
            raise UsageError("cannot write {}: {}".format(path, exc.strerror or exc)) from None
        raise


def _mode(target: str) -> int:
    """The mode of the file we replace, or what a new file gets under the umask (not the temp file's 0600)."""
    try:
        return os.stat(target).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


# -- the task -------------------------------------------------------------------------------------


@task(auto_shortflags=False,  # -h would be --html: no short options, as in `history`
      help={"html": "Write the page to this file (its directory must exist); it is replaced atomically.",
            "line": LINE_HELP})
@boundary
def report(c: Context, html: str | None = None, line: str | None = None) -> None:
    """Write an HTML page of what runs where, the deploys, master's candidates and the locks."""
    if not html:
        raise UsageError("continuity.report writes a page: give its file with --html PATH")
    settings = _config.settings(c, line=line)
    check_target(html)  # before reading the remote: a wrong path is found at once
    snapshot = reach(settings, [settings.branches.master])  # one fetch, as `status` reads
    page, damaged = gather(snapshot, settings, recorded_results(snapshot))
    write_page(html, render(page))
    Reporter().say("wrote {} ({} environment(s), {} lock(s) held)".format(html, len(page.environments),
                                                                          len(page.locks)))
    if damaged:
        raise damaged
