"""Webhooks: a JSON POST to each URL (``continuity.notify.webhooks``).

A webhook URL usually carries its token in the path or the query, so it is
best kept in an environment variable (``url_env``) and is never printed: a
URL is shown as scheme and host, and a warning about it is scrubbed of the
whole URL and its parts. A redirect is an error rather than a silent GET
without the body.

What is posted depends on the webhook's ``format``: `FORMATS` maps each
format to the function that builds the body from a run. A new format (a
chat service with its own incoming-webhook shape) is one module with a
``payload(record) -> dict`` and one line in `FORMATS`.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable
from typing import Any

from .._dataclass import dataclass
from ..config.fields import env_var_name, kind, reject_unknown, words
from ..errors import ConfigError
from . import slack
from .channel import Channel, NotSent, Outlet, drop_none
from .message import Run, document, redacted

__all__ = ["Webhook", "CHANNEL", "FORMATS", "payload", "mask_url"]

#: format name -> the body it posts. The registration line of a new format goes here.
FORMATS: dict[str, Callable[[Run], dict[str, Any]]] = {
    "json": document,
    "slack": slack.payload,
}

_KEYS = ("url", "url_env", "format")


@dataclass(frozen=True)
class Webhook:
    url: str | None = None  # written in the settings, or
    url_env: str | None = None  # the name of the environment variable holding it
    format: str = "json"  # a key of FORMATS


def payload(record: Run, form: str = "json") -> dict[str, Any]:
    """The webhook body in format ``form``, with no URL user-info anywhere in it."""
    body: dict[str, Any] = redacted(FORMATS[form](record))
    return body


def mask_url(url: str) -> str:
    """Scheme and host of ``url``: the path and query often carry a token."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or "?"
        port = ":{}".format(parts.port) if parts.port else ""
    except ValueError:
        return "(an unreadable URL)"
    return "{}://{}{}".format(parts.scheme or "?", host, port)


# -- settings ------------------------------------------------------------------------


def parse(raw: Any, where: str) -> tuple[Webhook, ...]:
    value = drop_none(raw)
    if value is None or value == {}:
        return ()
    if isinstance(value, str):  # from FABRIC_CONTINUITY_NOTIFY_WEBHOOKS: URLs
        value = words(value)
    if not isinstance(value, list):
        raise ConfigError("{} must be a list of mappings with url or url_env, got {}".format(where, kind(value)))
    return tuple(_webhook(item, "{}[{}]".format(where, index)) for index, item in enumerate(value, 1))


def _webhook(item: object, where: str) -> Webhook:
    if isinstance(item, str):
        item = {"url": item}
    if not isinstance(item, dict):
        raise ConfigError("{} must be a mapping with url or url_env (and format), got {}".format(where, kind(item)))
    reject_unknown(item, _KEYS, where)
    if ("url" in item) == ("url_env" in item):
        raise ConfigError("{}: set exactly one of url and url_env (url_env keeps a token out of fabric.yaml)".format(
            where))
    if "url" in item and not _is_http_url(item["url"]):
        # Do not print the value: it may hold a token.
        raise ConfigError("{}.url must be an http:// or https:// URL".format(where))
    form = item.get("format", "json")
    if not isinstance(form, str) or form not in FORMATS:
        raise ConfigError("{}.format must be {}, got {!r}".format(where, " or ".join(FORMATS), form))
    return Webhook(url=item.get("url"), url_env=env_var_name(item.get("url_env"), where + ".url_env"), format=form)


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    parts = urllib.parse.urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


# -- sending -------------------------------------------------------------------------


def outlets(hooks: tuple[Webhook, ...]) -> list[Outlet]:
    return [_outlet(hook) for hook in hooks]


def _outlet(hook: Webhook) -> Outlet:
    url = hook.url or os.environ.get(hook.url_env or "", "")
    label = "webhook {} ({})".format(mask_url(url) if url else "from $" + str(hook.url_env), hook.format)
    return Outlet(label, lambda record, timeout: _deliver(hook, url, record, timeout), _url_secrets(url),
                  lambda timeout: _probe(hook, url, timeout))


def _url_secrets(url: str) -> tuple[str, ...]:
    """The URL and the parts of it an error message might quote alone."""
    try:
        parts = urllib.parse.urlsplit(url)
        return (url, parts.path + ("?" + parts.query if parts.query else ""), parts.query, parts.password or "")
    except ValueError:
        return (url,)


def _deliver(hook: Webhook, url: str, record: Run, timeout: float) -> str:
    if not url:
        raise NotSent("environment variable {} (url_env) is not set".format(hook.url_env))
    if not _is_http_url(url):
        raise NotSent("the value of {} is not an http:// or https:// URL".format(hook.url_env))
    import json
    import urllib.error
    import urllib.request

    body = json.dumps(payload(record, hook.format)).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "continuity",
    })
    try:
        with urllib.request.build_opener(_no_redirect()).open(request, timeout=timeout) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as exc:  # never str(exc): urllib may quote the URL
        raise NotSent("HTTP {} {}".format(exc.code, exc.reason)) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, BaseException):  # the socket's own error says more
            raise exc.reason from None
        raise
    return "webhook {} ({}) sent: HTTP {}".format(mask_url(url), hook.format, status)


def _probe(hook: Webhook, url: str, timeout: float) -> str:
    """Open a TCP connection to the URL's host (and the TLS handshake for https), then close it.

    No HTTP request is made, so no receiver can take it for a notification;
    the path and its token are not checked. With a proxy for the URL in the
    environment (as urllib would use), the proxy is what is connected to.
    """
    if not url:
        raise NotSent("environment variable {} (url_env) is not set".format(hook.url_env))
    if not _is_http_url(url):
        raise NotSent("the value of {} is not an http:// or https:// URL".format(hook.url_env))
    import socket
    import ssl
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        with socket.create_connection(_address(proxy), timeout=timeout):
            return "the proxy {} accepted a TCP connection (the webhook behind it is not checked); nothing sent".format(
                mask_url(proxy))
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if parts.scheme != "https":
            return "{} accepted a TCP connection; no HTTP request made, nothing sent".format(mask_url(url))
        with ssl.create_default_context().wrap_socket(sock, server_hostname=host):  # honours SSL_CERT_FILE
            return "{} accepted a TCP connection and a TLS handshake (certificate trusted); no HTTP request made, " \
                   "nothing sent".format(mask_url(url))


def _address(proxy: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _no_redirect() -> type:
    """A redirect is an error: urllib would follow it as a GET and drop the body."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req: Any, fp: Any, code: Any, msg: Any, headers: Any, newurl: Any) -> None:
            return None

    return NoRedirect


CHANNEL = Channel("webhooks", None, parse, outlets)
