"""What a new user met in the trial of this session, pinned."""

import subprocess

from conftest import FAB, Project, assert_user_error, gated_check, wait_for


def test_continuity_test_refuses_a_checkout_a_pipeline_uses_with_one_line(make_project, tmp_path):
    check, started, gate = gated_check(tmp_path)
    project = make_project(config=Project.config(checks=[check]))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    holder = subprocess.Popen([FAB, "continuity.pipeline"], cwd=ws, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=dict(__import__("os").environ, CHECK_GATE=str(gate)))
    try:
        wait_for(started)
        proc = project.fab(ws, "continuity.test")
    finally:
        gate.touch()
        holder.wait(timeout=60)

    assert_user_error(proc, "another continuity run", "is using this checkout")
    assert proc.stdout == ""  # a refusal, not a run: no summary
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_hotfix_finished_without_deploying_says_so_and_where_to_look_afterwards(project):
    ws = project.workspace()
    assert project.fab(ws, "continuity.hotfix.start", "login").returncode == 0
    project.push_to("hotfix/login", "fix the login", login="fixed\n")

    finished = project.fab(ws, "continuity.hotfix.finish", "login")
    again = project.fab(ws, "continuity.hotfix.finish", "login")

    assert finished.returncode == 0, finished.stderr
    assert "the production environment was not deployed (continuity.hotfix.deploy is off)" in finished.stdout
    assert project.deploys() == []
    assert_user_error(again, "nothing to finish (if it was finished, `fab continuity.status` shows where production stands)")
    assert project.fab(ws, "continuity.status").returncode == 0
