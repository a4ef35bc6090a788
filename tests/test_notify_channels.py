"""The notify extension points: a channel is a module plus its line in a registry.

A channel added to `continuity.notify.settings.CHANNELS`, or a webhook format
added to `continuity.notify.webhook.FORMATS`, gets the settings checks, the
deadline, the warnings and the scrubbing `send` gives the built-in ones,
without any other edit. These tests register one of each for their duration.
"""

import threading
from dataclasses import dataclass

import pytest

from continuity import config as cfg
from continuity import notify
from continuity.config import fields
from continuity.errors import ConfigError
from continuity.notify.channel import Channel, NotSent, Outlet
from continuity.notify.settings import CHANNELS
from continuity.report import RunRecord

pytest_plugins = ["http_receiver"]

SECRET = "s3cret-memo-key"


@dataclass(frozen=True)
class Memo:
    to: str
    key_env: str


def parse_memo(raw, where):
    if not raw:
        return None
    fields.reject_unknown(raw, ("to", "key_env"), where)
    return Memo(fields.name(raw.get("to"), where + ".to"), fields.env_var_name(raw.get("key_env"), where + ".key_env"))


@pytest.fixture
def memo_channel(monkeypatch):
    """A channel that 'sends' into a list; it fails when MEMO_FAIL is set and hangs while MEMO_HANG is set."""
    sent = []
    hang = threading.Event()

    def outlets(memo):
        def deliver(record, timeout):
            if hang.is_set():
                threading.Event().wait(60)  # never set: outlives the deadline
            if record.summary == "fail":
                raise RuntimeError("refused with key " + SECRET)
            if record.summary == "no":
                raise NotSent("memo box for {} is full".format(memo.to))
            sent.append((memo.to, notify.compose(record)[0]))
            return "memo left for " + memo.to

        return [Outlet("memo to " + memo.to, deliver, (SECRET,))]

    monkeypatch.setitem(CHANNELS, "memo", Channel("memo", {"to": None, "key_env": None}, parse_memo, outlets))
    return sent, hang


def record(summary="FAILED: master untouched; boom"):
    return RunRecord(task="pipeline", line="main", ok=False, state="failed", summary=summary, error="boom",
                     failed_stage="check")


def test_a_registered_channel_is_configured_under_its_own_key(memo_channel):
    settings = cfg.parse({"notify": {"memo": {"to": "ops", "key_env": "MEMO_KEY"}}}).notify

    assert settings.channels == {"memo": Memo("ops", "MEMO_KEY")}
    assert settings.email is None and settings.webhooks == ()


def test_a_registered_channel_gets_the_same_checks_of_unknown_keys(memo_channel):
    with pytest.raises(ConfigError) as info:
        notify.parse_settings({"memo": {"to": "ops", "kye_env": "K"}})
    assert str(info.value) == "continuity.notify.memo.kye_env: unknown setting; did you mean 'key_env'?"

    with pytest.raises(ConfigError) as info:
        notify.parse_settings({"mmeo": {"to": "ops"}})
    assert "did you mean 'memo'?" in str(info.value)


def test_a_registered_channel_is_sent_through_with_one_line(memo_channel):
    sent, _ = memo_channel
    lines = []

    notify.send(notify.parse_settings({"memo": {"to": "ops"}}), record(), say=lines.append)

    assert sent == [("ops", "[continuity] pipeline FAILED on main at stage check: boom")]
    assert lines == ["notify: memo left for ops"]


def test_a_failing_channel_is_a_warning_without_its_secrets(memo_channel):
    lines = []
    settings = notify.parse_settings({"memo": {"to": "ops"}})

    notify.send(settings, record("fail"), say=lines.append)
    notify.send(settings, record("no"), say=lines.append)

    assert lines == ["warning: notify: memo to ops not sent: RuntimeError: refused with key ***",
                     "warning: notify: memo to ops not sent: memo box for ops is full"]


def test_a_hanging_channel_is_given_up_at_the_deadline(memo_channel):
    _, hang = memo_channel
    hang.set()
    lines = []

    notify.send(notify.parse_settings({"memo": {"to": "ops"}, "timeout": "0.5"}), record(), say=lines.append)

    assert lines == ["warning: notify: memo to ops not sent: not done within 0.5s (continuity.notify.timeout); "
                     "stopped waiting"]


def test_a_registered_webhook_format_is_accepted_and_posted(monkeypatch, http_receiver):
    monkeypatch.setitem(notify.FORMATS, "memo", lambda run: {"memo": "{} on https://user:{}@ci.example.com".format(
        run.summary, SECRET)})
    lines = []

    settings = notify.parse_settings({"webhooks": [{"url": http_receiver.url("/memo"), "format": "memo"}]})
    notify.send(settings, record(), say=lines.append)

    [request] = http_receiver.requests
    assert request.json() == {"memo": "FAILED: master untouched; boom on https://***@ci.example.com"}
    assert lines == ["notify: webhook http://127.0.0.1:{} (memo) sent: HTTP 200".format(http_receiver.port)]


@pytest.mark.parametrize("form", ["teams", ["slack"], {"json": 1}])
def test_an_unknown_webhook_format_names_the_registered_ones(form):
    with pytest.raises(ConfigError) as info:
        notify.parse_settings({"webhooks": [{"url": "https://x.org/", "format": form}]})
    assert str(info.value) == "continuity.notify.webhooks[1].format must be json or slack, got {!r}".format(form)
