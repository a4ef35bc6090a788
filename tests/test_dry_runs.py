"""A dry run refuses and skips what the real run would, and lists the stages in the order they run."""

import io

from conftest import Project, assert_user_error, git
from continuity import config as cfg
from continuity.build import Decision
from continuity.config import BuildStep
from continuity.merge import Candidate
from continuity.pipeline import print_plan
from continuity.pipeline import stages as pipeline_stages
from continuity.record import start_record
from continuity.report import Reporter
from continuity.stage import Attempt

QA = "environments:\n  qa: {}\n"


def _rolled_back(make_project):
    """staging ran ``first``, then ``second``, which a rollback marked bad."""
    project = make_project(config=Project.config(extra=QA))
    first = project.push_to("development", "first", one="1\n")
    ws = project.workspace()
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    second = project.push_to("development", "second", two="2\n")
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    assert project.fab(ws, "continuity.rollback", "staging").returncode == 0
    return project, ws, first, second


def test_a_dry_run_deploy_refuses_a_revision_marked_bad_as_the_deploy_does(make_project):
    project, ws, first, second = _rolled_back(make_project)
    before = project.refs()

    dry = project.fab(ws, "continuity.deploy", "staging", "--dry-run")
    real = project.fab(ws, "continuity.deploy", "staging")
    forced = project.fab(ws, "continuity.deploy", "staging", "--force", "--dry-run")

    assert_user_error(dry, "{} is marked bad for staging".format(second[:12]), "pass --force")
    assert_user_error(real, "{} is marked bad for staging".format(second[:12]), "pass --force")
    assert dry.stderr.splitlines()[-1] == real.stderr.splitlines()[-1]
    assert forced.returncode == 0, forced.stderr
    assert project.refs() == before


def test_a_dry_run_deploy_says_when_the_deploy_would_be_skipped(make_project):
    project = make_project(config=Project.config(extra=QA))
    dev = project.push_to("development", "feature", one="1\n")
    ws = project.workspace()
    assert project.fab(ws, "continuity.pipeline").returncode == 0

    dry = project.fab(ws, "continuity.deploy", "staging", "--dry-run")

    assert dry.returncode == 0, dry.stderr
    assert "plan: staging: skipped: staging already runs {}".format(dev[:12]) in dry.stdout


def test_a_dry_run_rollback_refuses_going_back_to_a_revision_marked_bad(make_project):
    project, ws, first, second = _rolled_back(make_project)
    before = project.refs()

    dry = project.fab(ws, "continuity.rollback", "staging", "--revision", second, "--dry-run")
    real = project.fab(ws, "continuity.rollback", "staging", "--revision", second)

    assert_user_error(dry, "{} is marked bad for staging".format(second[:12]))
    assert_user_error(real, "{} is marked bad for staging".format(second[:12]))
    assert project.refs() == before
    assert project.ref("refs/continuity/deployed/staging") == first


def test_a_dry_run_pipeline_refuses_production_with_commits_master_lacks(make_project):
    project = make_project(config=Project.config(extra="auto_deploy: [staging, production]\n"))
    stray = project.push_to("production", "fixed straight on production", stray="1\n")
    project.push_to("development", "feature", one="1\n")
    ws = project.workspace()
    before = project.refs()

    dry = project.fab(ws, "continuity.pipeline", "--dry-run")

    assert_user_error(dry, "production has commits master lacks", code=1)
    assert "to production: refused (see below)" in dry.stdout
    assert project.refs() == before and project.deploys() == []
    assert project.ref("production") == stray


def test_the_plan_lists_the_stages_in_the_order_they_run():
    settings = cfg.parse({"checks": ["make test"], "auto_deploy": ["staging"],
                          "docker": {"image": "127.0.0.1:5000/app", "checks": ["make it"]}})
    candidate = Candidate("a" * 40, "b" * 40, "c" * 40, False)  # a merge commit
    decisions = [Decision(BuildStep("assets", "make assets", ("*",)), True, "changed: x")]
    out = io.StringIO()
    attempt = Attempt(None, settings, None, Reporter(out), start_record("pipeline", settings), candidate=candidate,
                      decisions=decisions)

    print_plan(attempt, pipeline_stages(settings))

    stages = [line.split("plan: ", 1)[1].split()[0] for line in out.getvalue().splitlines()]
    assert stages == ["merge", "build", "image", "check", "docker", "push", "bring", "publish", "deploy",
                      "dry"]


def test_dry_runs_of_deploy_promote_and_rollback_still_change_nothing(make_project):
    project, ws, first, second = _rolled_back(make_project)
    git(ws, "fetch", "--quiet", "origin")
    before = project.refs(), git(ws, "for-each-ref")

    for args in (["continuity.deploy", "qa"], ["continuity.promote"], ["continuity.rollback", "qa"]):
        proc = project.fab(ws, *args, "--dry-run")
        assert proc.returncode in (0, 2), (args, proc.stderr)
        assert (project.refs(), git(ws, "for-each-ref")) == before, args
