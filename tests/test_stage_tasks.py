"""`fab continuity.merge`, `continuity.build` and `continuity.test`: a stage of the pipeline, run here."""

import copy
import xml.etree.ElementTree as ET

import pytest

import continuity
from conftest import Project, assert_user_error, git

GENERATE = """\
    build:
      - name: generate
        command: cp input.txt out.txt
        paths: [input.txt]
    """


def state(project, ws):
    """Everything a task that changes nothing must leave as it was: the remote's refs, the checkout's refs and HEAD."""
    return project.refs(), git(ws, "for-each-ref"), git(ws, "rev-parse", "HEAD"), git(ws, "status", "--porcelain")


def stamp(ws, name="generate"):
    path = ws / ".git" / "continuity" / "builds" / name
    return path.read_text() if path.exists() else None


# -- every task: help for every option ---------------------------------------------------


def all_tasks(collection, prefix=""):
    for name, task in collection.tasks.items():
        yield prefix + name, task
    for name, sub in collection.collections.items():
        yield from all_tasks(sub, prefix + name + ".")


@pytest.mark.parametrize("name, task", list(all_tasks(continuity.ns)), ids=lambda value: value if isinstance(value, str) else "")
def test_every_option_of_every_task_has_a_help_text(name, task):
    # A copy: Invoke's get_arguments pops each help text off the task it reads (a second call finds none).
    arguments = [argument for argument in copy.deepcopy(task).get_arguments() if argument.name != "c"]
    assert task.__doc__ and task.__doc__.strip(), name
    assert all(argument.help for argument in arguments), (name, [a.name for a in arguments if not a.help])


# -- fab continuity.merge ------------------------------------------------------------------


def test_merge_shows_the_commits_and_the_candidate_and_changes_nothing(project):
    base = project.ref("master")
    project.push_to("development", "Add the basket", basket="1\n")
    project.push_to("master", "Fix the footer", footer="1\n")
    ws = project.workspace()
    before = state(project, ws)

    proc = project.fab(ws, "continuity.merge")

    assert proc.returncode == 0, proc.stderr
    assert "development has 1 commit(s) that master lacks:" in proc.stdout
    assert "Add the basket (Dev Eloper <dev@example.com>)" in proc.stdout
    assert "development merges cleanly into master (merge commit) -> candidate" in proc.stdout
    assert "nothing was merged or pushed: `fab continuity.pipeline` builds, checks and pushes it" in proc.stdout
    assert state(project, ws) == before and project.ref("master") != base


def test_merge_names_the_conflicting_files_as_the_pipeline_would_and_changes_nothing(project):
    project.push_to("development", "one way", **{"app.txt": "version 2\n"})
    project.push_to("master", "another way", **{"app.txt": "version 3\n"})
    ws = project.workspace()
    before = state(project, ws)

    merged = project.fab(ws, "continuity.merge")
    piped = project.fab(ws, "continuity.pipeline", "--dry-run")

    assert_user_error(merged, "'development' does not merge cleanly into 'master'; conflicting files: app.txt", code=1)
    assert merged.stderr.splitlines()[-1] == piped.stderr.splitlines()[-1]
    assert state(project, ws) == before


def test_merge_says_when_there_is_nothing_to_merge(project):
    ws = project.workspace()

    proc = project.fab(ws, "continuity.merge")

    assert proc.returncode == 0, proc.stderr
    assert "nothing to merge: master already contains development at" in proc.stdout


def test_merge_on_a_line_names_that_lines_branches_in_its_hint(make_project):
    project = make_project(config=Project.config(extra="lines:\n  '1.x': {}\n"),
                           branches=("master", "development", "production", "development-1.x", "master-1.x",
                                     "production-1.x"))
    project.push_to("development-1.x", "a 1.x fix", fix="1\n")
    ws = project.workspace()

    proc = project.fab(ws, "continuity.merge", "--line", "1.x")

    assert proc.returncode == 0, proc.stderr
    assert "development-1.x has 1 commit(s) that master-1.x lacks:" in proc.stdout
    assert "`fab continuity.pipeline --line 1.x`" in proc.stdout


# -- fab continuity.build ------------------------------------------------------------------


def test_build_runs_the_changed_steps_here_and_the_pipeline_then_skips_them(make_project):
    project = make_project(config=Project.config(checks=["cmp input.txt out.txt"], extra=GENERATE))
    dev = project.push_to("development", "input", **{"input.txt": "one\n"})
    ws = project.workspace()
    refs = project.refs()

    built = project.fab(ws, "continuity.build")

    assert built.returncode == 0, built.stderr
    assert "build step 'generate' runs: no earlier build in this workspace" in built.stdout
    assert "result: 1 build step(s) ran, 0 skipped, on {}".format(dev[:12]) in built.stdout
    assert (ws / "out.txt").read_text() == "one\n" and project.refs() == refs
    again = project.fab(ws, "continuity.build")
    assert "build step 'generate' skipped: already built at this revision" in again.stdout

    piped = project.fab(ws, "continuity.pipeline")  # a fast-forward: the candidate is what was built here

    assert piped.returncode == 0, piped.stderr
    assert "build step 'generate' skipped: already built at this revision" in piped.stdout
    assert project.ref("master") == dev


def test_a_build_of_uncommitted_changes_is_never_taken_for_the_revision(make_project):
    project = make_project(config=Project.config(checks=["cmp input.txt out.txt"], extra=GENERATE))
    project.push_to("development", "input", **{"input.txt": "one\n"})
    ws = project.workspace()
    (ws / "input.txt").write_text("edited here\n")

    edited = project.fab(ws, "continuity.build")

    assert edited.returncode == 0, edited.stderr
    assert "build step 'generate' runs: uncommitted changes: input.txt" in edited.stdout
    assert "with uncommitted changes to 1 tracked file(s)" in edited.stdout
    assert "uncommitted" in stamp(ws)
    git(ws, "checkout", "--", "input.txt")

    proc = project.fab(ws, "continuity.build")

    assert "build step 'generate' runs: its last run built uncommitted changes" in proc.stdout
    assert (ws / "out.txt").read_text() == "one\n"


def test_a_build_dry_run_says_what_would_run_and_runs_nothing(make_project):
    project = make_project(config=Project.config(extra=GENERATE))
    project.push_to("development", "input", **{"input.txt": "one\n"})
    ws = project.workspace()

    proc = project.fab(ws, "continuity.build", "--dry-run")

    assert proc.returncode == 0, proc.stderr
    assert "plan: build step 'generate' would run: no earlier build in this workspace" in proc.stdout
    assert "dry run: nothing was built" in proc.stdout
    assert not (ws / "out.txt").exists() and stamp(ws) is None


def test_a_failing_build_step_fails_the_task_as_it_fails_the_pipeline(make_project):
    project = make_project(config=Project.config(extra=GENERATE.replace("cp input.txt out.txt", "'echo no; exit 3'")))
    project.push_to("development", "input", **{"input.txt": "one\n"})
    ws = project.workspace()

    proc = project.fab(ws, "continuity.build")

    assert_user_error(proc, "build step 'generate' (echo no; exit 3) exited with code 3; last output:\nno", code=1)
    assert "unfinished" in stamp(ws)


# -- fab continuity.test -------------------------------------------------------------------


def test_test_runs_the_checks_here_with_the_pipelines_environment_and_writes_junit(make_project, tmp_path):
    checks = ["test -f app.txt", 'test "$CONTINUITY_REVISION" = "$(git rev-parse HEAD)"',
              'test "$CONTINUITY_BRANCH" = master']
    project = make_project(config=Project.config(checks=checks))
    ws = project.workspace()
    before = state(project, ws)
    report = tmp_path / "reports" / "test.xml"

    proc = project.fab(ws, "continuity.test", "--junit", str(report))

    assert proc.returncode == 0, proc.stderr
    assert "check     ok" in proc.stdout and "result: 3 check(s) passed on" in proc.stdout
    suite = ET.parse(report).getroot()
    assert suite.get("name") == "continuity.test" and suite.get("failures") == "0"
    assert [case.get("name") for case in suite.iter("testcase") if case.get("classname") == "continuity.check"] == checks
    assert state(project, ws) == before


def test_a_failing_check_fails_test_with_the_pipelines_message_and_exit_code(make_project):
    project = make_project(config=Project.config(checks=["true", "echo boom; exit 3"]))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()

    tested = project.fab(ws, "continuity.test")
    piped = project.fab(ws, "continuity.pipeline")

    assert_user_error(tested, "check 'echo boom; exit 3' exited with code 3; last output:\nboom", code=1)
    assert (tested.returncode, tested.stderr) == (piped.returncode, piped.stderr)


def test_a_check_that_hangs_is_stopped_at_its_time_limit_as_in_the_pipeline(make_project, tmp_path):
    project = make_project(config=Project.config(checks=[], extra="checks:\n  - name: hang\n    command: echo started; sleep 60\n    timeout: 1\n"))
    ws = project.workspace()
    report = tmp_path / "test.xml"

    proc = project.fab(ws, "continuity.test", "--junit", str(report))

    assert_user_error(proc, "check 'hang' timed out after 1s", "last output:\nstarted", code=1)
    assert "result: FAILED: check 'hang' timed out after 1s" in proc.stdout
    failed = [case for case in ET.parse(report).getroot().iter("testcase") if case.find("failure") is not None]
    assert [case.get("name") for case in failed] == ["check", "hang"]


def test_a_check_that_edits_tracked_files_fails_here_as_in_the_pipeline(make_project):
    project = make_project(config=Project.config(checks=["echo changed > app.txt"]))
    ws = project.workspace()

    proc = project.fab(ws, "continuity.test")

    assert_user_error(proc, "check 'echo changed > app.txt' changed tracked files: app.txt", code=1)


def test_test_checks_uncommitted_changes_as_they_are(make_project):
    project = make_project(config=Project.config(checks=["grep -q edited app.txt"]))
    ws = project.workspace()
    (ws / "app.txt").write_text("edited\n")

    proc = project.fab(ws, "continuity.test")

    assert proc.returncode == 0, proc.stderr
    assert "with uncommitted changes to 1 tracked file(s)" in proc.stdout
    assert (ws / "app.txt").read_text() == "edited\n"


def test_a_test_dry_run_lists_the_checks_with_their_time_limits(make_project):
    project = make_project(config=Project.config(checks=["true"], extra="check_timeout: 30\n"))
    ws = project.workspace()

    proc = project.fab(ws, "continuity.test", "--dry-run")

    assert proc.returncode == 0, proc.stderr
    assert "plan: check $ true (time limit 30s)" in proc.stdout and "dry run: nothing was run" in proc.stdout


def test_test_outside_a_checkout_is_a_user_error(tmp_path):
    from conftest import run_fab

    (tmp_path / "fabfile.py").write_text("from invoke import Collection\nimport continuity\nns = Collection(continuity)\n")

    proc = run_fab(tmp_path, "continuity.test")

    assert_user_error(proc, "is not inside a git checkout")
