"""What a new user met in the trial of this session, pinned."""

import subprocess

from conftest import FAB, Project, assert_user_error, gated_check, git, wait_for


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


# -- from the adversarial trial ----------------------------------------------------------


def _config(checks, build=""):
    return Project.config(checks=checks, extra=build)


def test_a_build_step_that_edits_a_tracked_file_is_not_stamped_and_fails_every_run(make_project):
    build = "build:\n  - {name: gen, command: 'sed -i s/v2/v3/ app.txt && cp app.txt out.txt', paths: [app.txt]}\n"
    project = make_project(config=_config(["grep -q v3 out.txt"], build))
    project.push_to("development", "second", **{"app.txt": "v2\n"})
    master = project.ref("master")
    ws = project.workspace()

    first = project.fab(ws, "continuity.pipeline")
    second = project.fab(ws, "continuity.pipeline")

    for proc in (first, second):
        assert proc.returncode == 1, proc.stdout
        assert "build step 'gen' (sed -i s/v2/v3/ app.txt && cp app.txt out.txt) changed tracked files: app.txt" in proc.stderr
    assert "already built at this revision" not in second.stdout
    assert project.ref("master") == master


def test_a_check_that_hides_an_edit_from_git_status_fails_the_run_and_is_undone(make_project):
    checks = ["git update-index --skip-worktree app.txt && echo ok > app.txt", "grep -q ok app.txt"]
    project = make_project(config=_config(checks))
    project.push_to("development", "second", **{"app.txt": "v2\n"})
    master = project.ref("master")
    ws = project.workspace()

    proc = project.fab(ws, "continuity.pipeline")

    assert proc.returncode == 1, proc.stdout
    assert "hid tracked files from git status (skip-worktree or assume-unchanged): app.txt" in proc.stderr
    assert project.ref("master") == master and project.deploys() == []
    assert git(ws, "ls-files", "-v", "app.txt") == "H app.txt"  # the flag is gone
    assert (ws / "app.txt").read_text() == "v2\n"  # HEAD's content (development), put back
    assert project.fab(ws, "continuity.status").returncode == 0


def test_continuity_test_puts_back_a_clean_checkout_that_a_check_changed(make_project):
    project = make_project(config=_config(["git checkout -q HEAD~1 && echo edit > app.txt"]))
    project.push_to("development", "second", **{"app.txt": "v2\n"})
    ws = project.workspace()
    head = git(ws, "rev-parse", "HEAD")

    proc = project.fab(ws, "continuity.test")

    assert proc.returncode == 1
    assert "moved HEAD to" in proc.stderr and "(the revision checked out is {})".format(head[:12]) in proc.stderr
    assert git(ws, "rev-parse", "HEAD") == head
    assert git(ws, "status", "--porcelain", "--untracked-files=no") == ""


def test_a_password_with_a_raw_at_sign_is_redacted_whole():
    from continuity._text import redact

    assert redact("origin at https://user:pa@SECRET@example.invalid/r.git") == "origin at https://***@example.invalid/r.git"
    assert redact("https://host/path?mail=a@b") == "https://host/path?mail=a@b"
