"""After a merge commit on master, development is brought to it, so later runs fast-forward."""

from conftest import Project, git

MERGES = "Merge development into master"


def _mover_check(tmp_path, *branches):
    """A check that, on its Nth run, pushes a commit to the Nth of ``branches`` (as another developer)."""
    counter, mover, plan = tmp_path / "checks.count", tmp_path / "developer2", tmp_path / "moves"
    plan.mkdir()
    for number, branch in enumerate(branches, 1):
        (plan / str(number)).write_text(branch)
    return (
        "echo x >> {counter}; n=$(wc -l < {counter}); "
        "if [ -e {plan}/$n ]; then branch=$(cat {plan}/$n); "
        "rm -rf {mover}; git clone -q {origin} {mover} && cd {mover} && git checkout -q origin/$branch && "
        "echo $n > moved-$n && git add moved-$n && git commit -qm \"pushed to $branch during check $n\" && "
        "git push -q origin HEAD:refs/heads/$branch; fi"
    ).format(counter=counter, mover=mover, origin=tmp_path / "origin.git", plan=plan)


def _merges(project):
    return git(project.origin, "log", "--format=%s", "master").splitlines().count(MERGES)


def test_after_a_refused_push_development_gets_the_merge_commit_and_the_next_run_fast_forwards(
        make_project, tmp_path):
    project = make_project(config=Project.config(checks=[_mover_check(tmp_path, "master")]))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()

    first = project.fab(ws, "continuity.pipeline")

    assert first.returncode == 0, first.stderr
    assert "moved while we were testing" in first.stdout
    merged = project.ref("master")
    assert git(project.origin, "log", "-1", "--format=%s", merged) == MERGES
    assert project.ref("development") == merged
    assert "development brought to master {}".format(merged[:12]) in first.stdout

    later = project.push_to("development", "next feature", nxt="y\n")
    second = project.fab(ws, "continuity.pipeline")

    assert second.returncode == 0, second.stderr
    assert "fast-forward to {}".format(later[:12]) in second.stdout
    assert project.ref("master") == later == project.ref("development")
    assert _merges(project) == 1


def test_a_developer_who_pushed_meanwhile_keeps_the_commit_and_the_next_run_converges(make_project, tmp_path):
    project = make_project(config=Project.config(checks=[_mover_check(tmp_path, "master", "development")]))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()

    first = project.fab(ws, "continuity.pipeline")

    assert first.returncode == 0, first.stderr
    theirs = project.ref("development")
    assert git(project.origin, "log", "-1", "--format=%s", theirs) == "pushed to development during check 2"
    assert "development moved on origin meanwhile: left as it is" in first.stdout
    assert git(project.origin, "merge-base", "--is-ancestor", project.ref("master"), theirs, check=False) == ""
    assert project.ref("master") != theirs

    second = project.fab(ws, "continuity.pipeline")

    assert second.returncode == 0, second.stderr
    assert project.ref("development") == project.ref("master")
    git(project.origin, "merge-base", "--is-ancestor", theirs, "development")  # their commit is kept
    assert _merges(project) == 2
    third = project.push_to("development", "after convergence", after="z\n")
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    assert project.ref("master") == third and _merges(project) == 2


def test_a_run_with_nothing_else_to_do_converges_without_the_pipeline_lock(make_project):
    project = make_project(config=Project.config(extra="environments:\n  qa: {}\n"))
    project.push_to("master", "fix on master", fix="1\n")
    project.push_to("development", "feature", base="development", feature="x\n")
    ws = project.workspace()
    off = project.fab(ws, "continuity.pipeline", env={"FABRIC_CONTINUITY_SYNC_DEVELOPMENT": "false"})
    assert off.returncode == 0, off.stderr
    merged, stale = project.ref("master"), project.ref("development")
    assert merged != stale, "with sync_development off, development stays where it was"
    before = project.refs()

    dry = project.fab(ws, "continuity.pipeline", "--dry-run")
    assert dry.returncode == 0 and project.refs() == before
    assert "plan: bring development {} to master's {}".format(stale[:12], merged[:12]) in dry.stdout
    proc = project.fab(ws, "continuity.pipeline")

    assert proc.returncode == 0, proc.stderr
    assert "nothing to do" in proc.stdout
    assert "lock" not in proc.stdout
    assert project.ref("development") == merged
    assert project.deploys()[-1][1] == merged and len(project.deploys()) == 1


def test_a_development_push_the_remote_refuses_is_a_warning_and_master_stands(make_project):
    project = make_project()
    hook = project.origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nwhile read old new ref; do [ $ref = refs/heads/development ] && "
                    "[ -e \"$GIT_DIR/frozen\" ] && { echo 'development is frozen' >&2; exit 1; }; "
                    "done; exit 0\n")
    hook.chmod(0o755)
    base = project.push_to("master", "fix on master", fix="1\n")
    dev = project.push_to("development", "feature", base="development", feature="x\n")
    (project.origin / "frozen").write_text("")

    proc = project.fab(project.workspace(), "continuity.pipeline")

    assert proc.returncode == 0, proc.stderr
    assert git(project.origin, "rev-list", "--parents", "-n1", "master").split()[1:] == [base, dev]
    assert project.ref("development") == dev
    assert "warning: could not bring development to" in proc.stdout
    assert "development is frozen" in proc.stdout
