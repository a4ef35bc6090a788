"""Credentials in the remote's URL or in BUILD_URL never leave continuity.

Jenkins jobs often use ``https://user:TOKEN@host/repo.git`` as the remote and
may see a ``BUILD_URL`` with credentials in it. Git hides such user-info when
it prints a URL; continuity must too, everywhere it prints, writes (commit
messages, the ledger, JUnit) or sends (mail, webhooks).
"""

import subprocess
import xml.etree.ElementTree as ET

from conftest import Project, assert_user_error, git
from continuity import notify
from continuity._proc import Result
from continuity.junit import build_report
from continuity.report import CheckRecord, RunRecord, StageRecord

pytest_plugins = ["mail_server", "http_receiver"]

SECRET = "s3cr3t-Tok3n"
REMOTE = "https://ci-bot:{}@example.invalid/shop.git".format(SECRET)
BUILD_URL = "https://jenkins:{}@ci.example/job/shop/7/".format(SECRET)


def with_credentials_in_the_remote_url(project, ws):
    """Configure ``REMOTE`` as origin's URL while git really talks to the project's bare origin."""
    git(ws, "remote", "set-url", "origin", REMOTE)
    git(ws, "config", "url.{}.insteadOf".format(project.origin), REMOTE)
    assert git(ws, "config", "--get", "remote.origin.url") == REMOTE
    assert git(ws, "ls-remote", "origin", "refs/heads/master").startswith(project.ref("master"))


def every_object(repository):
    """[(type, content)] of every object in ``repository``, referenced or not (deleted lock tokens too)."""
    listing = git(repository, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
    out = subprocess.run(["git", "cat-file", "--batch"], cwd=repository, input=listing.encode() + b"\n",
                         capture_output=True, check=True).stdout
    objects = []
    while out:
        header, _, out = out.partition(b"\n")
        _sha, kind, size = header.decode().split()
        objects.append((kind, out[: int(size)].decode("utf-8", "replace")))
        out = out[int(size) + 1:]
    return objects


def test_an_unreachable_remote_with_credentials_is_shown_without_them(project):
    ws = project.workspace()
    git(ws, "remote", "set-url", "origin", "https://ci-bot:{}@127.0.0.1:1/shop.git".format(SECRET))

    runs = [project.fab(ws, "continuity.pipeline", "--junit", "report.xml", env={"BUILD_URL": BUILD_URL}),
            project.fab(ws, "continuity.status"), project.fab(ws, "continuity.history", "staging")]

    for proc in runs:
        assert_user_error(proc, "cannot reach remote 'origin' (https://***@127.0.0.1:1/shop.git)")
        assert SECRET not in proc.stdout + proc.stderr
    report = (ws / "report.xml").read_text()
    assert "https://***@127.0.0.1:1/shop.git" in report and "https://***@ci.example/job/shop/7/" in report
    assert SECRET not in report


def test_credentials_in_the_remote_url_and_build_url_never_leave(make_project, mail_server, http_receiver):
    server = mail_server()
    notify_yaml = ("notify:\n  events: [failure, success]\n  email: {{host: 127.0.0.1, port: {}, sender: ci@example.com}}\n"
                   "  webhooks: ['{}', {{url: '{}', format: slack}}]\n").format(
        server.port, http_receiver.url("/json"), http_receiver.url("/slack"))
    project = make_project(config=Project.config(checks=["test -f app.txt", "test ! -f broken"], extra=notify_yaml))
    project.push_to("master", "a fix made on master", hotfix="x\n")  # so the pipeline makes a merge commit
    project.push_to("development", "feature", broken="x\n")
    ws = project.workspace()
    with_credentials_in_the_remote_url(project, ws)
    env = {"BUILD_URL": BUILD_URL}

    failed = project.fab(ws, "continuity.pipeline", "--junit", "failed.xml", env=env)
    git(project.dev, "rm", "--quiet", "broken")
    git(project.dev, "commit", "--quiet", "-m", "remove broken")
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/development")
    passed = project.fab(ws, "continuity.pipeline", "--junit", "passed.xml", env=env)
    status = project.fab(ws, "continuity.status")
    history = project.fab(ws, "continuity.history", "staging")

    assert failed.returncode == 1, failed.stderr
    assert passed.returncode == 0, passed.stderr
    assert "preflight ok" in passed.stdout and "origin at https://***@example.invalid/shop.git" in passed.stdout
    merge = git(project.origin, "log", "-1", "--format=%B", "master")
    assert merge.startswith("Merge development into master") and "Build: https://***@ci.example/job/shop/7/" in merge
    assert "by https://***@ci.example/job/shop/7/" in status.stdout
    assert "https://***@ci.example/job/shop/7/" in history.stdout
    assert len(server.messages) == 2 and len(http_receiver.requests) == 4
    sent = [mail.message.as_string() for mail in server.messages] + [r.body.decode() for r in http_receiver.requests]
    assert all("***@ci.example/job/shop/7/" in text for text in sent)
    written = [(ws / name).read_text() for name in ("failed.xml", "passed.xml")]
    for text in [proc.stdout + proc.stderr for proc in (failed, passed, status, history)] + sent + written:
        assert SECRET not in text
    for repository in (project.origin, ws):
        objects = [content for _kind, content in every_object(repository)]
        assert objects and not [content for content in objects if SECRET in content]


def test_history_hides_the_credentials_an_older_ledger_entry_holds(project):
    empty_tree = subprocess.run(["git", "hash-object", "-t", "tree", "-w", "--stdin"], cwd=project.origin,
                                input="", capture_output=True, text=True, check=True).stdout.strip()
    body = "environment: staging\nrevision: {}\nresult: deployed\ntime: 2026-01-02T03:04:05Z\nby: {}\n".format(
        project.ref("master"), BUILD_URL)
    entry = git(project.origin, "commit-tree", empty_tree, "-m", "continuity ledger: staging deployed", "-m", body)
    git(project.origin, "update-ref", "refs/continuity/ledger/staging", entry)

    proc = project.fab(project.workspace(), "continuity.history", "staging")

    assert proc.returncode == 0, proc.stderr
    assert "https://***@ci.example/job/shop/7/" in proc.stdout and SECRET not in proc.stdout


def test_urls_in_the_output_of_a_failed_check_are_redacted_in_junit_and_notifications():
    tail = "fatal: could not read from {}\n".format(REMOTE)
    check = Result(command="git fetch", exit_code=128, duration=0.1, tail=tail)
    record = RunRecord(
        task="pipeline", line="main", ok=False, state="failed", summary="FAILED: master untouched; " + tail,
        stages=[StageRecord("check", "FAILED", 0.1, "check failed", tail)],
        checks=[CheckRecord("git fetch", "git fetch " + REMOTE, check)], error=tail, failed_stage="check",
        failed_command="git fetch " + REMOTE, output_tail=tail, build_url=BUILD_URL,
        commits=[("a" * 40, "use " + REMOTE, "Alice", "alice@example.com")])

    texts = [ET.tostring(build_report(record), encoding="unicode"), *notify.compose(record)]
    texts += [str(notify.payload(record, form)) for form in ("json", "slack")]

    for text in texts:
        assert SECRET not in text
        assert "https://***@example.invalid/shop.git" in text or "https://***@ci.example" in text
