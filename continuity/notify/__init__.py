"""Notifications: tell the people who can fix it (settings ``continuity.notify``).

After a run, `send` looks at its record and, when the run's event is one of
``events`` (``failure`` by default; also ``success`` and ``deploy``), sends
one message through each configured channel:

* **email** over SMTP (plain, STARTTLS or SSL) to the authors of the commits
  the run brought in, plus the configured ``recipients`` (`.email`);
* **webhooks**: a JSON POST to each URL, either our own document (``json``)
  or one a Slack incoming webhook accepts (``slack``) (`.webhook`, `.slack`).

A channel that fails is one warning line; `send` never raises, so a
notification never changes the run's result, and each outlet has ``timeout``
seconds in all (connect, send, answer) before we stop waiting for it.
Secrets (the SMTP password, a webhook URL, which usually carries a token)
come only from environment variables named in the settings, and never appear
in output: URLs are shown as scheme and host. What a message says
(`.message`) is redacted, free of control characters where people read it,
and bounded: 50 commits listed, ``max_authors`` authors written to, the rest
counted.

Channels are registered in `.settings.CHANNELS` (a module and a line);
webhook formats in `.webhook.FORMATS`. smtplib, ssl, json and
urllib.request are imported when something is sent: ``import continuity``
stays light for the runs that send nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from ..config import register_section
from .channel import NotSent
from .email import EmailSettings, recipients
from .email import email_message as _email_message  # noqa: F401  (tests build a mail without sending it)
from .message import Run, compose, events_of
from .settings import CHANNELS, COLLECTION_DEFAULTS, EVENTS, NotifySettings, parse_settings
from .webhook import FORMATS, Webhook, mask_url, payload

__all__ = ["COLLECTION_DEFAULTS", "EVENTS", "CHANNELS", "FORMATS", "NotifySettings", "EmailSettings", "Webhook",
           "parse_settings", "send", "probe", "events_of", "compose", "payload", "recipients", "mask_url"]


def send(settings: NotifySettings, record: Run, say: Callable[[str], Any] = print) -> None:
    """Send the notifications ``record`` calls for. Never raises.

    One line per outlet: what was sent, or a warning saying why not.
    """
    try:
        if not events_of(record) & set(settings.events):
            return
        outlets = [outlet for key, value in settings.channels.items() for outlet in CHANNELS[key].outlets(value)]
    except Exception as exc:  # our bug: still never turn a run red
        say("warning: notify: nothing sent: {}: {}".format(type(exc).__name__, exc))
        return
    for outlet in outlets:
        try:
            say("notify: " + _within(settings.timeout, partial(outlet.deliver, record, settings.timeout)))
        except (KeyboardInterrupt, SystemExit) as exc:
            say("warning: notify: interrupted ({}); the remaining notifications were not sent".format(
                type(exc).__name__))
            raise
        except BaseException as exc:
            if not isinstance(exc, Exception):  # SIGTERM (Terminated): stop like Ctrl-C
                raise
            say(_scrub("warning: notify: {} not sent: {}".format(outlet.label, _reason(exc, settings.timeout)),
                       outlet.secrets))


def probe(settings: NotifySettings) -> list[tuple[str, bool, str]]:
    """Reach each outlet as `send` would, sending nothing: [(label, answered, what answered or why not)].

    Each outlet has ``timeout`` seconds, as when sending; the reasons are
    scrubbed of its secrets.
    """
    outlets = [outlet for key, value in settings.channels.items() for outlet in CHANNELS[key].outlets(value)]
    results = []
    for outlet in outlets:
        if outlet.probe is None:
            results.append((outlet.label, True, "this channel cannot be checked without sending"))
            continue
        try:
            results.append((outlet.label, True, _within(settings.timeout, partial(outlet.probe, settings.timeout))))
        except Exception as exc:
            results.append((outlet.label, False, _scrub(_reason(exc, settings.timeout), outlet.secrets)))
    return results


def _within(timeout: float, work: Callable[[], str]) -> str:
    """``work()`` (an outlet delivering or probing), waited for ``timeout`` seconds in all.

    Socket timeouts bound each read, not the whole exchange: a server that
    trickles a byte a second, or a slow name lookup, would never trip them.
    So the outlet runs in a daemon thread, and at the deadline we stop
    waiting for it; being a daemon, it cannot keep ``fab`` from exiting.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["sentence"] = work()
        except BaseException as exc:  # handed to the caller, which reports it
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="continuity-notify", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise NotSent("not done within {:g}s (continuity.notify.timeout); stopped waiting".format(timeout))
    if "error" in outcome:
        raise outcome["error"]
    sentence: str = outcome["sentence"]
    return sentence


def _reason(exc: BaseException, timeout: float) -> str:
    """Why an outlet failed, in a few words. A channel says its own (`NotSent`); the rest are the network's."""
    import socket
    import ssl

    if isinstance(exc, NotSent):
        return str(exc)
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


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


register_section("notify", COLLECTION_DEFAULTS, parse_settings)
