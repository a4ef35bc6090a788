"""Results on the remote, keyed by tree: recorded by every run, listed, reused, and safe from junk."""

import textwrap

from conftest import git

RESULTS = "refs/continuity/results"


def _config(checks, extra=""):
    """checks: a list of YAML items (strings or mappings written inline)."""
    lines = ["continuity:", "  checks:"] + ["    - " + c for c in checks]
    return "\n".join(lines) + "\n" + textwrap.indent(textwrap.dedent(extra), "  ")


def _marking(tmp_path, name):
    """A check command that appends a line to a file outside the checkout: the proof it ran."""
    mark = tmp_path / (name + ".ran")
    return "'echo ran >> {}'".format(mark), mark


def _files(project):
    """{path: content} of the results tree on origin."""
    head = project.ref(RESULTS)
    if head is None:
        return {}
    paths = git(project.origin, "ls-tree", "-r", "--name-only", head).splitlines()
    return {path: git(project.origin, "show", "{}:{}".format(head, path)) for path in paths}


def _tree(project, rev):
    return git(project.origin, "rev-parse", rev + "^{tree}")


def test_a_pipeline_run_records_each_check_and_build_step_on_the_candidates_tree(make_project):
    project = make_project(config=_config(["test -f app.txt", "{name: lint, command: 'true'}"], extra="""
        build:
          - {name: assets, command: 'echo built > built.out', paths: ['*']}
        """))
    project.write(".gitignore", "*.out\n")
    project.commit("ignore build output")
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/development")
    ws = project.workspace()
    proc = project.fab(ws, "continuity.pipeline", env={"BUILD_URL": "https://jenkins:s3cret@ci.example.com/job/app/41/",
                                                        "BUILD_NUMBER": "41"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tree = _tree(project, "master")
    files = _files(project)
    assert sorted(path.split("/")[:2] == [tree[:2], tree[2:]] for path in files) == [True] * 3, files
    texts = "\n".join(files.values())
    assert "name: lint" in texts and "name: test -f app.txt" in texts and "name: assets" in texts
    assert "kind: build" in texts and "status: passed" in texts and "build_number: 41" in texts
    assert "https://***@ci.example.com/job/app/41/" in texts and "s3cret" not in texts

    listed = project.fab(ws, "continuity.results")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert any(line.startswith("passed") and "build #41" in line and "check 'lint'" in line for line in lines), lines
    assert any("build step 'assets'" in line for line in lines), lines
    assert "tested: every configured check passed on this tree" in listed.stdout


def test_a_failing_check_is_recorded_as_failed_and_the_tree_is_not_tested(make_project):
    project = make_project(config=_config(["'exit 3'"]))
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    assert project.fab(ws, "continuity.pipeline").returncode == 1
    development = project.ref("development")
    listed = project.fab(ws, "continuity.results", "--revision", development)
    assert listed.returncode == 0, listed.stderr
    assert any(line.startswith("failed") for line in listed.stdout.splitlines()), listed.stdout
    assert "not tested: check 'exit 3' failed" in listed.stdout


def test_fab_continuity_test_records_on_the_checkouts_tree_and_a_rerun_over_it_reuses_every_check(make_project,
                                                                                                   tmp_path):
    check, mark = _marking(tmp_path, "check")
    project = make_project(config=_config([check]))
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    tested = project.fab(ws, "continuity.test", env={"BUILD_NUMBER": "41"})
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "recorded 1 result(s)" in tested.stdout
    mark.unlink()
    proc = project.fab(ws, "continuity.pipeline")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not mark.exists(), "the check ran again"
    tree = _tree(project, "master")
    assert "checks: reused, passed on tree {} in build #41".format(tree[:12]) in proc.stdout


def test_a_check_with_reuse_false_runs_again_and_the_others_are_reused(make_project, tmp_path):
    kept, kept_mark = _marking(tmp_path, "kept")
    outside, outside_mark = _marking(tmp_path, "outside")
    project = make_project(config=_config([kept, "{{name: outside, command: {}, reuse: false}}".format(outside)]))
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    assert project.fab(ws, "continuity.test").returncode == 0
    kept_mark.unlink()
    outside_mark.unlink()
    proc = project.fab(ws, "continuity.pipeline")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outside_mark.exists() and not kept_mark.exists()
    assert "1 check(s) passed; reused, passed on tree" in proc.stdout


def test_reuse_results_false_runs_every_check(make_project, tmp_path):
    check, mark = _marking(tmp_path, "check")
    project = make_project(config=_config([check], extra="reuse_results: false\n"))
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    assert project.fab(ws, "continuity.test").returncode == 0
    mark.unlink()
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    assert mark.exists()


def test_a_result_for_another_tree_never_counts(make_project, tmp_path):
    check, mark = _marking(tmp_path, "check")
    project = make_project(config=_config([check]))
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    assert project.fab(ws, "continuity.test").returncode == 0  # tree of version 2
    project.push_to("development", "another change", **{"app.txt": "version 3\n"})
    ws = project.workspace()
    mark.unlink()
    proc = project.fab(ws, "continuity.pipeline")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert mark.exists(), "a result recorded for another tree was reused"
    assert "reused" not in proc.stdout


def test_a_changed_check_command_is_a_different_definition(make_project, tmp_path):
    check, mark = _marking(tmp_path, "check")
    project = make_project(config=_config([check]))
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    assert project.fab(ws, "continuity.test").returncode == 0
    mark.unlink()
    runtime = tmp_path / "runtime.yaml"  # the same check, spelt differently: another command
    runtime.write_text(_config([check.replace("echo ran", "echo  ran")]))
    proc = project.fab(ws, "-f", str(runtime), "continuity.pipeline")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert mark.exists(), "a result of another command was reused"


def test_results_are_read_with_plain_git_by_fetching_one_ref(project):
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    assert project.fab(ws, "continuity.test").returncode == 0
    tree = git(ws, "rev-parse", "HEAD^{tree}")
    git(ws, "fetch", "--quiet", "origin", RESULTS)
    names = git(ws, "ls-tree", "--name-only", "FETCH_HEAD:{}/{}".format(tree[:2], tree[2:])).splitlines()
    assert len(names) == 1
    text = git(ws, "show", "FETCH_HEAD:{}/{}/{}".format(tree[:2], tree[2:], names[0]))
    assert "status: passed" in text and "command: test -f app.txt" in text


def test_a_results_ref_that_is_a_blob_is_treated_as_absent_with_one_warning(project):
    blob = git(project.origin, "hash-object", "-w", "--stdin")
    git(project.origin, "update-ref", RESULTS, blob)
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    proc = project.fab(ws, "continuity.pipeline")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "is a blob" in proc.stdout and "results are treated as absent" in proc.stdout
    assert "git push origin --delete refs/continuity/results" in proc.stdout
    assert project.ref(RESULTS) == blob, "continuity overwrote a ref it could not read"
    listed = project.fab(ws, "continuity.results")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    assert "not tested" in listed.stdout
    status = project.fab(ws, "continuity.status")
    assert status.returncode == 0 and "Traceback" not in status.stderr
    assert "warning: refs/continuity/results on origin is a blob" in status.stdout
    assert "master       {}, not tested".format(project.ref("master")[:12]) in status.stdout


def test_junk_in_the_results_tree_is_ignored_and_kept(project, tmp_path):
    tree = _tree(project, "development")
    junk = tmp_path / "junk"
    junk.mkdir()
    git(junk, "init", "--quiet")
    (junk / tree[:2]).mkdir()
    (junk / tree[:2] / tree[2:]).mkdir()
    (junk / tree[:2] / tree[2:] / "0123456789abcdef01234567").write_text("status: passed\nno definition here\n")
    (junk / "README").write_text("not a result\n")
    git(junk, "add", "-A")
    git(junk, "commit", "--quiet", "-m", "junk")
    git(junk, "push", "--quiet", str(project.origin), "HEAD:" + RESULTS)
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    proc = project.fab(ws, "continuity.pipeline")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reused" not in proc.stdout
    files = _files(project)
    assert "README" in files and len(files) == 3, files  # ours was added on top of what was there


# -- tested-only revisions ---------------------------------------------------------------


def _intermediate(project):
    """development gets two commits; the pipeline fast-forwards master over both and tests only the second."""
    first = project.push_to("development", "first", **{"app.txt": "version 2\n"})
    second = project.push_to("development", "second", **{"app.txt": "version 3\n"})
    ws = project.workspace()
    proc = project.fab(ws, "continuity.pipeline")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert project.ref("master") == second
    return ws, first, second


def test_deploying_an_untested_intermediate_commit_is_refused_without_force(make_project):
    project = make_project(config=_config(["test -f app.txt"], extra="environments: {qa: {}}\n"))
    ws, first, second = _intermediate(project)
    before = project.refs()
    proc = project.fab(ws, "continuity.deploy", "qa", "--revision", first)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "{} is not tested".format(first[:12]) in proc.stderr
    assert "git checkout {} && fab continuity.test".format(first[:12]) in proc.stderr
    assert "--force" in proc.stderr
    assert project.refs() == before and not [d for d in project.deploys() if d[0] == "qa"]

    assert project.fab(ws, "continuity.deploy", "qa", "--revision", second).returncode == 0  # tested: accepted

    forced = project.fab(ws, "continuity.deploy", "qa", "--revision", first, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    entry = git(project.origin, "log", "-1", "--format=%B", "refs/continuity/ledger/qa")
    assert "forced: true" in entry and "revision: " + first in entry
    history = project.fab(ws, "continuity.history", "qa")
    assert "forced=true" in history.stdout


def test_an_intermediate_commit_checked_with_fab_continuity_test_is_deployed(make_project):
    project = make_project(config=_config(["test -f app.txt"], extra="environments: {qa: {}}\n"))
    ws, first, _ = _intermediate(project)
    there = project.workspace(first)
    assert project.fab(there, "continuity.test").returncode == 0
    proc = project.fab(ws, "continuity.deploy", "qa", "--revision", first)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "forced" not in git(project.origin, "log", "-1", "--format=%B", "refs/continuity/ledger/qa")


def test_promote_and_rollback_take_only_tested_revisions(make_project):
    project = make_project(config=_config(["test -f app.txt"]))
    ws, first, second = _intermediate(project)
    refused = project.fab(ws, "continuity.promote", "--revision", first, "--yes")
    assert refused.returncode == 2 and "is not tested" in refused.stderr, refused.stderr
    assert "fab continuity.promote --revision {} --force".format(first) in refused.stderr
    assert project.ref("production") != first
    assert project.fab(ws, "continuity.promote", "--revision", second, "--yes").returncode == 0
    back = project.fab(ws, "continuity.rollback", "staging", "--revision", first)
    assert back.returncode == 2 and "is not tested" in back.stderr, back.stderr
    forced = project.fab(ws, "continuity.rollback", "staging", "--revision", first, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "forced: true" in git(project.origin, "log", "-2", "--format=%B", "refs/continuity/ledger/staging")


def test_status_says_whether_master_production_and_each_environment_run_a_tested_tree(make_project):
    project = make_project(config=_config(["test -f app.txt"]))
    ws, _, second = _intermediate(project)
    proc = project.fab(ws, "continuity.status")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any("master" in line and second[:12] in line and line.endswith(", tested") for line in lines), lines
    assert any("production" in line and "not tested (check 'test -f app.txt' has no result)" in line
               for line in lines), lines
    assert any("staging" in line and "runs {}".format(second[:12]) in line and line.endswith("; tested") for line in lines), lines


# -- jobs ---------------------------------------------------------------------------------


def test_with_jobs_checks_run_at_once_and_each_ones_output_is_printed_whole(make_project, tmp_path):
    flag = tmp_path / "b-started"
    waits = ("'echo a-start; i=0; while [ ! -f {0} ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; "
             "echo a-saw-b; test -f {0}'").format(flag)  # passes only while the other check runs
    other = "'echo b-start; touch {}; sleep 0.5; echo b-end'".format(flag)
    project = make_project(config=_config([waits, other], extra="jobs: 2\n"))
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    proc = project.fab(ws, "continuity.pipeline")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line in ("a-start", "a-saw-b", "b-start", "b-end")]
    assert lines in (["a-start", "a-saw-b", "b-start", "b-end"], ["b-start", "b-end", "a-start", "a-saw-b"]), lines
    assert "check     ok" in proc.stdout and "2 check(s) passed" in proc.stdout


def test_with_jobs_a_failing_check_fails_the_run_after_the_running_ones_end(make_project):
    project = make_project(config=_config(["'echo first; exit 5'", "'sleep 0.3; echo second'"], extra="jobs: 2\n"))
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    proc = project.fab(ws, "continuity.pipeline")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "check 'echo first; exit 5' exited with code 5" in proc.stderr
    assert project.ref("master") != project.ref("development")


def test_the_new_settings_are_checked_like_every_other():
    import pytest

    from continuity.config import parse
    from continuity.errors import ConfigError

    settings = parse({"checks": [{"command": "x", "reuse": False, "shards": 4}, "y"], "jobs": "3",
                      "reuse_results": "no"})
    assert [(c.reuse, c.shards) for c in settings.checks] == [(False, 4), (True, 1)]
    assert settings.jobs == 3 and settings.reuse_results is False
    assert parse({}).jobs == 1 and parse({}).reuse_results is True
    for raw, message in (
        ({"checks": [{"command": "x", "shard": 2}]}, "continuity.checks[1].shard: unknown setting; did you mean 'shards'?"),
        ({"checks": [{"command": "x", "shards": 0}]}, "continuity.checks[1].shards must be a whole number"),
        ({"checks": [{"command": "x", "reuse": "maybe"}]}, "continuity.checks[1].reuse must be true or false"),
        ({"jobs": 0}, "continuity.jobs must be a whole number"),
        ({"reuse_result": True}, "did you mean 'reuse_results'?"),
    ):
        with pytest.raises(ConfigError) as info:
            parse(raw)
        assert message in str(info.value)


def test_a_dry_run_plan_says_which_checks_would_be_reused(make_project, tmp_path):
    check, mark = _marking(tmp_path, "check")
    project = make_project(config=_config([check, "'true'"]))
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    assert project.fab(ws, "continuity.test", "--check", check.strip("'")).returncode == 0
    proc = project.fab(ws, "continuity.pipeline", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "plan: check $" in line]
    assert len(lines) == 2 and "(reused, passed on tree" in lines[0] and "reused" not in lines[1], lines


def test_a_build_step_or_check_that_exits_0_but_edits_the_checkout_is_recorded_as_failed(make_project):
    project = make_project(config=_config(["'echo edited >> app.txt'"]))
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    assert project.fab(ws, "continuity.pipeline").returncode == 1
    listed = project.fab(ws, "continuity.results", "--revision", "development").stdout
    assert any(line.startswith("failed") and "check 'echo edited >> app.txt'" in line
               for line in listed.splitlines()), listed
    assert project.fab(ws, "continuity.pipeline").returncode == 1, "a check that failed was reused"


def test_a_build_step_that_edits_the_checkout_is_recorded_as_failed(make_project):
    project = make_project(config=_config(["'true'"], extra="""
        build:
          - {name: gen, command: 'echo edited >> app.txt', paths: ['*']}
        """))
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    assert project.fab(ws, "continuity.pipeline").returncode == 1
    listed = project.fab(ws, "continuity.results", "--revision", "development").stdout
    assert any(line.startswith("failed") and "build step 'gen'" in line for line in listed.splitlines()), listed


def test_hotfix_finish_records_its_checks_and_reuses_a_tree_already_tested(make_project, tmp_path):
    """The hotfix's tree was checked on its branch (`fab continuity.test`): finish does not check it again;
    a hotfix no one checked is checked by finish, and its results are recorded for production's tree."""
    check, mark = _marking(tmp_path, "hotfix")
    project = make_project(config=_config([check], extra="auto_deploy: []\nhotfix:\n  deploy: false\n"))
    ws = project.workspace()
    assert project.fab(ws, "continuity.hotfix.start", "tested").returncode == 0
    tested = project.push_to("hotfix/tested", "fix, tested on its branch", tested="1\n")
    assert project.fab(project.workspace(tested), "continuity.test").returncode == 0
    assert mark.read_text().count("ran") == 1

    finished = project.fab(ws, "continuity.hotfix.finish", "tested")

    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert project.ref("production") == tested
    assert mark.read_text().count("ran") == 1, "the check ran again on a tree that had passed it"
    assert "reused, passed on tree {}".format(_tree(project, tested)[:12]) in finished.stdout

    assert project.fab(ws, "continuity.hotfix.start", "fresh").returncode == 0
    fresh = project.push_to("hotfix/fresh", "fix nobody checked", fresh="1\n")
    before = len(_files(project))

    finished = project.fab(ws, "continuity.hotfix.finish", "fresh")

    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert mark.read_text().count("ran") == 2
    assert len(_files(project)) == before + 1
    listed = project.fab(ws, "continuity.results", "--revision", fresh)
    assert "tested: every configured check passed on this tree" in listed.stdout, listed.stdout


def test_fab_build_records_its_steps_on_the_trees_of_a_clean_checkout(make_project):
    project = make_project(config=_config(["'true'"], extra="""
        build:
          - {name: assets, command: 'echo built > built.out', paths: ['*']}
        """))
    project.write(".gitignore", "*.out\n")
    head = project.commit("ignore build output")
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/development")
    ws = project.workspace(head)

    built = project.fab(ws, "continuity.build")

    assert built.returncode == 0, built.stdout + built.stderr
    assert "recorded 1 result(s) for tree {}".format(_tree(project, head)[:12]) in built.stdout
    [text] = [t for path, t in _files(project).items() if path.startswith(_tree(project, head)[:2] + "/")]
    assert "kind: build" in text and "name: assets" in text and "status: passed" in text

    (ws / "app.txt").write_text("edited, not committed\n")
    again = project.fab(ws, "continuity.build")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "results not recorded: the checkout has uncommitted changes" in again.stdout
