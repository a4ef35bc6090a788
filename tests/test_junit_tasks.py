"""``--junit PATH`` on the tasks that deploy: promote, deploy, rollback and hotfix.finish.

Each writes a JUnit report Jenkins' ``junit`` step can read, passed or
failed, at the path the option gives (which beats ``continuity.junit``),
resolved when the task starts.
"""

import os
import xml.etree.ElementTree as ET

import pytest

from conftest import Project

SETTINGS = """\
environments:
  qa: {}
hotfix:
  deploy: true
junit: reports/setting.xml
"""


def released(make_project, fabfile=None):
    """master and staging at a first feature; a second one on master and staging, so a rollback has one to undo."""
    kwargs = {"fabfile": fabfile} if fabfile else {}
    project = make_project(config=Project.config(extra=SETTINGS), **kwargs)
    project.push_to("development", "first", first="x\n")
    ws = project.workspace()
    assert project.fab(ws, "continuity.pipeline", "--junit", "reports/ignored.xml").returncode == 0
    project.push_to("development", "second", second="y\n")
    assert project.fab(ws, "continuity.pipeline", "--junit", "reports/ignored.xml").returncode == 0
    return project, ws


def prepare_hotfix(project, ws):
    assert project.fab(ws, "continuity.promote", "--yes").returncode == 0
    (ws / "reports" / "setting.xml").unlink()  # promote's own report, by the setting
    assert project.fab(ws, "continuity.hotfix.start", "login").returncode == 0
    project.push_to("hotfix/login", "fix the login", login="fixed\n")


TASKS = {
    # task arguments, the suite's name, what to do first
    "deploy": (["continuity.deploy", "qa"], "continuity.deploy", None),
    "promote": (["continuity.promote", "--yes"], "continuity.promote", None),
    "rollback": (["continuity.rollback", "staging"], "continuity.rollback", None),
    "hotfix.finish": (["continuity.hotfix.finish", "login"], "continuity.hotfix", prepare_hotfix),
}


def report(path):
    root = ET.parse(path).getroot()
    assert root.tag == "testsuite"
    assert int(root.get("tests")) == len(list(root.iter("testcase"))) > 0
    return root, {(case.get("classname"), case.get("name")): case for case in root.iter("testcase")}


@pytest.mark.parametrize("task", list(TASKS))
def test_each_task_that_deploys_writes_a_passing_report_where_junit_says(make_project, task):
    args, suite, prepare = TASKS[task]
    project, ws = released(make_project)
    if prepare:
        prepare(project, ws)

    proc = project.fab(ws, *args, "--junit", "reports/{}.xml".format(task))

    assert proc.returncode == 0, proc.stderr
    path = ws / "reports" / "{}.xml".format(task)
    assert "junit report written to {}".format(os.path.realpath(path)) in proc.stdout
    root, cases = report(path)
    assert (root.get("name"), root.get("failures"), root.get("errors")) == (suite, "0", "0")
    if task == "hotfix.finish":  # production's new tree is built and checked, as in the pipeline
        assert ("continuity.stage", "check") in cases and ("continuity.check", "test -f app.txt") in cases
    else:  # a task without stages is one case, the run itself
        assert list(cases) == [("continuity.run", suite.split(".")[1])]
        assert "deployed" in cases["continuity.run", suite.split(".")[1]].find("system-out").text
    assert not (ws / "reports" / "setting.xml").exists()  # the option beats continuity.junit


@pytest.mark.parametrize("task", list(TASKS))
def test_each_task_whose_deploy_fails_writes_a_failed_case(make_project, task):
    args, suite, prepare = TASKS[task]
    project, ws = released(make_project)
    if prepare:
        prepare(project, ws)

    proc = project.fab(ws, *args, "--junit", "reports/{}.xml".format(task), env={"DEPLOY_FAIL": "1"})

    assert proc.returncode == 1, proc.stderr
    root, cases = report(ws / "reports" / "{}.xml".format(task))
    assert root.get("name") == suite and root.get("failures") == "1"
    failure = cases["continuity.run", suite.split(".")[1]].find("failure")
    assert "the deploy script broke" in failure.get("message") and "the deploy script broke" in failure.text


CHDIR_FABFILE = """
import os

from fabric import task
from invoke import Collection

import continuity


@task
def deploy(c, environment):
    os.chdir(os.environ.get("ELSEWHERE", "."))


ns = Collection(deploy, continuity)
"""


def test_the_report_path_is_resolved_when_the_task_starts(make_project, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    project, ws = released(make_project, fabfile=CHDIR_FABFILE)

    proc = project.fab(ws, "continuity.deploy", "qa", "--junit", "reports/deploy.xml", env={"ELSEWHERE": str(elsewhere)})

    assert proc.returncode == 0, proc.stderr
    assert (ws / "reports" / "deploy.xml").exists() and not (elsewhere / "reports").exists()


def test_without_the_option_the_setting_still_applies(make_project):
    project, ws = released(make_project)

    proc = project.fab(ws, "continuity.deploy", "qa")

    assert proc.returncode == 0, proc.stderr
    root, cases = report(ws / "reports" / "setting.xml")
    assert root.get("name") == "continuity.deploy" and list(cases) == [("continuity.run", "deploy")]


def test_the_option_is_listed_in_each_tasks_help(project):
    for task in ("continuity.promote", "continuity.deploy", "continuity.rollback", "continuity.hotfix.finish"):
        proc = project.fab(project.dev, "--help", task)
        assert "--junit=STRING" in proc.stdout and "Write a JUnit XML report" in proc.stdout, proc.stdout
