"""`fab continuity.status` says what each side lacks, both ways."""

from conftest import Project


def test_status_after_a_hotfix_says_production_has_what_master_lacks(make_project):
    project = make_project(config=Project.config(extra="hotfix:\n  deploy: true\n"))
    project.push_to("development", "feature", one="1\n")
    ws = project.workspace()
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    assert project.fab(ws, "continuity.promote", "--yes").returncode == 0
    project.push_to("development", "more work", two="2\n")
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    assert project.fab(ws, "continuity.hotfix.start", "login").returncode == 0
    fix = project.push_to("hotfix/login", "fix the login", login="fixed\n")
    assert project.fab(ws, "continuity.hotfix.finish", "login").returncode == 0

    proc = project.fab(ws, "continuity.status")

    assert proc.returncode == 0, proc.stderr
    assert "master has 1 commit(s) that production lacks:" in proc.stdout
    assert "production also has 1 commit(s) that master lacks:" in proc.stdout
    assert "{} fix the login (Dev Eloper <dev@example.com>)".format(fix[:12]) in proc.stdout
    assert "production   runs {}, 1 commit(s) behind master, and runs 1 commit(s) that master lacks".format(
        fix[:12]) in proc.stdout
    assert "development has 2 commit(s) that master lacks" in proc.stdout  # the fix and development's merge of it


def test_status_says_nothing_more_when_nothing_is_lacking_the_other_way(project):
    project.push_to("development", "feature", one="1\n")
    proc = project.fab(project.workspace(), "continuity.status")
    assert "also has" not in proc.stdout
    assert "and runs" not in proc.stdout
