"""Notifications: tell the people who can fix it (settings ``continuity.notify``).

After a run, `send` looks at its `report.RunRecord` and, when the run's
event is one of ``events`` (``failure`` by default; also ``success`` and
``deploy``), sends one message through each channel:

* **email** over SMTP (plain, STARTTLS or SSL) to the authors of the commits
  the run brought in, plus the configured ``recipients``;
* **webhooks**: a JSON POST to each URL, either our own payload (``json``)
  or one a Slack incoming webhook accepts (``slack``).

A channel that fails is one warning line; `send` never raises, so a
notification never changes the run's result, and each channel has ``timeout``
seconds in all (connect, send, answer) before we stop waiting for it. Secrets
(the SMTP password, a webhook URL, which usually carries a token) come only
from environment variables named in the settings, and never appear in
output: URLs are shown as scheme and host. What a message says is redacted
(no URL user-info), free of control characters where people read it, and
bounded: 50 commits listed, ``max_authors`` authors written to, the rest
counted.
"""

import json
import os
import re
import socket
import threading
import urllib.parse
from dataclasses import dataclass
from email.utils import formataddr, formatdate, make_msgid, parseaddr

# smtplib, ssl, urllib.request and email.message are imported where mail or a
# webhook is sent: `import continuity` must stay light for the runs that send
# nothing.

from ._text import one_line, redact, safe
from .config import _boolean, _count, _kind, _name, _reject_unknown, _seconds, _string_list
from .errors import ConfigError

__all__ = ["COLLECTION_DEFAULTS", "NotifySettings", "EmailSettings", "Webhook", "parse_settings", "send",
           "events_of", "compose", "payload", "recipients"]

EVENTS = ("failure", "success", "deploy")
SECURITY_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
FORMATS = ("json", "slack")

_EMAIL_KEYS = ("host", "port", "security", "username", "username_env", "password_env", "sender", "recipients",
               "authors", "max_authors")
_WEBHOOK_KEYS = ("url", "url_env", "format")
_KEYS = ("events", "timeout", "email", "webhooks")

#: What Invoke may map ``FABRIC_CONTINUITY_NOTIFY_*`` variables onto. Only
#: ``None``: a list default would crash ``fab`` on such a variable, and a
#: boolean one would read "false" as true. We parse the strings ourselves.
COLLECTION_DEFAULTS = {
    "events": None,
    "timeout": None,
    "email": {key: None for key in _EMAIL_KEYS},
    "webhooks": None,
}

_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ADDRESS = re.compile(r"^[^@\s<>,;\"']+@[^@\s<>,;\"']+$")
_SPLIT = re.compile(r"[,\s]+")
_SUBJECT_CHARS = 150
_SLACK_TAIL_CHARS = 2500
_COMMITS_LISTED = 50  # in the mail body and the JSON document; the others are counted
_AUTHORS_NAMED = 10  # in a Slack message
_MAX_AUTHORS = 20  # default of email.max_authors


@dataclass(frozen=True)
class EmailSettings:
    host: str
    port: int
    security: str  # none | starttls | ssl
    sender: str  # "ci@example.com" or "CI <ci@example.com>"
    recipients: tuple  # always copied, whatever the commits
    authors: bool  # also the authors of the commits the run brought in
    max_authors: int = _MAX_AUTHORS  # at most this many of them: those of the newest commits
    username: object = None
    username_env: object = None  # names of environment variables, never values
    password_env: object = None


@dataclass(frozen=True)
class Webhook:
    url: object = None  # written in the settings, or
    url_env: object = None  # the name of the environment variable holding it
    format: str = "json"  # json | slack


@dataclass(frozen=True)
class NotifySettings:
    events: tuple  # of EVENTS
    timeout: float  # seconds per channel, in all: connect, send and answer
    email: object = None  # EmailSettings or None
    webhooks: tuple = ()  # (Webhook, ...)


# -- settings --------------------------------------------------------------------


def parse_settings(raw):
    """`NotifySettings` from the ``continuity.notify`` mapping; None when no channel is set."""
    _reject_unknown(raw, _KEYS, "continuity.notify")
    if isinstance(raw.get("email"), dict):
        _reject_unknown(raw["email"], _EMAIL_KEYS, "continuity.notify.email")
    raw = _drop_none(raw)
    email = _email(raw["email"]) if raw.get("email") else None
    webhooks = _webhooks(raw.get("webhooks", []))
    events = _events(raw.get("events", ["failure"]))
    timeout = _seconds(raw.get("timeout", 10), "continuity.notify.timeout", allow_none=False)
    if (email is None and not webhooks) or not events:
        return None
    return NotifySettings(events, timeout, email, webhooks)


def _drop_none(value):
    """Unset keys removed: ``None``, and mappings left empty (the collection defaults)."""
    if not isinstance(value, dict):
        return value
    kept = {key: _drop_none(item) for key, item in value.items()}
    return {key: item for key, item in kept.items() if item is not None and item != {}}


def _events(value):
    where = "continuity.notify.events"
    events = _string_list(value, where, _SPLIT.split)
    for event in events:
        if event not in EVENTS:
            raise ConfigError("{}: {!r} is not an event; use {}".format(where, event, ", ".join(EVENTS)))
    return tuple(dict.fromkeys(events))


def _email(raw):
    where = "continuity.notify.email"
    if not isinstance(raw, dict):
        raise ConfigError("{} must be a mapping (host, sender, recipients, ...), got {}".format(where, _kind(raw)))
    security = raw.get("security", "none")
    if not isinstance(security, str) or security not in SECURITY_PORTS:
        raise ConfigError("{}.security must be one of none, starttls, ssl; got {!r}".format(where, security))
    email = EmailSettings(
        host=_name(raw.get("host"), where + ".host"),
        port=_port(raw.get("port", SECURITY_PORTS[security]), where + ".port"),
        security=security,
        sender=_sender(raw.get("sender"), where + ".sender"),
        recipients=_addresses(raw.get("recipients", []), where + ".recipients"),
        authors=_boolean(raw.get("authors", True), where + ".authors"),
        max_authors=_count(raw.get("max_authors", _MAX_AUTHORS), where + ".max_authors"),
        username=_name(raw["username"], where + ".username") if "username" in raw else None,
        username_env=_env_name(raw.get("username_env"), where + ".username_env"),
        password_env=_env_name(raw.get("password_env"), where + ".password_env"),
    )
    _check_email(email, where)
    return email


def _check_email(email, where):
    if not email.authors and not email.recipients:
        raise ConfigError("{}: no one to write to; set recipients or authors: true".format(where))
    if email.username and email.username_env:
        raise ConfigError("{}: set username or username_env, not both".format(where))
    if email.password_env and not (email.username or email.username_env):
        raise ConfigError("{}: password_env is set but no username; set username or username_env".format(where))


def _port(value, where):
    port = _count(value, where, maximum=65535)
    if port > 65535:
        raise ConfigError("{} must be a port number (1-65535), got {!r}".format(where, value))
    return port


def _sender(value, where):
    _, address = parseaddr(_name(value, where))
    if not _ADDRESS.match(address):
        raise ConfigError("{} must be an email address (ci@example.com or 'CI <ci@example.com>'), got {!r}".format(
            where, value))
    return value


def _addresses(value, where):
    addresses = _string_list(value, where, _SPLIT.split)
    for address in addresses:
        if not isinstance(address, str) or not _ADDRESS.match(address):
            raise ConfigError("{}: {!r} is not an email address (name@example.com)".format(where, address))
    return tuple(dict.fromkeys(addresses))


def _env_name(value, where):
    if value is None:
        return None
    if not isinstance(value, str) or not _ENV_VAR.match(value):
        raise ConfigError("{} must be the name of an environment variable (like SMTP_PASSWORD), got {!r}".format(
            where, value))
    return value


def _webhooks(value):
    where = "continuity.notify.webhooks"
    if isinstance(value, str):  # from FABRIC_CONTINUITY_NOTIFY_WEBHOOKS: URLs
        value = [part for part in _SPLIT.split(value) if part]
    if not isinstance(value, list):
        raise ConfigError("{} must be a list of mappings with url or url_env, got {}".format(where, _kind(value)))
    return tuple(_webhook(item, "{}[{}]".format(where, index)) for index, item in enumerate(value, 1))


def _webhook(item, where):
    if isinstance(item, str):
        item = {"url": item}
    if not isinstance(item, dict):
        raise ConfigError("{} must be a mapping with url or url_env (and format), got {}".format(where, _kind(item)))
    _reject_unknown(item, _WEBHOOK_KEYS, where)
    if ("url" in item) == ("url_env" in item):
        raise ConfigError("{}: set exactly one of url and url_env (url_env keeps a token out of fabric.yaml)".format(
            where))
    if "url" in item and not _is_http_url(item["url"]):
        # Do not print the value: it may hold a token.
        raise ConfigError("{}.url must be an http:// or https:// URL".format(where))
    form = item.get("format", "json")
    if form not in FORMATS:
        raise ConfigError("{}.format must be json or slack, got {!r}".format(where, form))
    return Webhook(url=item.get("url"), url_env=_env_name(item.get("url_env"), where + ".url_env"), format=form)


def _is_http_url(value):
    if not isinstance(value, str):
        return False
    parts = urllib.parse.urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


# -- when and to whom --------------------------------------------------------------


def events_of(record):
    """The events a run is: {"failure"}, or some of {"success", "deploy"}, or none.

    A run that found nothing to do, or a dry run, is no event: a job that
    polls every few minutes must not write every few minutes.
    """
    if not record.ok:
        return {"failure"}
    events = set()
    if record.state not in ("nothing-to-do", "planned"):
        events.add("success")
    if any(str(result).startswith("deployed") for result in record.deployed.values()):
        events.add("deploy")
    return events


def recipients(email, record):
    """[(name, address)]: the commits' authors (when enabled), then ``recipients``; each once.

    Authors come newest commit first. A name is put on one line (git keeps
    control characters in it, a mail header cannot hold them); an address
    that is not a plain one is left out.
    """
    people = []
    if email.authors:
        people += [(one_line(name), address) for _sha, _subject, name, address in record.commits]
    people += [("", address) for address in email.recipients]
    seen, unique = set(), []
    for name, address in people:
        if _ADDRESS.match(address or "") and safe(address) == address and address.lower() not in seen:
            seen.add(address.lower())
            unique.append((name, address))
    return unique


def _bounded(email, people):
    """(who to write to, how many authors are left out): every one of ``recipients``, ``max_authors`` authors."""
    configured = {address.lower() for address in email.recipients}
    kept, authors = [], 0
    for person in people:
        if person[1].lower() not in configured:
            authors += 1
            if authors > email.max_authors:
                continue
        kept.append(person)
    return kept, max(0, authors - email.max_authors)


# -- sending -------------------------------------------------------------------------


class _NotSent(Exception):
    """A channel cannot be used (a variable is not set...): one warning line."""


def _within(timeout, deliver, record):
    """``deliver(record)``, waited for ``timeout`` seconds in all.

    Socket timeouts bound each read, not the whole exchange: a server that
    trickles a byte a second, or a slow name lookup, would never trip them.
    So the channel runs in a daemon thread, and at the deadline we stop
    waiting for it; being a daemon, it cannot keep ``fab`` from exiting.
    """
    outcome = {}

    def run():
        try:
            outcome["sentence"] = deliver(record)
        except BaseException as exc:  # handed to the caller, which reports it
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="continuity-notify", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise _NotSent("not done within {:g}s (continuity.notify.timeout); stopped waiting".format(timeout))
    if "error" in outcome:
        raise outcome["error"]
    return outcome["sentence"]


def send(settings, record, say=print):
    """Send the notifications ``record`` calls for. Never raises.

    One line per channel: what was sent, or a warning saying why not.
    """
    try:
        if not events_of(record) & set(settings.events):
            return
        channels = _channels(settings)
    except Exception as exc:  # our bug: still never turn a run red
        say("warning: notify: nothing sent: {}: {}".format(type(exc).__name__, exc))
        return
    for label, deliver, secrets in channels:
        try:
            say("notify: " + _within(settings.timeout, deliver, record))
        except (KeyboardInterrupt, SystemExit) as exc:
            say("warning: notify: interrupted ({}); the remaining notifications were not sent".format(
                type(exc).__name__))
            raise
        except BaseException as exc:
            if not isinstance(exc, Exception):  # SIGTERM (Terminated): stop like Ctrl-C
                raise
            say(_scrub("warning: notify: {} not sent: {}".format(label, _reason(exc, settings.timeout)), secrets))


def _channels(settings):
    """[(label, deliver(record) -> sentence, secrets to scrub)], labels free of secrets."""
    channels = []
    if settings.email is not None:
        email = settings.email
        label = "email via {}:{}".format(email.host, email.port)
        secrets = _values(email.password_env)
        channels.append((label, lambda record, e=email: _send_email(e, record, settings.timeout), secrets))
    for hook in settings.webhooks:
        url = hook.url or os.environ.get(hook.url_env or "", "")
        label = "webhook {} ({})".format(mask_url(url) if url else "from $" + hook.url_env, hook.format)
        channels.append((label, lambda record, h=hook, u=url: _send_webhook(h, u, record, settings.timeout),
                         _url_secrets(url)))
    return channels


def _values(*env_names):
    return [os.environ[name] for name in env_names if name and os.environ.get(name)]


def _url_secrets(url):
    """The URL and the parts of it an error message might quote alone."""
    try:
        parts = urllib.parse.urlsplit(url)
        return [url, parts.path + ("?" + parts.query if parts.query else ""), parts.query, parts.password or ""]
    except ValueError:
        return [url]


def _scrub(text, secrets):
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def mask_url(url):
    """Scheme and host of ``url``: the path and query often carry a token."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or "?"
        port = ":{}".format(parts.port) if parts.port else ""
    except ValueError:
        return "(an unreadable URL)"
    return "{}://{}{}".format(parts.scheme or "?", host, port)


def _reason(exc, timeout):
    """Why a channel failed, in a few words (never the URL: urllib may show it)."""
    import smtplib
    import ssl
    import urllib.error

    if isinstance(exc, _NotSent):
        return str(exc)
    if isinstance(exc, urllib.error.HTTPError):
        return "HTTP {} {}".format(exc.code, exc.reason)
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    if isinstance(exc, smtplib.SMTPResponseException):
        message = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return "the SMTP server said {} {}".format(exc.smtp_code, " ".join(str(message).split()))
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "every recipient was refused: " + ", ".join(exc.recipients)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "no answer within {:g}s".format(timeout)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "the server's TLS certificate is not trusted ({}); point SSL_CERT_FILE at your CA bundle".format(
            exc.verify_message or exc.reason)
    if isinstance(exc, ssl.SSLError):
        return "TLS failed: {}".format(exc.reason or exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    lines = str(exc).strip().splitlines()
    return "{}: {}".format(type(exc).__name__, lines[-1] if lines else "no message")


# -- email --------------------------------------------------------------------------


def _send_email(email, record, timeout):
    people, left_out = _bounded(email, recipients(email, record))
    if not people:
        return "email: no one to write to (no commits brought in, no recipients configured); nothing sent"
    message = _email_message(email, record, people, left_out)
    with _smtp(email, timeout) as smtp:
        _login(smtp, email)
        smtp.send_message(message, from_addr=parseaddr(email.sender)[1], to_addrs=[a for _, a in people])
    sentence = "email sent to {} via {}:{}".format(", ".join(a for _, a in people), email.host, email.port)
    return sentence + ("; " + _left_out(email, left_out) if left_out else "")


def _left_out(email, count):
    return "not sent to {} other author(s) of these commits (continuity.notify.email.max_authors is {})".format(
        count, email.max_authors)


def _email_message(email, record, people, left_out=0):
    from email.message import EmailMessage

    subject, body = compose(record)
    if left_out:
        body += "\nNote: {}.\n".format(_left_out(email, left_out))
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = email.sender
    message["To"] = ", ".join(formataddr(person) for person in people)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid("continuity", domain=parseaddr(email.sender)[1].rpartition("@")[2])
    message["X-Continuity-Line"] = record.line
    message["X-Continuity-Result"] = _status(record)
    message.set_content(body)
    return message


def _smtp(email, timeout):
    import smtplib
    import ssl

    context = ssl.create_default_context()  # honours SSL_CERT_FILE for a private CA
    if email.security == "ssl":
        return smtplib.SMTP_SSL(email.host, email.port, timeout=timeout, context=context)
    smtp = smtplib.SMTP(email.host, email.port, timeout=timeout)
    if email.security == "starttls":
        try:
            smtp.starttls(context=context)
        except BaseException:
            smtp.close()
            raise
    return smtp


def _login(smtp, email):
    if not email.password_env:
        return
    password = os.environ.get(email.password_env)
    username = email.username or os.environ.get(email.username_env or "")
    if not password:
        raise _NotSent("environment variable {} (continuity.notify.email.password_env) is not set".format(
            email.password_env))
    if not username:
        raise _NotSent("environment variable {} (continuity.notify.email.username_env) is not set".format(
            email.username_env))
    smtp.login(username, password)


# -- webhooks --------------------------------------------------------------------------


def _send_webhook(hook, url, record, timeout):
    if not url:
        raise _NotSent("environment variable {} (url_env) is not set".format(hook.url_env))
    if not _is_http_url(url):
        raise _NotSent("the value of {} is not an http:// or https:// URL".format(hook.url_env))
    import urllib.request

    body = json.dumps(payload(record, hook.format)).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "continuity",
    })
    with urllib.request.build_opener(_no_redirect()).open(request, timeout=timeout) as response:
        response.read()
        status = response.status
    return "webhook {} ({}) sent: HTTP {}".format(mask_url(url), hook.format, status)


def _no_redirect():
    """A redirect is an error: urllib would follow it as a GET and drop the body."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            return None

    return NoRedirect


# -- the message ------------------------------------------------------------------------


def _status(record):
    if record.ok:
        return "ok"
    return "stopped" if record.summary == "stopped" else "FAILED"


def _first_line(text):
    lines = (text or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def _headline(record):
    """"pipeline FAILED on main at stage check"."""
    text = "{} {} on {}".format(record.task, _status(record), record.line)
    if not record.ok and record.failed_stage:
        text += " at stage " + record.failed_stage
    return text


def _short_error(record):
    """The error's first line, without the "; last output:" that announces the tail."""
    return _trim(_first_line(record.error)) or _trim(record.summary)


def _trim(text):
    return re.sub(r"[;:,\s]*last output:?$", "", text or "").rstrip(":; ")


def _revision_rows(record):
    labels = {
        "base": "base ({})".format(record.branches.get("master", "master")),
        "development": record.branches.get("development", "development"),
        "candidate": "candidate",
    }
    return [(labels.get(key, key), sha) for key, sha in record.revisions.items() if sha]


def compose(record):
    """(subject, plain-text body) of the message about ``record``: redacted, no control characters."""
    detail = record.summary if record.ok else _short_error(record)
    subject = one_line("[continuity] {}: {}".format(_headline(record), detail))
    if len(subject) > _SUBJECT_CHARS:
        subject = subject[: _SUBJECT_CHARS - 3] + "..."
    return subject, safe("\n".join(_body_lines(record)) + "\n")


def _body_lines(record):
    lines = ["continuity: " + _headline(record), "", "Result:  " + _trim(record.summary)]
    if record.failed_stage:
        lines.append("Stage:   " + record.failed_stage)
    if record.failed_command:
        lines.append("Command: " + record.failed_command)
    if record.build_url:
        lines.append("Build:   " + record.build_url)
    lines += _section("Revisions", ["{:<24} {}".format(label, sha) for label, sha in _revision_rows(record)])
    lines += _section("Commits brought in ({})".format(len(record.commits)), _commit_rows(record.commits))
    lines += _section("Deploys", ["{}: {}".format(env, result) for env, result in record.deployed.items()])
    lines += _failure_lines(record)
    lines += _section("Stages", ["{:<9} {:<8} {:>7.2f}s  {}".format(
        s.name, s.status, s.seconds, s.detail).rstrip() for s in record.stages])
    return lines


def _commit_rows(commits):
    rows = ["{}  {}  ({} <{}>)".format(sha[:12], *map(one_line, (subject, name, address)))
            for sha, subject, name, address in commits[:_COMMITS_LISTED]]
    if len(commits) > _COMMITS_LISTED:
        rows.append("... and {} more".format(len(commits) - _COMMITS_LISTED))
    return rows


def _failure_lines(record):
    if record.output_tail.strip():
        title = "Last output of `{}`".format(record.failed_command) if record.failed_command else "Last output"
        return _section(title, ["| " + line for line in record.output_tail.rstrip().splitlines()])
    if record.error.strip():
        return _section("Error", record.error.strip().splitlines())
    return []


def _section(title, rows):
    return ["", title + ":"] + ["  " + row for row in rows] if rows else []


def payload(record, form="json"):
    """The webhook body: our JSON document, or a Slack message; no URL user-info in either."""
    return _redacted(_slack(record) if form == "slack" else _document(record))


def _redacted(value):
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(item) for item in value]
    return value


def _document(record):
    subject, body = compose(record)
    return {
        "source": "continuity",
        "event": sorted(events_of(record)),
        "status": _status(record),
        "task": record.task,
        "line": record.line,
        "ok": record.ok,
        "state": record.state,
        "summary": record.summary,
        "failed_stage": record.failed_stage,
        "failed_command": record.failed_command,
        "output_tail": record.output_tail,
        "error": record.error,
        "revisions": dict(record.revisions),
        "branches": dict(record.branches),
        "commits": [dict(zip(("sha", "subject", "author", "email"), c)) for c in record.commits[:_COMMITS_LISTED]],
        "commits_total": len(record.commits),
        "deployed": dict(record.deployed),
        "build_url": record.build_url,
        "remote": record.remote,
        "stages": [{"name": s.name, "status": s.status, "seconds": round(s.seconds, 3), "detail": s.detail}
                   for s in record.stages],
        "title": subject,
        "text": body,
    }


def _slack(record):
    """Slack's incoming-webhook format (``text``, mrkdwn); Mattermost reads it too."""
    esc = _slack_escape
    lines = ["*continuity: {}*".format(esc(_headline(record))), esc(_trim(record.summary))]
    if record.failed_command:
        lines.append("Command: `{}`".format(esc(record.failed_command)))
    revisions = ", ".join("{} `{}`".format(esc(label), sha[:12]) for label, sha in _revision_rows(record))
    if revisions:
        lines.append("Revisions: " + revisions)
    authors = list(dict.fromkeys(name for _sha, _subject, name, _address in record.commits))
    if authors:
        named = ", ".join(authors[:_AUTHORS_NAMED])
        if len(authors) > _AUTHORS_NAMED:
            named += " and {} others".format(len(authors) - _AUTHORS_NAMED)
        lines.append("Commits: {} by {}".format(len(record.commits), esc(named)))
    if record.build_url:
        lines.append("<{}|Build>".format(record.build_url.replace("|", "%7C").replace(">", "%3E")))
    tail = record.output_tail.rstrip()[-_SLACK_TAIL_CHARS:]
    if tail:
        lines.append("```\n{}\n```".format(esc(tail)))
    return {"text": safe("\n".join(lines))}


def _slack_escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
