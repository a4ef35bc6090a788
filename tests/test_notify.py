"""Notifications through a real SMTP server (aiosmtpd) and a real HTTP receiver on 127.0.0.1."""

import subprocess
import time

import pytest

from conftest import Project, assert_user_error, git
from continuity import config as cfg
from continuity import notify
from continuity.errors import ConfigError
from continuity.report import RunRecord, StageRecord

pytest_plugins = ["mail_server", "http_receiver"]

BROKEN = ["test -f app.txt", "echo the-widget-broke; exit 3"]
BUILD_URL = "https://ci.example.com/job/shop/42/"
PASSWORD = "pw-Zq8u2LxT"
TOKEN = "T0KEN-b9c4e1"


def notify_project(make_project, notify_yaml, checks=("test -f app.txt",)):
    return make_project(config=Project.config(checks=list(checks), extra="notify:\n" + _indent(notify_yaml)))


def _indent(text):
    return "".join("  " + line + "\n" for line in text.strip("\n").splitlines())


def email_yaml(server_port, extra=""):
    return "email:\n  host: 127.0.0.1\n  port: {}\n  sender: CI <ci@example.com>\n{}".format(
        server_port, _indent(extra))


def push_as(project, name, address, message, **files):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GIT_AUTHOR_NAME", name)
        patch.setenv("GIT_AUTHOR_EMAIL", address)
        return project.push_to("development", message, **files)


def pipeline(project, timeout=120, **env):
    return project.fab(project.workspace(), "continuity.pipeline", env=dict({"BUILD_URL": BUILD_URL}, **env),
                       timeout=timeout)


def push_many_commits(project, count, authors):
    """``count`` commits on development, commit N by "Author N % authors", made in one go by git fast-import."""
    git(project.dev, "fetch", "--quiet", "origin")
    stream = []
    for number in range(count):
        message = "change {}".format(number)
        stream.append("commit refs/heads/many\nauthor Author {0} <author{0}@example.com> {1} +0000\n"
                      "committer CI <ci@example.com> {1} +0000\ndata {2}\n{3}\n".format(
                          number % authors, 1700000000 + number, len(message), message))
        if number == 0:
            stream.append("from {}\n".format(git(project.dev, "rev-parse", "origin/development")))
    subprocess.run(["git", "fast-import", "--quiet"], cwd=project.dev, input="".join(stream), text=True, check=True)
    git(project.dev, "push", "--quiet", "origin", "refs/heads/many:refs/heads/development")


# -- email ---------------------------------------------------------------------------


def test_a_failing_run_emails_the_authors_of_the_commits_it_brought_in(make_project, mail_server):
    server = mail_server()
    project = notify_project(make_project, email_yaml(server.port, "recipients: [oncall@example.com]"), BROKEN)
    base = project.ref("master")
    push_as(project, "Alice Liddell", "alice@example.com", "feature a", a="1\n")
    push_as(project, "Bob Builder", "bob@example.com", "feature b", b="1\n")
    dev = push_as(project, "Alice Liddell", "Alice@Example.com", "feature c", c="1\n")

    proc = pipeline(project)

    assert proc.returncode == 1
    assert "the-widget-broke" in proc.stderr
    [mail] = server.messages
    assert sorted(address.lower() for address in mail.recipients) == [
        "alice@example.com", "bob@example.com", "oncall@example.com"]
    assert mail.sender == "ci@example.com"
    assert mail.message["Subject"].startswith("[continuity] pipeline FAILED on main at stage check: check ")
    for phrase in ("pipeline FAILED on main at stage check", "Stage:   check", "Command: echo the-widget-broke; exit 3",
                   "| the-widget-broke", "base (master)", base, dev, "Build:   " + BUILD_URL, "feature b",
                   "Bob Builder <bob@example.com>"):
        assert phrase in mail.body, (phrase, mail.body)
    assert "notify: email sent to" in proc.stdout


def test_email_over_starttls_logs_in_with_a_password_that_is_never_printed(make_project, mail_server, http_receiver):
    server = mail_server(security="starttls", login=("ci-user", PASSWORD))
    http_receiver.status = 500
    notify_yaml = email_yaml(server.port, "security: starttls\nusername: ci-user\npassword_env: SMTP_PASSWORD") + (
        "webhooks:\n  - url_env: HOOK_URL\n")
    project = notify_project(make_project, notify_yaml, BROKEN)
    push_as(project, "Alice Liddell", "alice@example.com", "feature", a="1\n")

    proc = pipeline(project, SMTP_PASSWORD=PASSWORD, SSL_CERT_FILE=str(server.ca_file),
                    HOOK_URL=http_receiver.url("/hooks/" + TOKEN + "?token=" + TOKEN))

    assert proc.returncode == 1
    [mail] = server.messages
    assert mail.tls and mail.authenticated
    assert mail.recipients == ["alice@example.com"]
    assert len(http_receiver.requests) == 1
    warning = "warning: notify: webhook http://127.0.0.1:{} (json) not sent: HTTP 500".format(http_receiver.port)
    assert warning in proc.stdout
    for secret in (PASSWORD, TOKEN):
        assert secret not in proc.stdout + proc.stderr


def test_a_green_run_stays_green_when_the_smtp_server_is_down(project, dead_smtp_port):
    project.push_to("development", "feature", feature="x\n")
    env = {  # the whole section from environment variables, as a Jenkins job could set it
        "FABRIC_CONTINUITY_NOTIFY_EVENTS": "failure, success",
        "FABRIC_CONTINUITY_NOTIFY_EMAIL_HOST": "127.0.0.1",
        "FABRIC_CONTINUITY_NOTIFY_EMAIL_PORT": str(dead_smtp_port),
        "FABRIC_CONTINUITY_NOTIFY_EMAIL_SENDER": "ci@example.com",
        "FABRIC_CONTINUITY_NOTIFY_EMAIL_RECIPIENTS": "oncall@example.com, lead@example.com",
    }

    proc = pipeline(project, **env)

    assert proc.returncode == 0, proc.stderr
    assert "warning: notify: email via 127.0.0.1:{} not sent: connection refused".format(dead_smtp_port) in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1].startswith("continuity | result: master advanced")
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_red_run_stays_red_with_its_own_failure_when_the_smtp_server_is_down(make_project, dead_smtp_port):
    project = notify_project(make_project, email_yaml(dead_smtp_port, "recipients: oncall@example.com"), BROKEN)
    project.push_to("development", "feature", feature="x\n")

    proc = pipeline(project)

    assert_user_error(proc, "exited with code 3", "the-widget-broke", code=1)
    assert "warning: notify: email via 127.0.0.1:{} not sent: connection refused".format(dead_smtp_port) in proc.stdout
    assert "result: FAILED: master untouched" in proc.stdout


def test_thousands_of_commits_by_hundreds_of_authors_make_bounded_messages(make_project, mail_server, http_receiver):
    server = mail_server()
    hooks = "webhooks:\n  - url: {}\n  - url: {}\n    format: slack\n".format(
        http_receiver.url("/ci"), http_receiver.url("/slack"))
    project = notify_project(make_project, email_yaml(server.port, "recipients: [oncall@example.com]") + hooks, BROKEN)
    push_many_commits(project, 3000, 300)

    first = pipeline(project)
    second = pipeline(project, FABRIC_CONTINUITY_NOTIFY_EMAIL_MAX_AUTHORS="3")

    assert first.returncode == second.returncode == 1
    [mail, fewer] = server.messages
    newest = ["author{}@example.com".format(n) for n in range(299, 279, -1)]  # commit 2999 is by author 299
    assert mail.recipients == newest + ["oncall@example.com"]
    assert fewer.recipients == newest[:3] + ["oncall@example.com"]
    body = mail.body.replace("\r\n", "\n")
    assert "Commits brought in (3000):" in body and "  ... and 2950 more\n" in body
    assert body.endswith("\nNote: not sent to 280 other author(s) of these commits "
                              "(continuity.notify.email.max_authors is 20).\n")
    assert "; not sent to 297 other author(s) of these commits (continuity.notify.email.max_authors is 3)" \
        in second.stdout
    bodies = {request.path: request for request in http_receiver.requests[:2]}
    document, slack = bodies["/ci"].json(), bodies["/slack"].json()["text"]
    assert len(document["commits"]) == 50 and document["commits_total"] == 3000
    assert document["commits"][0]["subject"] == "change 2999"
    assert "Commits: 3000 by Author 299, Author 298, " in slack and ", Author 290 and 290 others\n" in slack
    assert len(bodies["/ci"].body) < 32_000 and len(bodies["/slack"].body) < 4_000
    assert len(mail.message.as_bytes()) < 32_000


def test_notify_timeout_is_a_deadline_for_a_webhook_that_trickles_its_answer(http_receiver):
    http_receiver.trickle = 1.5  # each byte well within the timeout: a per-read limit never trips
    lines = []
    start = time.monotonic()

    notify.send(settings_for(webhooks=[http_receiver.url("/slow")], timeout=2), record(), say=lines.append)

    assert time.monotonic() - start < 3.5
    assert lines == ["warning: notify: webhook http://127.0.0.1:{} (json) not sent: not done within 2s "
                     "(continuity.notify.timeout); stopped waiting".format(http_receiver.port)]


def test_a_trickling_webhook_keeps_fab_alive_no_longer_than_the_timeout(make_project, http_receiver):
    http_receiver.trickle = 1.5  # the answer would take about 100s
    project = notify_project(make_project, "timeout: 2\nwebhooks: ['{}']".format(http_receiver.url("/slow")), BROKEN)
    project.push_to("development", "feature", feature="x\n")

    start = time.monotonic()
    proc = pipeline(project, timeout=60)

    assert time.monotonic() - start < 30
    assert_user_error(proc, "the-widget-broke", code=1)
    assert "not sent: not done within 2s (continuity.notify.timeout)" in proc.stdout
    assert len(http_receiver.requests) == 1


# -- webhooks -----------------------------------------------------------------------------


def test_webhooks_get_a_json_document_and_a_slack_message_about_the_failure(make_project, http_receiver):
    hooks = "webhooks:\n  - url: {}\n  - url: {}\n    format: slack\n".format(
        http_receiver.url("/ci"), http_receiver.url("/slack"))
    project = notify_project(make_project, hooks, BROKEN)
    base = project.ref("master")
    dev = push_as(project, "Alice Liddell", "alice@example.com", "feature", a="1\n")

    proc = pipeline(project)

    assert proc.returncode == 1
    requests = {request.path: request for request in http_receiver.requests}
    assert set(requests) == {"/ci", "/slack"}
    assert requests["/ci"].headers["Content-Type"].startswith("application/json")
    document = requests["/ci"].json()
    assert (document["status"], document["line"], document["failed_stage"]) == ("FAILED", "main", "check")
    assert document["failed_command"] == "echo the-widget-broke; exit 3"
    assert "the-widget-broke" in document["output_tail"]
    assert document["revisions"] == {"base": base, "development": dev, "candidate": dev}
    assert document["commits"] == [{"sha": dev, "subject": "feature", "author": "Alice Liddell",
                                    "email": "alice@example.com"}]
    assert document["build_url"] == BUILD_URL
    assert document["event"] == ["failure"]
    text = requests["/slack"].json()["text"]
    assert list(requests["/slack"].json()) == ["text"]
    assert text.startswith("*continuity: pipeline FAILED on main at stage check*")
    for phrase in ("Command: `echo the-widget-broke; exit 3`", "candidate `{}`".format(dev[:12]),
                   "Commits: 1 by Alice Liddell", "<{}|Build>".format(BUILD_URL), "```\nthe-widget-broke"):
        assert phrase in text, (phrase, text)
    assert proc.stdout.count("notify: webhook http://127.0.0.1:{}".format(http_receiver.port)) == 2


def test_a_green_run_notifies_only_when_asked_to(make_project, http_receiver):
    project = notify_project(make_project, "webhooks: ['{}']".format(http_receiver.url("/ci")))
    project.push_to("development", "feature", feature="x\n")

    quiet = pipeline(project)
    assert quiet.returncode == 0, quiet.stderr
    assert http_receiver.requests == [] and "notify:" not in quiet.stdout

    project.push_to("development", "another", another="x\n")
    loud = pipeline(project, FABRIC_CONTINUITY_NOTIFY_EVENTS="deploy")
    assert loud.returncode == 0, loud.stderr
    [request] = http_receiver.requests
    assert request.json()["status"] == "ok"
    assert request.json()["deployed"] == {"staging": "deployed"}
    assert sorted(request.json()["event"]) == ["deploy", "success"]


# -- settings ----------------------------------------------------------------------------------


def test_notify_settings_from_a_file(tmp_path):
    settings = cfg.parse({"notify": {
        "events": ["failure", "deploy"],
        "email": {"host": "smtp.example.com", "security": "starttls", "username_env": "SMTP_USER",
                  "password_env": "SMTP_PASSWORD", "sender": "ci@example.com", "recipients": ["a@example.com"]},
        "webhooks": [{"url_env": "SLACK_URL", "format": "slack"}, "https://hooks.example.com/x"],
    }}).notify
    assert settings.events == ("failure", "deploy")
    assert (settings.email.port, settings.email.security, settings.email.authors) == (587, "starttls", True)
    assert settings.webhooks == (notify.Webhook(url_env="SLACK_URL", format="slack"),
                                 notify.Webhook(url="https://hooks.example.com/x"))
    assert settings.timeout == 10


def test_notify_settings_from_environment_strings():
    raw = dict(notify.COLLECTION_DEFAULTS, events="failure,success", timeout="3",
               email=dict(notify.COLLECTION_DEFAULTS["email"], host="127.0.0.1", port="2525", sender="ci@example.com",
                          recipients="a@example.com b@example.com", authors="false", security="ssl"),
               webhooks="https://a.example.com/1, https://b.example.com/2")
    settings = notify.parse_settings(raw)
    assert settings.events == ("failure", "success")
    assert settings.email.recipients == ("a@example.com", "b@example.com")
    assert (settings.email.port, settings.email.authors, settings.timeout) == (2525, False, 3.0)
    assert [hook.url for hook in settings.webhooks] == ["https://a.example.com/1", "https://b.example.com/2"]


def test_notify_is_off_when_no_channel_is_configured():
    assert cfg.parse({}).notify is None
    assert notify.parse_settings(notify.COLLECTION_DEFAULTS) is None
    assert notify.parse_settings({"events": "success"}) is None


@pytest.mark.parametrize("raw, message", [
    ({"emial": {}}, "continuity.notify.emial: unknown setting; did you mean 'email'?"),
    ({"email": {"host": "h", "sender": "s@x.org", "recipients": "a@x.org", "pasword_env": "P"}},
     "continuity.notify.email.pasword_env: unknown setting; did you mean 'password_env'?"),
    ({"webhooks": [{"url": "https://x.org/", "fromat": "slack"}]},
     "continuity.notify.webhooks[1].fromat: unknown setting; did you mean 'format'?"),
    ({"events": "failures", "webhooks": "https://x.org/"}, "'failures' is not an event; use failure, success, deploy"),
    ({"email": {"host": "h", "sender": "s@x.org", "security": "tls"}}, "security must be one of none, starttls, ssl"),
    ({"email": {"host": "h", "sender": "nobody", "authors": True}}, "sender must be an email address"),
    ({"email": {"host": "h", "sender": "s@x.org", "authors": False}}, "no one to write to"),
    ({"email": {"host": "h", "sender": "s@x.org", "password_env": "P"}}, "no username"),
    ({"email": {"host": "h", "sender": "s@x.org", "max_authors": 0}}, "max_authors must be a whole number from 1"),
    ({"email": {"host": "h", "sender": "s@x.org", "password_env": "not a name"}}, "name of an environment variable"),
    ({"webhooks": [{"url": "https://x.org/", "url_env": "U"}]}, "exactly one of url and url_env"),
    ({"webhooks": [{"url": "ftp://x.org/" + TOKEN}]}, "must be an http:// or https:// URL"),
    ({"webhooks": [{"url_env": "U", "format": "teams"}]}, "format must be json or slack"),
])
def test_bad_notify_settings_say_what_to_fix(raw, message):
    with pytest.raises(ConfigError) as info:
        notify.parse_settings(raw)
    assert message in str(info.value)
    assert TOKEN not in str(info.value)


def test_a_bad_notify_setting_stops_fab_before_anything_runs(make_project):
    project = notify_project(make_project, "emial: {host: x}")

    proc = pipeline(project)

    assert_user_error(proc, "continuity.notify.emial: unknown setting; did you mean 'email'?")


# -- send, in process -----------------------------------------------------------------------------


def record(**fields):
    values = dict(task="pipeline", line="main", ok=False, state="failed", summary="FAILED: master untouched; boom",
                  error="boom", failed_stage="check", stages=[StageRecord("check", "FAILED", 0.5, "boom", "boom")],
                  revisions={"base": "a" * 40, "development": "b" * 40, "candidate": "c" * 40},
                  commits=[("b" * 40, "feature", "Alice", "alice@example.com")],
                  branches={"development": "development", "master": "master", "production": "production"})
    values.update(fields)
    return RunRecord(**values)


def settings_for(**raw):
    return notify.parse_settings(raw)


def test_events_decide_which_runs_are_worth_a_message():
    assert notify.events_of(record()) == {"failure"}
    assert notify.events_of(record(ok=True, state="nothing-to-do")) == set()
    assert notify.events_of(record(ok=True, state="planned")) == set()
    assert notify.events_of(record(ok=True, state="pushed")) == {"success"}
    assert notify.events_of(record(ok=True, state="deployed", deployed={"staging": "deployed"})) == {
        "success", "deploy"}
    assert notify.events_of(record(ok=True, state="deployed", deployed={"staging": "skipped: newer"})) == {"success"}


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_wrong_smtp_password_is_a_warning_without_the_password(mail_server, monkeypatch):
    server = mail_server(login=("ci-user", PASSWORD))
    monkeypatch.setenv("SMTP_PASSWORD", "wrong-" + PASSWORD)
    settings = settings_for(email={"host": "127.0.0.1", "port": server.port, "sender": "ci@example.com",
                                   "username": "ci-user", "password_env": "SMTP_PASSWORD"})
    lines = []

    notify.send(settings, record(), say=lines.append)

    assert server.messages == []
    [line] = lines
    assert line.startswith("warning: notify: email via 127.0.0.1:{} not sent: the SMTP server said 535".format(
        server.port))
    assert PASSWORD not in line


def test_a_password_variable_that_is_not_set_is_a_warning(mail_server, monkeypatch):
    server = mail_server()
    monkeypatch.delenv("SMTP_PASSWORD", raising=False)
    settings = settings_for(email={"host": "127.0.0.1", "port": server.port, "sender": "ci@example.com",
                                   "username": "ci", "password_env": "SMTP_PASSWORD"})
    lines = []

    notify.send(settings, record(), say=lines.append)

    assert lines == ["warning: notify: email via 127.0.0.1:{} not sent: environment variable SMTP_PASSWORD "
                     "(continuity.notify.email.password_env) is not set".format(server.port)]


def test_email_over_ssl_with_a_trusted_certificate(mail_server, monkeypatch):
    server = mail_server(security="ssl")
    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
    settings = settings_for(email={"host": "127.0.0.1", "port": server.port, "security": "ssl",
                                   "sender": "ci@example.com", "recipients": ["oncall@example.com"]})
    lines = []

    notify.send(settings, record(), say=lines.append)

    [mail] = server.messages
    assert mail.tls
    assert mail.recipients == ["alice@example.com", "oncall@example.com"]
    assert lines == ["notify: email sent to alice@example.com, oncall@example.com via 127.0.0.1:{}".format(
        server.port)]


def test_an_untrusted_certificate_is_refused(mail_server, monkeypatch):
    server = mail_server(security="starttls")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    settings = settings_for(email={"host": "127.0.0.1", "port": server.port, "security": "starttls",
                                   "sender": "ci@example.com"})
    lines = []

    notify.send(settings, record(), say=lines.append)

    assert server.messages == []
    assert "not sent: the server's TLS certificate is not trusted (self-signed certificate); point SSL_CERT_FILE" \
        in lines[0], lines


def test_send_never_raises(monkeypatch, http_receiver):
    settings = settings_for(webhooks=[http_receiver.url("/")])
    monkeypatch.setitem(notify.FORMATS, "json", lambda record: 1 / 0)
    lines = []

    notify.send(settings, record(), say=lines.append)

    assert lines == ["warning: notify: webhook http://127.0.0.1:{} (json) not sent: ZeroDivisionError: "
                     "division by zero".format(http_receiver.port)]


def test_an_unset_webhook_variable_is_a_warning_naming_the_variable(monkeypatch):
    monkeypatch.delenv("SLACK_URL", raising=False)
    lines = []

    notify.send(settings_for(webhooks=[{"url_env": "SLACK_URL", "format": "slack"}]), record(), say=lines.append)

    assert lines == ["warning: notify: webhook from $SLACK_URL (slack) not sent: environment variable SLACK_URL "
                     "(url_env) is not set"]


def test_urls_are_shown_as_scheme_and_host_only():
    assert notify.mask_url("https://hooks.slack.com/services/T0/B0/" + TOKEN) == "https://hooks.slack.com"
    assert notify.mask_url("http://user:{}@127.0.0.1:8080/x?t={}".format(TOKEN, TOKEN)) == "http://127.0.0.1:8080"


def test_no_commits_and_no_recipients_sends_nothing_and_says_so(mail_server):
    server = mail_server()
    settings = settings_for(email={"host": "127.0.0.1", "port": server.port, "sender": "ci@example.com"})
    lines = []

    notify.send(settings, record(commits=[]), say=lines.append)

    assert server.messages == []
    assert lines == ["notify: email: no one to write to (no commits brought in, no recipients configured); "
                     "nothing sent"]


def test_a_webhook_that_redirects_is_a_warning_not_a_silent_get(http_receiver):
    http_receiver.status = 302
    lines = []

    notify.send(settings_for(webhooks=[http_receiver.url("/old")]), record(), say=lines.append)

    assert [request.path for request in http_receiver.requests] == ["/old"]
    assert lines == ["warning: notify: webhook http://127.0.0.1:{} (json) not sent: HTTP 302 Found".format(
        http_receiver.port)]
