"""Commits whose subject or author name holds control characters git keeps.

A carriage return, a form feed, U+2028 (line separator), U+001E (record
separator) or an escape sequence in a subject or an author's name is legal
for git. Parsing git's output by lines split such a commit in two, so
``status`` and ``promote`` crashed and every notification failed. Now git's
output is parsed on NUL only, and what continuity prints or mails has no
control characters.
"""

import os
import subprocess

import pytest

from conftest import Project, git
from continuity.git import Git

pytest_plugins = ["mail_server"]

SUBJECT = "fix\rthe\fwidget\u2028at\x1eonce\x1b[2J"
AUTHOR = "Ann\rie\f Lee\u2028Jr"
ADDRESS = "annie@example.com"
CONTROLS = ("\r", "\f", "\u2028", "\x1e", "\x1b")


def push_odd_commit(project, branch="development"):
    """A commit by ``AUTHOR`` titled ``SUBJECT`` on top of ``branch`` (commit-tree keeps both as they are)."""
    git(project.dev, "fetch", "--quiet", "origin")
    parent = git(project.dev, "rev-parse", "origin/" + branch)
    env = dict(os.environ, GIT_AUTHOR_NAME=AUTHOR, GIT_AUTHOR_EMAIL=ADDRESS)
    sha = subprocess.run(["git", "commit-tree", parent + "^{tree}", "-p", parent, "-m", SUBJECT], cwd=project.dev,
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    git(project.dev, "push", "--quiet", "origin", "{}:refs/heads/{}".format(sha, branch))
    return sha


def printed(proc):
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text, text
    assert not [char for char in CONTROLS if char in text], text
    return text


def test_git_log_and_commits_keep_such_a_commit_whole(project):
    sha = push_odd_commit(project)
    git_ = Git(project.origin)

    assert git_.commits("master..development") == [(sha, SUBJECT, AUTHOR, ADDRESS)]
    assert git_.log("master..development", limit=5) == [(sha, SUBJECT, "{} <{}>".format(AUTHOR, ADDRESS))]


def test_status_promote_and_failure_mail_work_with_such_a_commit(make_project, mail_server):
    server = mail_server()
    notify_yaml = "notify:\n  email: {{host: 127.0.0.1, port: {}, sender: ci@example.com}}\n".format(server.port)
    # every author is written to: no culprit is sought (that would write to the breaking commit's alone)
    project = make_project(config=Project.config(checks=["test -f app.txt", "test ! -f broken"],
                                                 extra=notify_yaml + "culprit_finding: false\n"))
    odd = push_odd_commit(project)
    project.push_to("development", "break it", broken="x\n")
    ws = project.workspace()

    failed = project.fab(ws, "continuity.pipeline")

    assert failed.returncode == 1
    printed(failed)
    [mail] = server.messages
    assert ADDRESS in mail.recipients
    assert "Ann ie Lee Jr <annie@example.com>" in mail.message["To"]
    assert "{}  fix the widget at once [2J  (Ann ie Lee Jr <{}>)".format(odd[:12], ADDRESS) in mail.body
    assert not [char for char in CONTROLS if char in mail.message.as_string()]

    git(project.dev, "rm", "--quiet", "broken")
    git(project.dev, "commit", "--quiet", "-m", "repair")
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/development")
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    status = project.fab(ws, "continuity.status")
    promote = project.fab(ws, "continuity.promote", "--yes")

    assert status.returncode == 0, status.stderr
    assert promote.returncode == 0, promote.stderr
    for text in (printed(status), printed(promote)):
        assert "{} fix the widget at once [2J (Ann ie Lee Jr <{}>)".format(odd[:12], ADDRESS) in " ".join(text.split())
    assert project.ref("production") == project.ref("master")


@pytest.mark.parametrize("name", ["Ann\rie", "Ann\u2028ie", "Ann\x1bie"])
def test_an_author_name_with_control_characters_cannot_break_a_mail_header(name):
    from continuity import notify
    from continuity.report import RunRecord

    email = notify.parse_settings({"email": {"host": "h", "sender": "ci@example.com"}}).email
    record = RunRecord(task="pipeline", line="main", ok=False, state="failed", summary="FAILED",
                       commits=[("a" * 40, "subject", name, ADDRESS), ("b" * 40, "s", "Bob", "bob\x1b@example.com")])

    people = notify.recipients(email, record)

    assert people == [("Ann ie", ADDRESS)]
    message = notify._email_message(email, record, people)
    assert message["To"] == "Ann ie <{}>".format(ADDRESS)
