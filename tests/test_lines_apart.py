"""Branches and environments each belong to one role of one line."""

import pytest

from conftest import Project, assert_user_error, git
from continuity import config as cfg
from continuity.errors import ConfigError


@pytest.mark.parametrize("raw, keys", [
    ({"branches": {"master": "development"}}, ["continuity.branches.development", "continuity.branches.master"]),
    ({"branches": {"production": "master"}}, ["continuity.branches.master", "continuity.branches.production"]),
    ({"branches": {"development": "trunk", "master": "trunk"}},
     ["continuity.branches.development", "continuity.branches.master"]),
    ({"lines": {"1.x": {"branches": {"master": "development-1.x"}}}},
     ["continuity.lines.1.x.branches.development", "continuity.lines.1.x.branches.master"]),
])
def test_two_roles_on_one_branch_are_an_error_naming_both_keys(raw, keys):
    with pytest.raises(ConfigError) as info:
        cfg.parse(raw)
    message = str(info.value)
    assert all(key in message for key in keys), message
    assert "needs a branch of its own" in message


def test_a_line_that_names_no_branches_or_environments_gets_its_own():
    s = cfg.parse({"branches": {"master": "main"}, "auto_deploy": ["qa", "staging"],
                   "environments": {"qa": {"hosts": ["qa1.example.com"]}}, "lines": {"1.x": {}}}, line="1.x")

    assert vars(s.branches) == {"development": "development-1.x", "master": "main-1.x",
                                "production": "production-1.x"}
    assert s.auto_deploy == ("qa-1.x", "staging-1.x")
    assert s.production_environment == "production-1.x"
    assert s.environments == {}, "the main line's hosts are not the line's"


def test_what_a_line_names_itself_is_used_as_given():
    s = cfg.parse({"lines": {"1.x": {"branches": {"master": "release-1"}, "auto_deploy": ["demo"],
                                     "production_environment": "live-1", "environments": {"demo": {}}}}},
                  line="1.x")

    assert (s.branches.master, s.branches.development) == ("release-1", "development-1.x")
    assert (s.auto_deploy, s.production_environment, list(s.environments)) == (("demo",), "live-1", ["demo"])


@pytest.mark.parametrize("line, phrases", [
    ({"auto_deploy": ["staging"]},
     ["continuity.lines.1.x.auto_deploy: 'staging'", "the main line (continuity.auto_deploy)"]),
    ({"production_environment": "production"},
     ["continuity.lines.1.x.production_environment: 'production'", "(continuity.production_environment)"]),
    ({"environments": {"qa": {}}}, ["continuity.lines.1.x.environments.qa: 'qa'", "(continuity.environments.qa)"]),
    ({"branches": {"master": "master"}},
     ["continuity.lines.1.x.branches.master is 'master'", "also continuity.branches.master"]),
])
def test_a_line_cannot_share_a_branch_or_an_environment_with_another(line, phrases):
    raw = {"environments": {"qa": {}}, "lines": {"1.x": line}}
    for selected in (None, "1.x"):  # whichever line a task works on
        with pytest.raises(ConfigError) as info:
            cfg.parse(raw, line=selected)
        assert all(phrase in str(info.value) for phrase in phrases), str(info.value)


def test_two_named_lines_cannot_share_an_environment():
    raw = {"lines": {"1.x": {"auto_deploy": ["old"]}, "2.x": {"environments": {"old": {}}}}}
    with pytest.raises(ConfigError, match="continuity.lines.2.x.environments.old: 'old' is also an environment of "
                                          r"line '1.x' \(continuity.lines.1.x.auto_deploy\)"):
        cfg.parse(raw)


def test_fab_refuses_two_roles_on_one_branch_before_anything_changes(make_project):
    project = make_project(config=Project.config(extra="branches:\n  master: development\n"))
    project.push_to("development", "feature", feature="x\n")
    before = project.refs()

    proc = project.fab(project.workspace(), "continuity.pipeline")

    assert_user_error(proc, "continuity.branches.development and continuity.branches.master are both 'development'")
    assert project.refs() == before
    assert project.deploys() == []


def test_a_line_without_its_own_environment_names_deploys_to_its_own(make_project):
    project = make_project(config=Project.config(extra="lines:\n  '1.x': {}\n"))
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/master-1.x")
    ws = project.workspace()
    assert project.fab(ws, "continuity.init", "--line", "1.x").returncode == 0
    fix = project.push_to("development-1.x", "fix for 1.x", onex="1\n")

    proc = project.fab(ws, "continuity.pipeline", "--line", "1.x")

    assert proc.returncode == 0, proc.stderr
    assert project.deploys() == [["staging-1.x", fix, fix, fix]]
    assert project.ref("refs/continuity/lines/1.x/deployed/staging-1.x") == fix
    assert project.ref("refs/continuity/lines/1.x/deployed/staging") is None
    assert project.ref("refs/continuity/deployed/staging") is None
