"""Mail over SMTP to the people who can fix it (``continuity.notify.email``).

Who: the authors of the commits the run brought in (newest first, at most
``max_authors`` of them: a merge of thousands of commits must not mail
hundreds of people), plus the configured ``recipients``, each once. How:
plain SMTP, STARTTLS or SSL, with ``SSL_CERT_FILE`` honoured for a private
CA; the password comes from the variable ``password_env`` names, never from
a file. Names from git go into headers on one line, without control
characters: a header cannot be split by a commit's author.
"""

from __future__ import annotations

import os
import re
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

from .._dataclass import dataclass
from .._text import one_line, safe
from ..config import fields
from ..errors import ConfigError
from .channel import Channel, NotSent, Outlet, drop_none
from .message import Run, compose, status

if TYPE_CHECKING:  # smtplib and email.message are imported when a mail is sent
    import smtplib
    from email.message import EmailMessage

__all__ = ["EmailSettings", "CHANNEL", "recipients", "email_message"]

SECURITY_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
KEYS = ("host", "port", "security", "username", "username_env", "password_env", "sender", "recipients",
        "authors", "max_authors")
_MAX_AUTHORS = 20
_ADDRESS = re.compile(r"^[^@\s<>,;\"']+@[^@\s<>,;\"']+$")


@dataclass(frozen=True)
class EmailSettings:
    host: str
    port: int
    security: str  # none | starttls | ssl
    sender: str  # "ci@example.com" or "CI <ci@example.com>"
    recipients: tuple[str, ...]  # always copied, whatever the commits
    authors: bool  # also the authors of the commits the run brought in
    max_authors: int = _MAX_AUTHORS  # at most this many of them: those of the newest commits
    username: str | None = None
    username_env: str | None = None  # names of environment variables, never values
    password_env: str | None = None


# -- settings ------------------------------------------------------------------------


def parse(raw: Any, where: str) -> EmailSettings | None:
    if isinstance(raw, dict):
        fields.reject_unknown(raw, KEYS, where)
    raw = drop_none(raw)
    if not raw:
        return None
    if not isinstance(raw, dict):
        raise ConfigError("{} must be a mapping (host, sender, recipients, ...), got {}".format(where, fields.kind(raw)))
    security = raw.get("security", "none")
    if not isinstance(security, str) or security not in SECURITY_PORTS:
        raise ConfigError("{}.security must be one of none, starttls, ssl; got {!r}".format(where, security))
    email = EmailSettings(
        host=fields.name(raw.get("host"), where + ".host"),
        port=fields.count(raw.get("port", SECURITY_PORTS[security]), where + ".port", maximum=65535),
        security=security,
        sender=_sender(raw.get("sender"), where + ".sender"),
        recipients=_addresses(raw.get("recipients", []), where + ".recipients"),
        authors=fields.boolean(raw.get("authors", True), where + ".authors"),
        max_authors=fields.count(raw.get("max_authors", _MAX_AUTHORS), where + ".max_authors"),
        username=fields.name(raw["username"], where + ".username") if "username" in raw else None,
        username_env=fields.env_var_name(raw.get("username_env"), where + ".username_env"),
        password_env=fields.env_var_name(raw.get("password_env"), where + ".password_env"),
    )
    _check(email, where)
    return email


def _check(email: EmailSettings, where: str) -> None:
    if not email.authors and not email.recipients:
        raise ConfigError("{}: no one to write to; set recipients or authors: true".format(where))
    if email.username and email.username_env:
        raise ConfigError("{}: set username or username_env, not both".format(where))
    if email.password_env and not (email.username or email.username_env):
        raise ConfigError("{}: password_env is set but no username; set username or username_env".format(where))


def _sender(value: object, where: str) -> str:
    sender = fields.name(value, where)
    if not _ADDRESS.match(parseaddr(sender)[1]):
        raise ConfigError("{} must be an email address (ci@example.com or 'CI <ci@example.com>'), got {!r}".format(
            where, value))
    return sender


def _addresses(value: object, where: str) -> tuple[str, ...]:
    addresses = fields.string_list(value, where, fields.words)
    for address in addresses:
        if not isinstance(address, str) or not _ADDRESS.match(address):
            raise ConfigError("{}: {!r} is not an email address (name@example.com)".format(where, address))
    return tuple(dict.fromkeys(addresses))


# -- to whom -------------------------------------------------------------------------


def recipients(email: EmailSettings, record: Run) -> list[tuple[str, str]]:
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


def _bounded(email: EmailSettings, people: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], int]:
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


def _left_out(email: EmailSettings, number: int) -> str:
    return "not sent to {} other author(s) of these commits (continuity.notify.email.max_authors is {})".format(
        number, email.max_authors)


# -- sending -------------------------------------------------------------------------


def outlets(email: EmailSettings) -> list[Outlet]:
    password = os.environ.get(email.password_env or "")
    return [Outlet("email via {}:{}".format(email.host, email.port),
                   lambda record, timeout: _deliver(email, record, timeout),
                   (password,) if password else (), lambda timeout: _probe(email, timeout))]


def _deliver(email: EmailSettings, record: Run, timeout: float) -> str:
    import smtplib

    people, left_out = _bounded(email, recipients(email, record))
    if not people:
        return "email: no one to write to (no commits brought in, no recipients configured); nothing sent"
    message = email_message(email, record, people, left_out)
    try:
        with _smtp(email, timeout) as smtp:
            _login(smtp, email)
            smtp.send_message(message, from_addr=parseaddr(email.sender)[1], to_addrs=[a for _, a in people])
    except smtplib.SMTPResponseException as exc:
        error = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        raise NotSent("the SMTP server said {} {}".format(exc.smtp_code, " ".join(str(error).split()))) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise NotSent("every recipient was refused: " + ", ".join(exc.recipients)) from None
    sentence = "email sent to {} via {}:{}".format(", ".join(a for _, a in people), email.host, email.port)
    return sentence + ("; " + _left_out(email, left_out) if left_out else "")


def _probe(email: EmailSettings, timeout: float) -> str:
    """Connect, EHLO, STARTTLS or SSL and log in as a mail would, then QUIT: no message is sent."""
    import smtplib

    try:
        with _smtp(email, timeout) as smtp:
            smtp.ehlo_or_helo_if_needed()
            _login(smtp, email)
    except smtplib.SMTPResponseException as exc:
        error = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        raise NotSent("the SMTP server said {} {}".format(exc.smtp_code, " ".join(str(error).split()))) from None
    steps = ["EHLO"] + {"starttls": ["STARTTLS"], "ssl": ["TLS"]}.get(email.security, [])
    steps += ["login"] if email.password_env else []
    return "{}:{} answered {}, then QUIT; nothing sent".format(email.host, email.port, ", ".join(steps))


def email_message(email: EmailSettings, record: Run, people: list[tuple[str, str]], left_out: int = 0
                  ) -> EmailMessage:
    """The mail about ``record`` to ``people``; a note at the end says how many authors were left out."""
    from email.message import EmailMessage
    from email.utils import formataddr, formatdate, make_msgid

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
    message["X-Continuity-Result"] = status(record)
    message.set_content(body)
    return message


def _smtp(email: EmailSettings, timeout: float) -> smtplib.SMTP:
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


def _login(smtp: smtplib.SMTP, email: EmailSettings) -> None:
    if not email.password_env:
        return
    password = os.environ.get(email.password_env)
    username = email.username or os.environ.get(email.username_env or "")
    if not password:
        raise NotSent("environment variable {} (continuity.notify.email.password_env) is not set".format(
            email.password_env))
    if not username:
        raise NotSent("environment variable {} (continuity.notify.email.username_env) is not set".format(
            email.username_env))
    smtp.login(username, password)


CHANNEL = Channel("email", {key: None for key in KEYS}, parse, outlets)
