"""Checks on many agents: one candidate, its shards checked in several workspaces, then master advanced."""

import os
import signal
import textwrap

from conftest import assert_user_error, git, wait_for

RESULTS = "refs/continuity/results"


def _sharded_config(tmp_path, shards=3, extra=""):
    """A check of ``shards`` shards; each one waits (bounded) until every shard has started: they run at once."""
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    barrier = ('touch {0}/started-$CONTINUITY_SHARD; echo "shard $CONTINUITY_SHARD of $CONTINUITY_SHARDS"; '
               'if [ -n "$SHARD_FAIL" ] && [ "$CONTINUITY_SHARD" = "$SHARD_FAIL" ]; then exit 4; fi; '
               'if [ -n "$SHARD_GATE" ]; then echo $$ > $SHARD_GATE.tmp && mv $SHARD_GATE.tmp $SHARD_GATE.in; while [ ! -f $SHARD_GATE ]; do sleep 0.05; done; fi; '
               'i=0; while [ $(ls {0} | grep -c started) -lt {1} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; '
               '[ $(ls {0} | grep -c started) -ge {1} ]').format(marks, shards)
    return textwrap.dedent("""\
        continuity:
          checks:
            - test -f app.txt
            - name: suite
              command: '{}'
              shards: {}
        """).format(barrier.replace("'", "''"), shards) + textwrap.indent(textwrap.dedent(extra), "  ")


def _candidate(project, ws):
    out = ws / "candidate-id"
    proc = project.fab(ws, "continuity.candidate", "--output", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    name = out.read_text().strip()
    assert name and name in proc.stdout
    return name


def _agents(project, name, shards, env=None):
    """``shards`` workspaces, each checking its shard of candidate ``name`` at the same time."""
    procs = []
    for index in range(1, shards + 1):
        ws = project.workspace()
        procs.append(project.popen(ws, "continuity.test", "--candidate", name, "--shard",
                                   "{}/{}".format(index, shards), env=env))
    return procs


def test_three_agents_check_the_shards_of_one_candidate_at_once_and_the_pipeline_advances_master(make_project,
                                                                                                     tmp_path):
    project = make_project(config=_sharded_config(tmp_path))
    sha = project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    name = _candidate(project, ws)
    assert project.ref("refs/continuity/candidates/" + name) is not None
    assert project.ref("master") != sha

    outputs = [proc.communicate(timeout=120) for proc in _agents(project, name, 3)]
    assert all(o[1] == "" for o in outputs), outputs
    for index, (stdout, _) in enumerate(outputs, 1):
        assert "shard {} of 3".format(index) in stdout, stdout
    head = project.ref(RESULTS)
    assert len(git(project.origin, "ls-tree", "-r", "--name-only", head).splitlines()) == 4  # 3 shards + 1 check

    proc = project.fab(ws, "continuity.pipeline", "--candidate", name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert project.ref("master") == sha  # a fast-forward: the candidate is development's revision
    assert [d[0] for d in project.deploys()] == ["staging"]
    assert project.ref("refs/continuity/candidates/" + name) is None
    again = project.fab(ws, "continuity.pipeline", "--candidate", name)
    assert again.returncode == 2 and "unknown candidate" in again.stderr


def test_a_killed_agents_shard_is_missing_and_master_does_not_advance(make_project, tmp_path):
    project = make_project(config=_sharded_config(tmp_path, shards=2))
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    name = _candidate(project, ws)
    master = project.ref("master")
    gate = tmp_path / "gate"
    first = project.popen(project.workspace(), "continuity.test", "--candidate", name, "--shard", "1/2")
    killed = project.popen(project.workspace(), "continuity.test", "--candidate", name, "--shard", "2/2",
                           env={"SHARD_GATE": str(gate)})
    wait_for(tmp_path / "gate.in")
    os.kill(killed.pid, signal.SIGKILL)  # the agent dies in the middle of its shard
    killed.communicate(timeout=60)
    os.killpg(int((tmp_path / "gate.in").read_text()), signal.SIGKILL)  # and its check, in a group of its own
    assert first.communicate(timeout=120)[1] == ""

    proc = project.fab(ws, "continuity.pipeline", "--candidate", name)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "check 'suite' shard 2/2 has no result" in proc.stderr
    assert "fab continuity.test --candidate {}".format(name) in proc.stderr
    assert project.ref("master") == master and project.deploys() == []


def test_a_failed_shard_blocks_the_candidate(make_project, tmp_path):
    project = make_project(config=_sharded_config(tmp_path, shards=2))
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    name = _candidate(project, ws)
    master = project.ref("master")
    results = [proc.communicate(timeout=120) and proc.returncode
               for proc in _agents(project, name, 2, env={"SHARD_FAIL": "2"})]
    assert results == [0, 1], results
    proc = project.fab(ws, "continuity.pipeline", "--candidate", name)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "check 'suite' shard 2/2 failed" in proc.stderr
    assert project.ref("master") == master


def test_a_candidate_made_on_an_older_master_is_refused_with_what_to_run(make_project, tmp_path):
    project = make_project(config=_sharded_config(tmp_path, shards=1))
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    name = _candidate(project, ws)
    assert all(p.communicate(timeout=120) and p.returncode == 0 for p in _agents(project, name, 1))
    moved = project.push_to("master", "someone moved master", other="x\n")
    proc = project.fab(ws, "continuity.pipeline", "--candidate", name)
    assert_user_error(proc, "candidate {} was made on master".format(name), "fab continuity.candidate")
    assert project.ref("master") == moved


def test_a_merge_candidate_records_its_build_steps_and_keeps_the_checkout(make_project, tmp_path):
    project = make_project(config=_sharded_config(tmp_path, shards=1, extra="""
        build:
          - {name: assets, command: 'true', paths: ['*']}
        """))
    project.push_to("master", "on master", other="x\n")
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    head = git(ws, "rev-parse", "HEAD")
    name = _candidate(project, ws)
    assert git(ws, "rev-parse", "HEAD") == head and git(ws, "for-each-ref", "refs/heads") == ""
    record = git(project.origin, "log", "-1", "--format=%B", "refs/continuity/candidates/" + name)
    candidate = git(project.origin, "rev-parse", "refs/continuity/candidates/{}^1".format(name))
    assert "candidate: " + candidate in record and "base: " + project.ref("master") in record
    tree = git(project.origin, "rev-parse", candidate + "^{tree}")
    files = git(project.origin, "ls-tree", "-r", "--name-only", project.ref(RESULTS)).splitlines()
    assert len(files) == 1 and files[0].startswith("{}/{}/".format(tree[:2], tree[2:]))  # the build step
    assert all(p.communicate(timeout=120) and p.returncode == 0 for p in _agents(project, name, 1))
    proc = project.fab(ws, "continuity.pipeline", "--candidate", name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert project.ref("master") == candidate


def test_bad_shard_check_and_candidate_arguments_are_one_line_errors(make_project, tmp_path):
    project = make_project(config=_sharded_config(tmp_path, shards=2))
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    name = _candidate(project, ws)
    for args, phrase in (
        (["--shard", "3/2"], "--shard takes I/N"),
        (["--shard", "two"], "--shard takes I/N"),
        (["--shard", "1/5"], "no check declares shards: 5"),
        (["--check", "nope"], "--check 'nope': no such check; configured: 'test -f app.txt', 'suite'"),
    ):
        proc = project.fab(ws, "continuity.test", "--candidate", name, *args)
        assert_user_error(proc, phrase)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for bad in ("deadbeef0000", "not-an-id"):
        proc = project.fab(ws, "continuity.test", "--candidate", bad)
        assert_user_error(proc, "--candidate" if bad == "not-an-id" else "unknown candidate deadbeef0000")
        proc = project.fab(ws, "continuity.pipeline", "--candidate", bad)
        assert_user_error(proc)


def test_one_check_of_a_candidate_runs_alone_with_check(make_project, tmp_path):
    project = make_project(config=_sharded_config(tmp_path, shards=1))
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    name = _candidate(project, ws)
    proc = project.fab(project.workspace(), "continuity.test", "--candidate", name, "--check", "test -f app.txt")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "shard 1 of 1" not in proc.stdout
    refused = project.fab(ws, "continuity.pipeline", "--candidate", name)
    assert refused.returncode == 1 and "check 'suite' has no result" in refused.stderr, refused.stderr


def test_candidate_dry_run_builds_and_publishes_nothing(make_project, tmp_path):
    project = make_project(config=_sharded_config(tmp_path, shards=1, extra="""
        build:
          - {name: assets, command: 'touch built', paths: ['*']}
        """))
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    before = project.refs(), git(ws, "for-each-ref")
    proc = project.fab(ws, "continuity.candidate", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "plan: build step 'assets' would run" in proc.stdout and "plan: publish" in proc.stdout
    assert (project.refs(), git(ws, "for-each-ref")) == before
    assert project.ref(RESULTS) is None and not (ws / "built").exists()


def test_a_candidate_ref_that_is_not_a_record_is_refused_in_one_line(project):
    blob = git(project.origin, "hash-object", "-w", "--stdin")
    git(project.origin, "update-ref", "refs/continuity/candidates/0123456789ab", blob)
    ws = project.workspace()
    for task in ("continuity.test", "continuity.pipeline"):
        proc = project.fab(ws, task, "--candidate", "0123456789ab")
        assert_user_error(proc, "candidate 0123456789ab on origin is damaged")


def test_an_output_path_that_cannot_be_written_is_refused_before_anything_is_published(make_project, tmp_path):
    project = make_project(config=_sharded_config(tmp_path, shards=1))
    project.push_to("development", "change", **{"app.txt": "version 2\n"})
    ws = project.workspace()
    before = project.refs()

    missing = project.fab(ws, "continuity.candidate", "--output", str(tmp_path / "nowhere" / "id"))
    directory = project.fab(ws, "continuity.candidate", "--output", str(tmp_path))

    assert_user_error(missing, "the directory {} does not exist; create it first".format(tmp_path / "nowhere"))
    assert_user_error(directory, "it is a directory")
    assert project.refs() == before
    assert not [ref for ref in git(project.origin, "for-each-ref", "--format=%(refname)").split()
                if ref.startswith("refs/continuity/candidates/")]
