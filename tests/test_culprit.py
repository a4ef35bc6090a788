"""When development is red: the culprit is found by bisection, the good prefix lands, its author is told.

Real repositories, a real bare origin, `fab` as a subprocess, a real SMTP
server. The check appends to a counter file each time it runs and fails
when ``bad.txt`` exists, so a commit that adds ``bad.txt`` is a culprit.
"""

import xml.etree.ElementTree as ET

import pytest

from conftest import Project, gated_check, git, wait_for

pytest_plugins = ["mail_server"]

CHECK = 'echo run >> "$COUNTER"; test ! -e bad.txt'


def culprit_project(make_project, tmp_path, extra="", checks=(CHECK,)):
    project = make_project(config=Project.config(checks=list(checks), extra=extra))
    project.counter = tmp_path / "counter"
    # master's tree is a tested one, as it always is once continuity runs the line
    project.push_to("development", "tested start", start="1\n")
    assert run(project).returncode == 0
    project.counter.unlink()
    return project


def run(project, *args, **env):
    env = dict({"COUNTER": str(project.counter), "GIT_AUTHOR_NAME": "CI"}, **env)
    return project.fab(project.workspace(), "continuity.pipeline", *args, env=env)


def runs(project):
    return len(project.counter.read_text().splitlines()) if project.counter.exists() else 0


def batch(project, count=6, bad=(), authors=None):
    """``count`` commits on development in one push; those at positions ``bad`` (from 1) add bad.txt."""
    git(project.dev, "fetch", "--quiet", "origin")
    git(project.dev, "checkout", "--quiet", "--detach", "origin/development", "--")
    shas = []
    for number in range(1, count + 1):
        name = (authors or {}).get(number, "Dev {}".format(number))
        files = {"f{}.txt".format(number): "{}\n".format(number)}
        if number in bad:
            files["bad.txt"] = "broken by {}\n".format(number)
        for path, text in files.items():
            project.write(path, text)
        git(project.dev, "add", "-A")
        git(project.dev, "-c", "user.name=" + name, "-c", "user.email={}@example.com".format(
            name.split()[0].lower()), "commit", "--quiet", "--author", "{} <{}@example.com>".format(
            name, name.split()[0].lower()), "-m", "change {}".format(number))
        shas.append(git(project.dev, "rev-parse", "HEAD"))
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/development")
    return shas


def tree(project, sha):
    return git(project.origin, "rev-parse", sha + "^{tree}")


@pytest.mark.parametrize("position", [1, 3, 6])
def test_the_culprit_is_found_and_the_commits_before_it_land(make_project, tmp_path, position):
    project = culprit_project(make_project, tmp_path)
    shas = batch(project, bad={position})
    before = project.ref("master")

    proc = run(project)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    said = "landed {} of 6 new commits; {} 'change {}' by Dev {} breaks '{}'".format(
        position - 1, shas[position - 1][:7], position, position, CHECK)
    assert "result: FAILED: " + said in proc.stdout, proc.stdout
    master = project.ref("master")
    if position == 1:
        assert master == before
    else:
        assert tree(project, master) == tree(project, shas[position - 2])
        assert [line[0] for line in project.deploys()][-1] == "staging"
    assert project.ref("development") == shas[-1]  # not brought along: it is ahead
    # the full candidate, at most ceil(log2 6) + 1 = 4 bisection runs, and the landing reuses what passed
    assert runs(project) <= 1 + 4


def test_two_culprits_blame_the_first_and_land_what_comes_before(make_project, tmp_path):
    project = culprit_project(make_project, tmp_path)
    shas = batch(project, bad={3, 5})

    proc = run(project)

    assert proc.returncode == 1
    assert "landed 2 of 6 new commits; {} 'change 3' by Dev 3".format(shas[2][:7]) in proc.stdout
    assert tree(project, project.ref("master")) == tree(project, shas[1])


def test_a_second_run_with_nothing_new_waits_quietly(make_project, tmp_path, mail_server):
    server = mail_server()
    extra = "notify:\n  email:\n    host: 127.0.0.1\n    port: {}\n    sender: ci@example.com\n".format(server.port)
    project = culprit_project(make_project, tmp_path, extra=extra)
    shas = batch(project, bad={4})
    assert run(project).returncode == 1
    told = len(server.messages)
    counted = runs(project)

    proc = run(project)

    assert proc.returncode == 1
    assert "development still contains {}, which breaks '{}'; waiting for a fix".format(
        shas[3][:7], CHECK) in proc.stdout + proc.stderr
    assert runs(project) == counted  # no check ran
    assert len(server.messages) == told  # no one was told again

    page = tmp_path / "page.html"
    assert project.fab(project.workspace(), "continuity.report", "--html", str(page)).returncode == 0
    assert "contains {} &#x27;change 4&#x27;".format(shas[3][:7]) in page.read_text()
    assert "the pipeline waits for a fix" in page.read_text()


def test_the_culprits_author_and_the_always_recipients_are_told_alone(make_project, tmp_path, mail_server):
    server = mail_server()
    extra = ("notify:\n  email:\n    host: 127.0.0.1\n    port: {}\n    sender: ci@example.com\n"
             "    recipients: [oncall@example.com]\n").format(server.port)
    project = culprit_project(make_project, tmp_path, extra=extra)
    authors = {1: "Alice A", 2: "Bob B", 3: "Carol C", 4: "Dave D", 5: "Erin E", 6: "Frank F"}
    shas = batch(project, bad={4}, authors=authors)
    junit = tmp_path / "junit.xml"

    proc = run(project, "--junit", str(junit))

    assert proc.returncode == 1
    [mail] = server.messages
    assert sorted(address.lower() for address in mail.recipients) == ["dave@example.com", "oncall@example.com"]
    assert "Bisection:" in mail.body and "re-run before blaming" in mail.body, mail.body
    assert "breaks '{}'".format(CHECK) in mail.body
    props = {p.get("name"): p.get("value") for p in ET.parse(junit).getroot().iter("property")}
    assert props["culprit"] == "{} change 4 Dave D".format(shas[3][:12])


def test_a_culprit_that_is_a_merge_commit_is_blamed_as_one_step(make_project, tmp_path):
    project = culprit_project(make_project, tmp_path)
    git(project.dev, "fetch", "--quiet", "origin")
    git(project.dev, "checkout", "--quiet", "--detach", "origin/development", "--")
    good = project.commit("good before", g="1\n")
    git(project.dev, "checkout", "--quiet", "-b", "feature")
    project.commit("feature part 1", p1="1\n")
    project.commit("feature part 2", **{"bad.txt": "x\n"})
    git(project.dev, "checkout", "--quiet", "--detach", good)
    git(project.dev, "-c", "user.name=Merger M", "-c", "user.email=merger@example.com", "merge", "--quiet",
        "--no-ff", "-m", "Merge feature", "feature")
    merge = git(project.dev, "rev-parse", "HEAD")
    project.commit("after", a="1\n")
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/development")

    proc = run(project)

    assert proc.returncode == 1
    assert "landed 1 of 3 new commits; {} 'Merge feature' by Merger M".format(merge[:7]) in proc.stdout, proc.stdout
    assert tree(project, project.ref("master")) == tree(project, good)


def test_a_revert_of_the_culprit_lands_everything_on_the_next_run(make_project, tmp_path):
    project = culprit_project(make_project, tmp_path)
    batch(project, bad={2})
    assert run(project).returncode == 1
    git(project.dev, "fetch", "--quiet", "origin")
    git(project.dev, "checkout", "--quiet", "--detach", "origin/development", "--")
    git(project.dev, "rm", "--quiet", "bad.txt")
    git(project.dev, "commit", "--quiet", "-m", "Revert the breakage")
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/development")

    proc = run(project)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert git(project.origin, "merge-base", "--is-ancestor", project.ref("development"), project.ref("master"),
               check=False) == ""
    assert tree(project, project.ref("master")) == tree(project, project.ref("development"))


def test_a_rerun_costs_no_bisection_runs(make_project, tmp_path):
    project = culprit_project(make_project, tmp_path)
    batch(project, bad={4})
    assert run(project).returncode == 1
    counted = runs(project)
    project.push_to("development", "unrelated", u="1\n")  # still broken: development is new, so it runs

    proc = run(project)

    assert proc.returncode == 1
    assert "landed 0 of 4 new commits" in proc.stdout, proc.stdout
    assert runs(project) == counted + 1  # the new candidate only: every prefix's result was recorded
    assert "recorded culprit" in proc.stdout


def test_the_cap_bounds_the_check_runs(make_project, tmp_path):
    project = culprit_project(make_project, tmp_path, extra="culprit_max_runs: 2\n")
    batch(project, bad={5})

    proc = run(project)

    assert proc.returncode == 1
    assert 1 < runs(project) <= 1 + 2
    assert "continuity.culprit_max_runs" in proc.stdout


def test_culprit_finding_can_be_turned_off(make_project, tmp_path):
    project = culprit_project(make_project, tmp_path, extra="culprit_finding: false\n")
    batch(project, bad={5})
    before = project.ref("master")

    proc = run(project)

    assert proc.returncode == 1
    assert runs(project) == 1 and project.ref("master") == before
    assert "bisect" not in proc.stdout


def test_master_moving_during_the_bisection_lands_nothing(make_project, tmp_path):
    command, started, gate = gated_check(tmp_path)
    project = culprit_project(make_project, tmp_path, checks=(CHECK, command))
    started.unlink()  # the first run passed through the open gate
    batch(project, bad={4})
    proc = project.popen(project.workspace(), "continuity.pipeline",
                         env={"COUNTER": str(project.counter), "CHECK_GATE": str(gate)})
    wait_for(started)
    moved = project.push_to("master", "someone pushed to master", m="1\n")
    gate.touch()
    out, err = proc.communicate(timeout=120)

    assert proc.returncode == 1, out + err
    assert project.ref("master") == moved
    assert "nothing landed: master moved" in out, out


def test_development_moving_during_the_bisection_lands_only_a_tested_prefix(make_project, tmp_path):
    command, started, gate = gated_check(tmp_path)
    project = culprit_project(make_project, tmp_path, checks=(CHECK, command))
    started.unlink()  # the first run passed through the open gate
    shas = batch(project, bad={4})
    proc = project.popen(project.workspace(), "continuity.pipeline",
                         env={"COUNTER": str(project.counter), "CHECK_GATE": str(gate)})
    wait_for(started)
    newer = project.push_to("development", "newer work", n="1\n")
    gate.touch()
    out, err = proc.communicate(timeout=120)

    assert proc.returncode == 1, out + err
    assert "landing the first 3 of 6 new commits" in out
    assert tree(project, project.ref("master")) == tree(project, shas[2])
    assert project.ref("development") == newer


FAILS_ONCE = 'echo run >> "$COUNTER"; if [ -n "$ONCE" ] && [ ! -e "$ONCE" ]; then touch "$ONCE"; exit 1; fi'


def test_a_check_that_passes_when_run_again_blames_no_one(make_project, tmp_path, mail_server):
    """The failure does not come back on the re-run before blaming: it looks flaky, no commit is named and
    no culprit is recorded; the prefix that passed every check lands, the rest waits for the next run."""
    server = mail_server()
    extra = "notify:\n  email:\n    host: 127.0.0.1\n    port: {}\n    sender: ci@example.com\n".format(server.port)
    project = culprit_project(make_project, tmp_path, extra=extra, checks=(FAILS_ONCE,))
    shas = batch(project, count=2)

    proc = run(project, ONCE=str(tmp_path / "once"))

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "landed 1 of 2 new commits; 'echo run" in proc.stdout + proc.stderr
    assert "it looks flaky; no commit is blamed" in proc.stdout + proc.stderr
    assert project.ref("master") == shas[0]
    assert project.ref("refs/continuity/culprit") is None
    [mail] = server.messages
    assert "breaks" not in mail.body


def test_a_deploy_that_fails_after_the_good_prefix_landed_still_names_the_culprit(make_project, tmp_path):
    project = culprit_project(make_project, tmp_path)
    shas = batch(project, bad={4})

    proc = run(project, DEPLOY_FAIL="1")

    assert proc.returncode == 1, proc.stdout + proc.stderr
    said = proc.stdout + proc.stderr
    assert "landed 3 of 6 new commits; {} 'change 4' by Dev 4 breaks".format(shas[3][:7]) in said
    assert "then: deploy to staging failed" in said and "`fab continuity.deploy staging`" in said
    assert project.ref("master") == shas[2]
    assert project.ref("refs/continuity/culprit") is not None
