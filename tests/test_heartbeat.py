"""A console that shows life: heartbeat lines while a check, a build step or a deploy runs long.

The runs through ``fab`` wait at a gate the test opens once it has seen the
heartbeat it expects, so no test depends on how fast the machine is; the
heartbeat is set to its minimum, one second.
"""

import re
import sys
import threading

import pytest

import continuity.config as cfg
from conftest import Output, Project
from continuity._proc import Heartbeat, Tail, heartbeat, run_shell
from continuity.errors import ConfigError


def gated(tmp_path, before="", name="gate"):
    """A shell command that runs ``before``, then waits until the test creates the gate (2 minutes at most)."""
    gate = tmp_path / name
    command = "{}i=0; while [ ! -f {} ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done".format(before, gate)
    return command, gate


def run_until_heartbeat(project, ws, gate, *args, text="still running after", env=None):
    """Run ``fab ARGS``, wait for a line with ``text``, open the gate; return (exit code, whole stdout)."""
    proc = project.popen(ws, *args, env=env)
    out = Output(proc.stdout)
    try:
        out.wait_for(text)
    finally:
        gate.touch()
    proc.wait(timeout=120)
    return proc.returncode, out.text(), proc.stderr.read()


def heartbeats(output):
    return [line for line in output.splitlines() if "still running after" in line]


def test_a_long_check_shows_a_heartbeat_with_the_time_and_its_last_line(make_project, tmp_path):
    check, gate = gated(tmp_path, before="echo 'collected 3 items'; ")
    project = make_project(config=Project.config(checks=[check], extra="heartbeat: 1\n"))
    project.push_to("development", "feature", feature="x\n")

    code, out, err = run_until_heartbeat(project, project.workspace(), gate, "continuity.pipeline")

    assert code == 0, err
    beat = heartbeats(out)[0]
    assert re.search(r"^continuity \| \.\.\. check '.*' still running after \d+s; last output: collected 3 items$", beat), out
    assert "collected 3 items\n" in out  # the check's own line is whole
    # The summary still has one line per stage with its duration.
    assert re.search(r"continuity \| check +ok +\d+\.\d\ds$", out, re.M), out


def test_a_check_that_printed_nothing_says_so(make_project, tmp_path):
    check, gate = gated(tmp_path)
    project = make_project(config=Project.config(checks=[check], extra="heartbeat: 1\n"))
    project.push_to("development", "feature", feature="x\n")

    code, out, err = run_until_heartbeat(project, project.workspace(), gate, "continuity.pipeline")

    assert code == 0, err
    assert re.search(r"still running after \d+s; no output yet$", heartbeats(out)[0]), out


def test_a_long_build_step_shows_a_heartbeat(make_project, tmp_path):
    step, gate = gated(tmp_path, before="echo 'compiling assets'; ")
    project = make_project(config=Project.config(extra="build:\n  - name: assets\n    command: {!r}\n".format(step)))
    project.push_to("development", "feature", feature="x\n")

    # Set through the environment, as Jenkins may: FABRIC_CONTINUITY_HEARTBEAT.
    code, out, err = run_until_heartbeat(project, project.workspace(), gate, "continuity.pipeline",
                                         env={"FABRIC_CONTINUITY_HEARTBEAT": "1"})

    assert code == 0, err
    assert re.search(r"\.\.\. build step 'assets' still running after \d+s; last output: compiling assets$",
                     heartbeats(out)[0]), out


DEPLOY_FABFILE = '''
import os
import time

from fabric import task
from invoke import Collection

import continuity


@task
def deploy(c, environment):
    c.run("echo copying the release to " + environment, in_stream=False)
    deadline = time.monotonic() + 120
    while not os.path.exists(os.environ["DEPLOY_GATE"]) and time.monotonic() < deadline:
        time.sleep(0.05)


ns = Collection(deploy, continuity)
'''


def test_a_long_deploy_shows_a_heartbeat_with_the_last_line_its_task_printed(make_project, tmp_path):
    project = make_project(fabfile=DEPLOY_FABFILE, config=Project.config(extra="heartbeat: 1\n"))
    project.push_to("development", "feature", feature="x\n")
    gate = tmp_path / "deploy-gate"

    code, out, err = run_until_heartbeat(project, project.workspace(), gate, "continuity.pipeline",
                                         env={"DEPLOY_GATE": str(gate)})

    assert code == 0, err
    assert re.search(r"^continuity \| \.\.\. deploy to staging still running after \d+s; "
                     r"last output: copying the release to staging$", heartbeats(out)[0], re.M), out
    assert "copying the release to staging\n" in out


def test_a_manual_deploy_shows_the_heartbeat_too(make_project, tmp_path):
    project = make_project(fabfile=DEPLOY_FABFILE, config=Project.config(extra="heartbeat: 1\n"))
    gate = tmp_path / "deploy-gate"

    code, out, err = run_until_heartbeat(project, project.workspace(), gate, "continuity.deploy", "staging",
                                         env={"DEPLOY_GATE": str(gate)})

    assert code == 0, err
    assert "... deploy to staging still running after" in out


def test_heartbeat_0_turns_the_lines_off(make_project):
    project = make_project(config=Project.config(checks=["echo working; sleep 2.5"], extra="heartbeat: 0\n"))
    project.push_to("development", "feature", feature="x\n")

    proc = project.fab(project.workspace(), "continuity.pipeline")

    assert proc.returncode == 0, proc.stderr
    assert "working" in proc.stdout and not heartbeats(proc.stdout)


# -- the setting ----------------------------------------------------------------------


def test_the_heartbeat_setting_defaults_to_30_seconds_and_reaches_every_check_and_step():
    assert cfg.parse({}).heartbeat == 30
    settings = cfg.parse({"heartbeat": "2.5", "checks": ["true"], "build": [{"name": "a", "command": "true"}]})
    assert settings.heartbeat == settings.checks[0].heartbeat == settings.build[0].heartbeat == 2.5
    assert cfg.parse({"heartbeat": 0}).heartbeat == cfg.parse({"heartbeat": "0"}).heartbeat == 0


@pytest.mark.parametrize("value", [-1, "soon", "", 0.5, True, [30], "nan", 8 * 24 * 3600])
def test_a_wrong_heartbeat_is_one_line_naming_the_setting(value):
    with pytest.raises(ConfigError, match=r"^continuity.heartbeat must be a number of seconds from 1 to a week, "
                                          r"or 0 for no heartbeat lines, got "):
        cfg.parse({"heartbeat": value})


# -- in process: lines are never cut, no thread is left ---------------------------------


class Console:
    """One stream for the command's output and the heartbeat lines, as a terminal shows them."""

    def __init__(self):
        self.text = ""
        self.beats = []

    def write(self, text):
        self.text += text

    def flush(self):
        pass

    def say(self, line):
        self.beats.append(line)
        self.text += "<" + line + ">\n"


def test_a_heartbeat_waits_for_the_line_the_command_is_still_writing(tmp_path):
    console = Console()
    # Dots on one line for about three seconds, each a fifth of a second after the last; then wait.
    dots = "printf 'running'; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do printf .; sleep 0.2; done; echo ok; "
    command, gate = gated(tmp_path, before=dots)

    result = run_shell(command, str(tmp_path), out=console, beat=Heartbeat(1, "check 'dots'", _opener(console, gate)))

    assert result.ok
    assert "running...............ok\n" in console.text  # never cut by a heartbeat
    assert console.beats and all(line.endswith("last output: running...............ok") for line in console.beats)


def test_a_line_left_unfinished_and_silent_gets_the_heartbeat_on_a_line_of_its_own(tmp_path):
    console = Console()
    command, gate = gated(tmp_path, before="printf 'waiting for the database'; ")
    done = threading.Event()
    thread = threading.Thread(target=lambda: (run_shell(command, str(tmp_path), out=console,
                                                        beat=Heartbeat(1, "check 'db'", _opener(console, gate))),
                                              done.set()))

    thread.start()
    thread.join(120)

    assert done.is_set()
    assert console.text.startswith("waiting for the database\n<... check 'db' still running after ")
    assert console.beats[0].endswith("; last output: waiting for the database")


def _opener(console, gate):
    def say(line):
        console.say(line)
        gate.touch()
    return say


def test_the_heartbeat_shows_the_last_line_redacted_on_one_line_and_cut(tmp_path):
    tail = Tail()
    tail.feed("first\nhttps://ci:s3cret@git.example.com/repo \x1b[31mred\x1b[0m\n\n  \n")
    assert tail.last_line() == "https://***@git.example.com/repo [31mred [0m"
    tail.feed("progress 10%\rprogress 90%\r")
    assert tail.last_line() == "progress 90%"
    tail.feed("x" * 500)
    assert tail.last_line() == "x" * 117 + "..."
    assert Tail().last_line() == ""


def test_a_timeout_still_kills_a_command_that_has_heartbeats(tmp_path, monkeypatch):
    monkeypatch.setenv("CONTINUITY_KILL_GRACE", "0.5")
    console = Console()
    command, gate = gated(tmp_path, before="echo started; ")

    result = run_shell(command, str(tmp_path), timeout=2.5, out=console, beat=Heartbeat(1, "check 'hangs'", console.say))

    assert result.timed_out and result.exit_code is None
    assert console.beats and console.beats[0].endswith("last output: started")


def test_the_deploy_heartbeat_ends_with_the_task_and_gives_stdout_back():
    said = []
    before = sys.stdout, threading.active_count()
    started = threading.Event()

    beat = Heartbeat(1, "deploy to qa", lambda line: (said.append(line), started.set()))
    with pytest.raises(RuntimeError), heartbeat(beat):
        print("uploading", flush=True)
        assert started.wait(60)
        raise RuntimeError("the deploy broke")

    assert (sys.stdout, threading.active_count()) == before
    assert said[0].startswith("... deploy to qa still running after ") and said[0].endswith("; last output: uploading")


def test_heartbeat_0_starts_no_thread_and_leaves_stdout_alone():
    before = sys.stdout, threading.active_count()
    with heartbeat(Heartbeat(0, "deploy to qa")):
        assert (sys.stdout, threading.active_count()) == before
