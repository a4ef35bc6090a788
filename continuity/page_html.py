"""The report page: plain data in, one self-contained HTML document out.

`continuity.page` reads the remote into a `Page` (dataclasses of strings and
numbers, nothing that talks to git); `render` turns it into one HTML file
with its CSS in a ``<style>`` element and its timelines as inline SVG: no
script, no font, image or stylesheet from anywhere, so it can be opened from
a disk, mailed, or published by Jenkins as it is.

Everything on the page may come from outside (commit subjects, branch and
environment names, BUILD_URLs, lock holders): every such text goes through
`_text`, which redacts credentials, flattens control characters and escapes
it for HTML; only http(s) URLs become links. The colours that carry meaning
(the timeline's marks) are SVG presentation attributes, not CSS, so they
survive a Content-Security-Policy that blocks inline styles (Jenkins').
"""

from __future__ import annotations

from dataclasses import field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from ._dataclass import dataclass
from ._text import one_line

__all__ = ["escape", "Page", "EnvironmentView", "Event", "Candidate", "CheckResult", "LockView", "render", "parse_time",
           "TIME_FORMAT"]

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # the ledger's and the locks' timestamps (UTC)


# -- the data the page shows ---------------------------------------------------------


@dataclass
class Event:
    """One entry of an environment's ledger."""

    time: str
    result: str  # deployed | failed | bad
    revision: str
    task: str = ""
    by: str = ""  # a BUILD_URL or user@host
    detail: str = ""  # the error of a failed deploy, the reason of a bad mark

    @property
    def kind(self) -> str:
        """What the timeline shows: deployed, rollback, failed or bad."""
        return "rollback" if self.result == "deployed" and self.task == "rollback" else self.result


@dataclass
class CheckResult:
    """One check's recorded result on a revision."""

    name: str
    status: str  # passed | failed | timed out | flaky | not run (a configured check with no result)
    seconds: float | None = None
    build: str = ""  # where it ran: a BUILD_URL


@dataclass
class Candidate:
    """A commit on master's first-parent line, with its recorded results when there are some."""

    sha: str
    subject: str
    author: str
    time: str
    checks: list[CheckResult] | None = None  # None: nothing recorded for it
    culprits: list[str] = field(default_factory=list)  # commits blamed for a failure

    @property
    def verdict(self) -> str:
        """passed, failed, untested (a configured check has no result) or "" (nothing recorded)."""
        if self.checks is None:
            return ""
        if any(c.status in ("failed", "timed out") for c in self.checks):
            return "failed"
        return "untested" if any(c.status == "not run" for c in self.checks) else "passed"

    @property
    def seconds(self) -> float | None:
        durations = [c.seconds for c in self.checks or [] if c.seconds is not None]
        return sum(durations) if durations else None


@dataclass
class EnvironmentView:
    """What runs in one environment and what happened there."""

    name: str
    configured: bool = True
    revision: str = ""  # what runs there, "" when nothing is recorded
    subject: str = ""
    since: str = ""  # when the deploy of ``revision`` was recorded
    by: str = ""
    task: str = ""
    behind: int | None = None  # commits master has that ``revision`` lacks
    tested: str = ""  # passed | failed | untested | "" (unknown: no recorded results)
    marked_bad: bool = False
    damaged: str = ""  # why its records cannot be read
    events: list[Event] = field(default_factory=list)  # newest first


@dataclass
class LockView:
    name: str
    holder: str
    since: str
    build: str
    condition: str  # alive | gone | stale | held | foreign
    detail: str


@dataclass
class Page:
    line: str
    remote: str  # the remote's name and (redacted) URL
    master: str  # the master branch's name
    master_sha: str
    generated: str  # TIME_FORMAT, UTC
    environments: list[EnvironmentView] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    locks: list[LockView] = field(default_factory=list)
    events_shown: int = 0  # at most this many events per environment are read
    culprit: str = ""  # "development at 1a2b3c contains 9f3e2a1 'Parse dates' by Alice, which breaks 'unit tests'"


# -- text -------------------------------------------------------------------------------


def escape(text: str) -> str:
    """``html.escape(text, quote=True)``, without importing `html` (its entities) at every ``fab`` start."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            .replace("'", "&#x27;"))


def _t(text: object) -> str:
    """Outside text made safe: redacted, on one line, HTML-escaped (quotes too)."""
    return escape(one_line(str(text)))


def _url(text: str) -> str | None:
    """The redacted URL if ``text`` is an http(s) URL with a host, else None."""
    url = one_line(text)
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.netloc and " " not in url else None


def _link(text: str, label: str | None = None) -> str:
    """``text`` as a link when it is an http(s) URL, as plain text otherwise."""
    url = _url(text)
    if url is None:
        return _t(label or text) if text else '<span class="none">&#8212;</span>'
    return '<a href="{}" rel="noopener noreferrer">{}</a>'.format(_t(url), _t(label or url))


def _badge(kind: str, text: str) -> str:
    return '<span class="badge {}">{}</span>'.format(_t(kind), _t(text))


def _sha(sha: str) -> str:
    return '<code title="{}">{}</code>'.format(_t(sha), _t(sha[:12])) if sha else ""


def parse_time(stamp: str) -> datetime | None:
    try:
        return datetime.strptime(stamp, TIME_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def _when(stamp: str) -> str:
    """A timestamp as a <time> element (readable, and machine-readable)."""
    moment = parse_time(stamp)
    if moment is None:
        return _t(stamp) if stamp else '<span class="none">&#8212;</span>'
    return '<time datetime="{}">{}</time>'.format(_t(stamp), moment.strftime("%Y-%m-%d %H:%M UTC"))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return '<span class="none">&#8212;</span>'
    if seconds < 60:
        return "{:.1f}s".format(seconds)
    minutes = int(seconds // 60)
    return "{}m{:02d}s".format(minutes, int(seconds % 60))


# -- the document --------------------------------------------------------------------------

_CSS = """
:root{--fg:#1b1f24;--muted:#57606a;--bg:#fff;--card:#f6f8fa;--line:#d0d7de;--link:#0550ae;
--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--info:#0969da;--none:#6e7781}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;--card:#161b22;
--line:#30363d;--link:#58a6ff}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0 auto;max-width:72rem;padding:1rem;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
sans-serif;color:var(--fg);background:var(--bg);overflow-wrap:anywhere}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.2rem;margin:1.6rem 0 .6rem;border-bottom:1px solid var(--line)}
h3{font-size:1.05rem;margin:1rem 0 .4rem}
a{color:var(--link)}
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.meta,.none,.note{color:var(--muted)}
nav ul{list-style:none;padding:0;margin:.4rem 0;display:flex;flex-wrap:wrap;gap:.3rem 1rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(17rem,1fr));gap:.8rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.6rem .8rem;min-width:0}
.card h3{margin:0 0 .3rem}
dl{margin:0;display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.15rem .6rem}
dt{color:var(--muted)}dd{margin:0;min-width:0}
.scroll{overflow-x:auto;max-width:100%;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;vertical-align:top;padding:.3rem .5rem;border-bottom:1px solid var(--line)}
.scroll table{overflow-wrap:normal}
.scroll td.text{min-width:12rem;overflow-wrap:anywhere}
th,td time{white-space:nowrap}
.badge{display:inline-block;padding:0 .45rem;border-radius:1rem;font-size:12px;font-weight:600;color:#fff;
background:var(--none);white-space:nowrap}
.badge.deployed,.badge.passed,.badge.alive{background:var(--ok)}
.badge.failed,.badge.bad,.badge.damaged,.badge.foreign{background:var(--bad)}
.badge.rollback{background:var(--info)}
.badge.stale,.badge.gone,.badge.warn,.badge.untested,.badge.not-run{background:var(--warn)}
svg.timeline{display:block;width:100%;height:auto;max-width:48rem}
svg.timeline text{fill:var(--muted)}
.legend{font-size:13px;color:var(--muted)}
footer{margin-top:2rem;font-size:13px;color:var(--muted)}
@media (max-width:40rem){body{padding:.6rem;font-size:14px}h1{font-size:1.2rem}
th,td{padding:.25rem .35rem}}
@media print{:root{--fg:#000;--bg:#fff;--card:#fff;--link:#000}
body{max-width:none;padding:0;font-size:10pt}nav{display:none}
.scroll{overflow:visible}table{font-size:9pt}
.card,tr,svg.timeline{break-inside:avoid}h2,h3{break-after:avoid}
.badge,svg.timeline{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""

#: Fill colours of the timeline's marks, per kind (SVG attributes: no CSS needed).
_COLOURS = {"deployed": "#1a7f37", "rollback": "#0969da", "failed": "#cf222e", "bad": "#9a6700"}
_LANES = ("deployed", "rollback", "failed", "bad")


def render(page: Page) -> str:
    """The whole HTML document for ``page``."""
    title = "continuity: {} line".format(page.line)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="continuity">',
        "<title>{}</title>".format(_t(title)),
        "<style>{}</style>".format(_CSS),
        "</head>",
        "<body>",
        _header(page, title),
        _environments(page),
        _timelines(page),
        _candidates(page),
        _locks(page),
        '<footer><p>Written by <code>fab continuity.report</code> at {} from what {} holds. It reads the '
        "remote and changes nothing there.</p></footer>".format(_when(page.generated), _t(page.remote)),
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


def _header(page: Page, title: str) -> str:
    return (
        '<header><h1>{}</h1><p class="meta">Remote {} &#183; {} at {} &#183; written {}</p>'
        '<nav><ul><li><a href="#environments">Environments</a></li><li><a href="#timeline">Timeline</a></li>'
        '<li><a href="#candidates">Recent candidates</a></li><li><a href="#locks">Locks</a></li></ul></nav>'
        "</header>".format(_t(title), _t(page.remote), _t(page.master), _sha(page.master_sha), _when(page.generated))
    )


# -- environments ------------------------------------------------------------------------------


def _environments(page: Page) -> str:
    cards = "".join(_card(env, page.master) for env in page.environments)
    if not cards:
        cards = '<p class="none">No environment is configured and none has records on the remote.</p>'
    return '<section id="environments"><h2>Environments</h2><div class="cards">{}</div></section>'.format(cards)


def _card(env: EnvironmentView, master: str) -> str:
    head = '<h3 id="env-{}">{}</h3>'.format(_t(_anchor(env.name)), _t(env.name))
    if not env.configured:
        head += '<p class="note">Not configured; it has records on the remote.</p>'
    if env.damaged:
        return '<article class="card environment">{}{}<p>{}</p></article>'.format(
            head, _badge("damaged", "ledger damaged"), _t(env.damaged))
    if not env.revision:
        return '<article class="card environment">{}<p class="none">Nothing deployed yet.</p></article>'.format(head)
    rows = [
        ("Runs", "{} {}{}".format(_sha(env.revision), _t(env.subject),
                                  " " + _badge("bad", "marked bad") if env.marked_bad else "")),
        ("Since", _when(env.since)),
        ("By", _link(env.by)),
        ("Task", _t(env.task) or '<span class="none">&#8212;</span>'),
        ("Tested", _tested(env.tested)),
    ]
    if env.behind is not None:
        rows.append(("Behind " + _t(master), "{} commit{}".format(env.behind, "" if env.behind == 1 else "s")))
    items = "".join("<dt>{}</dt><dd>{}</dd>".format(name, value) for name, value in rows)
    return '<article class="card environment">{}<dl>{}</dl></article>'.format(head, items)


def _tested(verdict: str) -> str:
    if verdict:
        return _badge(verdict, verdict)
    return _badge("unknown", "unknown") + ' <span class="note">no recorded check results</span>'


def _anchor(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


# -- timelines ------------------------------------------------------------------------------------


def _timelines(page: Page) -> str:
    shown = [env for env in page.environments if env.events]
    if not shown:
        body = '<p class="none">No deploy is recorded yet.</p>'
    else:
        body = _legend(page) + "".join(_timeline(env, *_span(env, page.generated)) for env in shown)
    return '<section id="timeline"><h2>Timeline</h2>{}</section>'.format(body)


def _legend(page: Page) -> str:
    dots = " ".join(
        '<svg width="10" height="10" viewBox="0 0 10 10" aria-hidden="true"><circle cx="5" cy="5" r="5" '
        'fill="{}"/></svg> {}'.format(_COLOURS[kind], kind) for kind in _LANES)
    return ('<p class="legend">{} &#183; up to the newest {} events of each environment, from the oldest of them '
            "to when this page was written</p>".format(dots, page.events_shown))


def _span(env: EnvironmentView, generated: str) -> tuple[datetime, datetime]:
    """The time axis of a timeline: its oldest event shown, to when the page was written (a minute at least)."""
    moments = [m for m in (parse_time(e.time) for e in env.events) if m]
    end = max(moments + [parse_time(generated) or datetime.now(timezone.utc)])
    start = min(moments) if moments else end
    return (min(start, end - timedelta(minutes=1)), end)


_WIDTH, _LEFT, _RIGHT, _LANE, _TOP = 480, 72, 470, 20, 8


def _timeline(env: EnvironmentView, start: datetime, end: datetime) -> str:
    height = _TOP + _LANE * len(_LANES) + 26
    span = (end - start).total_seconds()
    out = ['<h3>{}</h3>'.format(_t(env.name)),
           '<svg class="timeline" data-environment="{0}" viewBox="0 0 {1} {2}" '
           'role="img" aria-label="deploys of {0} over time" xmlns="http://www.w3.org/2000/svg">'.format(
               _t(env.name), _WIDTH, height)]
    for index, kind in enumerate(_LANES):
        y = _TOP + _LANE * index + _LANE // 2
        out.append('<text x="0" y="{}" font-size="12" dominant-baseline="middle">{}</text>'.format(y, kind))
        out.append('<line x1="{}" x2="{}" y1="{y}" y2="{y}" stroke="#d0d7de" stroke-width="1"/>'.format(
            _LEFT, _RIGHT, y=y))
    axis = _TOP + _LANE * len(_LANES) + 4
    out.append('<line class="axis" x1="{0}" x2="{1}" y1="{2}" y2="{2}" stroke="#6e7781" stroke-width="1"/>'.format(
        _LEFT, _RIGHT, axis))
    for fraction, anchor in ((0.0, "start"), (0.5, "middle"), (1.0, "end")):
        moment = start + timedelta(seconds=span * fraction)
        out.append('<text x="{:.1f}" y="{}" font-size="11" text-anchor="{}">{}</text>'.format(
            _LEFT + (_RIGHT - _LEFT) * fraction, axis + 16, anchor, _t(_tick(moment, span))))
    for event in reversed(env.events):  # oldest first, so the newest mark is drawn on top
        out.append(_mark(event, start, span))
    out.append("</svg>")
    out.append(_events_table(env))
    return "".join(out)


def _tick(moment: datetime, span: float) -> str:
    return moment.strftime("%Y-%m-%d" if span > 3 * 86400 else "%m-%d %H:%M")


def _mark(event: Event, start: datetime, span: float) -> str:
    moment = parse_time(event.time)
    if moment is None or event.kind not in _LANES:
        return ""  # still in the table below, with the time as written
    x = _LEFT + (_RIGHT - _LEFT) * (moment - start).total_seconds() / span
    y = _TOP + _LANE * _LANES.index(event.kind) + _LANE // 2
    tip = "{} {} {} ({}{})".format(event.time, event.kind, event.revision[:12], event.task or "?",
                                   ", " + event.by if event.by else "")
    return ('<circle class="mark {0}" data-result="{0}" cx="{1:.1f}" cy="{2}" r="6" fill="{3}" stroke="#fff" '
            'stroke-width="1"><title>{4}</title></circle>'.format(event.kind, x, y, _COLOURS[event.kind], _t(tip)))


def _events_table(env: EnvironmentView) -> str:
    rows = "".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"text\">{}</td></tr>".format(
            _when(e.time), _badge(e.kind, e.kind), _sha(e.revision), _t(e.task), _link(e.by), _t(e.detail))
        for e in env.events)
    return ('<div class="scroll"><table class="events" data-environment="{}"><thead><tr><th>Time</th><th>Result</th>'
            "<th>Revision</th><th>Task</th><th>By</th><th>Detail</th></tr></thead><tbody>{}</tbody></table></div>"
            .format(_t(env.name), rows))


# -- candidates ---------------------------------------------------------------------------------------


def _candidates(page: Page) -> str:
    recorded = [c for c in page.candidates if c.checks is not None]
    rows = "".join(_candidate_row(c) for c in page.candidates)
    note = "" if recorded else '<p class="note">{}</p>'.format(
        "No recorded results: check results are shown here once continuity records them on the remote.")
    if page.culprit:
        note = '<p class="culprit">{} {}</p>'.format(_badge("failed", "culprit"), _t(page.culprit)) + note
    table = ('<div class="scroll"><table class="candidates"><thead><tr><th>Revision</th><th>Subject</th><th>Author'
             "</th><th>Time</th><th>Checks</th><th>Duration</th><th>Culprits</th></tr></thead><tbody>{}</tbody>"
             "</table></div>".format(rows)) if rows else '<p class="none">No commits on {}.</p>'.format(
        _t(page.master))
    return ('<section id="candidates"><h2>Recent candidates</h2><p class="meta">{}\'s newest commits (first parent '
            "line), newest first.</p>{}{}{}</section>".format(_t(page.master), note, table, _flaky(recorded)))


def _candidate_row(c: Candidate) -> str:
    if c.checks is None:
        checks = _badge("unknown", "no recorded results")
    else:
        checks = _badge(c.verdict, c.verdict) + "".join(
            '<br>{} {} {}'.format(_badge(r.status.replace(" ", "-"), r.status), _t(r.name), _duration(r.seconds))
            for r in c.checks)
    culprits = ", ".join(_t(s) for s in c.culprits) or '<span class="none">&#8212;</span>'
    return ("<tr><td>{}</td><td class=\"text\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"
            .format(_sha(c.sha), _t(c.subject), _t(c.author), _when(c.time), checks, _duration(c.seconds), culprits))


def _flaky(recorded: list[Candidate]) -> str:
    names = sorted({r.name for c in recorded for r in c.checks or [] if r.status == "flaky"})
    if not recorded:
        return ""
    if not names:
        return '<h3>Flaky checks</h3><p class="none">None among these candidates.</p>'
    return '<h3>Flaky checks</h3><ul class="flaky">{}</ul>'.format("".join("<li>{}</li>".format(_t(n)) for n in names))


# -- locks ------------------------------------------------------------------------------------------------


def _locks(page: Page) -> str:
    if not page.locks:
        return '<section id="locks"><h2>Locks</h2><p class="none">No lock is held.</p></section>'
    rows = "".join(
        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"text\">{}</td></tr>"
        .format(_t(lock.name), _badge(lock.condition, lock.condition), _t(lock.holder), _when(lock.since),
                _link(lock.build), _t(lock.detail))
        for lock in page.locks)
    return ('<section id="locks"><h2>Locks</h2><div class="scroll"><table class="locks"><thead><tr><th>Lock</th>'
            "<th>State</th><th>Holder</th><th>Since</th><th>Build</th><th>Detail</th></tr></thead><tbody>{}</tbody>"
            "</table></div></section>".format(rows))
