"""Every command continuity suggests runs as printed: names, environments and --line included."""

import re
import shlex

import pytest

from conftest import Project, assert_user_error, git, run_fab
from continuity import config as cfg
from continuity.deploy import marked_bad, redeploy_command
from continuity.hotfix import _advice, _finish_command
from continuity.remote import missing_branches

LINE = """\
environments:
  qa: {}
lines:
  "1.x":
    hotfix:
      prefix: hotfix-1.x/
"""


def _printed(message, before):
    """The command between backticks that follows ``before`` in ``message``."""
    return re.search(re.escape(before) + r" `([^`]+)`", message).group(1)


def _run_as_printed(ws, command):
    args = shlex.split(command)
    assert args[0] == "fab", command
    return run_fab(ws, *args[1:])


def test_the_hotfix_conflict_advice_runs_as_printed_on_a_named_line(make_project):
    project = make_project(config=Project.config(extra=LINE))
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/master-1.x")
    ws = project.workspace()
    assert project.fab(ws, "continuity.init", "--line", "1.x").returncode == 0
    assert project.fab(ws, "continuity.hotfix.start", "app", "--line", "1.x").returncode == 0
    fix = project.push_to("hotfix-1.x/app", "fix app", **{"app.txt": "version 1, fixed\n"})
    project.push_to("development-1.x", "rework app", **{"app.txt": "version 2\n"})

    proc = project.fab(ws, "continuity.hotfix.finish", "app", "--line", "1.x")

    assert_user_error(proc, "does not merge cleanly into 'development-1.x'", code=1)
    command = _printed(proc.stderr, "then run")
    assert command == "fab continuity.hotfix.finish app --line 1.x"
    # Do what the advice says: merge the hotfix into development-1.x by hand and push it.
    git(project.dev, "fetch", "--quiet", "origin")
    git(project.dev, "checkout", "--quiet", "--detach", "origin/development-1.x")
    git(project.dev, "merge", "--quiet", "origin/hotfix-1.x/app", check=False)
    project.write("app.txt", "version 2, fixed\n")
    git(project.dev, "commit", "--quiet", "-am", "merge the hotfix into development-1.x")
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/development-1.x")

    again = _run_as_printed(ws, command)

    assert again.returncode == 0, again.stderr
    assert project.ref("production-1.x") == fix
    assert project.ref("hotfix-1.x/app") is None
    assert project.ref("production") != fix, "the main line is not touched"


def test_the_bad_revision_refusal_prints_a_deploy_that_runs(make_project):
    project = make_project(config=Project.config(extra="environments:\n  qa: {}\n"))
    first = project.push_to("development", "first", one="1\n")
    ws = project.workspace()
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    second = project.push_to("development", "second", two="2\n")
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    assert project.fab(ws, "continuity.rollback", "staging").returncode == 0
    assert project.ref("refs/continuity/deployed/staging") == first

    refused = project.fab(ws, "continuity.deploy", "staging", "--revision", second)

    assert_user_error(refused, "is marked bad for staging", "pass --force")
    forced = _run_as_printed(ws, _printed(refused.stderr, "if you mean it:"))
    assert forced.returncode == 0, forced.stderr
    assert project.ref("refs/continuity/deployed/staging") == second
    history = _run_as_printed(ws, _printed(refused.stderr, "(see"))
    assert history.returncode == 0 and "bad" in history.stdout


@pytest.mark.parametrize("line, option", [(None, ""), ("1.x", " --line 1.x")])
def test_suggested_commands_carry_the_line(line, option):
    settings = cfg.parse({"lines": {"1.x": {}}}, line=line)
    qa = "staging" if line is None else "staging-1.x"

    assert _finish_command(settings, "login") == "fab continuity.hotfix.finish login" + option
    assert "`fab continuity.hotfix.finish login{}` again".format(option) in _advice(settings, "login")
    assert str(marked_bad(settings, qa, "a" * 40)).endswith(
        "`fab continuity.deploy {} --revision {} --force{}`".format(qa, "a" * 40, option))
    assert "`fab continuity.history {}{}`".format(qa, option) in str(marked_bad(settings, qa, "a" * 40))
    assert redeploy_command(settings, settings.production_environment) == "fab continuity.promote" + option
    assert "`fab continuity.init{}`".format(option) in str(missing_branches(settings, [settings.branches.production]))


def test_odd_names_are_quoted_so_the_shell_passes_them_through():
    settings = cfg.parse({"branches": {"master": "rel$(id)"}})

    assert _finish_command(settings, "a;b") == "fab continuity.hotfix.finish 'a;b'"
    assert _finish_command(settings, "-x") == "fab continuity.hotfix.finish --name=-x"
    assert "`fab continuity.hotfix.finish '{0}x'` again" in _advice(settings, "{0}x").format("in", "to")
    assert "git push origin 'HEAD:refs/heads/rel$(id)'" in str(missing_branches(settings, ["rel$(id)"]))


def test_a_marked_bad_production_revision_is_not_told_to_use_a_deploy_that_refuses_production():
    settings = cfg.parse({})
    message = str(marked_bad(settings, "production", "a" * 40))
    assert "--force" not in message and "fix forward" in message  # `deploy production` is refused
