#!/usr/bin/env python3
"""How many times does each continuity task connect to the remote?

The baseline for "fewer trips to the remote": on a CI machine far from the git
server every connection costs a round trip (often several: ssh handshake, ref
advertisement, negotiation), so the count matters more than local git work.

It builds a throwaway bare origin, a developer clone and two Jenkins-style
workspaces (detached HEAD, no local branches: one for continuity, one for the
hand-written floor), with a fabfile whose ``deploy`` task does nothing and
``checks: ["true"]``, ``auto_deploy: [staging]``. Then, per scenario:

a. no-op pipeline (development already in master)
b. fast-forward pipeline, deploying staging
c. ``fab continuity.status``
d. ``fab continuity.history staging``
e. ``fab continuity.locks``
f. ``fab continuity.promote --yes``
g. ``fab continuity.deploy staging --revision <master's previous commit>``
h. ``fab continuity.rollback staging`` (after the deploys of b and g)

How connections are counted: in both workspaces ``remote.origin.uploadpack``
and ``remote.origin.receivepack`` name small wrapper scripts that append
"upload-pack" / "receive-pack" to a log, sleep ``--delay`` seconds if asked,
and exec the real ``git upload-pack`` / ``git receive-pack``. With a local-path
remote git honours both settings for ``ls-remote``, ``fetch`` and ``push``
(checked by hand on git 2.39: ls-remote and fetch start upload-pack once each;
a push starts receive-pack only). Every run is also traced with
``GIT_TRACE2_EVENT``: the upload-pack / receive-pack processes it shows must
equal the wrapper's count (the script fails otherwise, so a connection that
bypassed the wrapper cannot go unnoticed), and its "start" events give the git
commands continuity ran (top level) and all git processes (with children).

The floor is a hand-written Jenkins shell step doing the same git work,
run through the same wrappers in its own workspace, its connections counted the
same way: a no-op is one fetch; a fast-forward with deploy is one fetch and one
push (master and a deploy record in the same push); status and locks are one
``ls-remote``; history is one fetch; promote, deploy and rollback are one fetch
and one push (the branch move and/or the record together).

Before each run origin's refs are put back where the scenario started (outside
the timed part); continuity runs last, so the next scenario starts from what it
left. Timings are wall clock, never asserted: the script exits 0 unless a
command fails. ``--delay 0.15`` makes each connection 150 ms slower, roughly a
far git server, and shows what the extra connections cost. Standard library
only; nothing leaves this machine.
"""

import argparse
import json
import os
import statistics
import sys
import time

from _common import BenchFailed, bench_env, find_fab, run, scratch

GITCONFIG = """\
[user]
	name = Bench
	email = bench@example.invalid
[init]
	defaultBranch = master
[advice]
	detachedHead = false
[gc]
	auto = 0
[maintenance]
	auto = false
"""

FABFILE = '''\
from fabric import task
from invoke import Collection

import continuity


@task
def deploy(c, environment, revision=None):
    """Deploy nothing: the benchmark counts continuity's git work."""


ns = Collection(deploy, continuity)
'''

FABRIC_YAML = """\
continuity:
  checks:
    - "true"
  auto_deploy:
    - staging
"""

WRAPPER = """\
#!/bin/sh
echo {service} >> '{log}'
{sleep}exec git {service} "$@"
"""

# The floors: what a hand-written shell step needs for the same git work.
FLOOR_NOOP = """\
set -e
git fetch --quiet origin development master
git merge-base --is-ancestor refs/remotes/origin/development refs/remotes/origin/master
"""

FLOOR_FAST_FORWARD = """\
set -e
git fetch --quiet origin development master
sha=$(git rev-parse refs/remotes/origin/development)
git checkout --quiet --detach "$sha"
true
git push --quiet --atomic origin "$sha:refs/heads/master" "$sha:refs/floor/deployed/staging"
"""

FLOOR_LS_REMOTE = """\
set -e
git ls-remote origin > /dev/null
"""

FLOOR_HISTORY = """\
set -e
git fetch --quiet origin '+refs/continuity/*:refs/floor/continuity/*'
"""

FLOOR_PROMOTE = """\
set -e
git fetch --quiet origin master production
sha=$(git rev-parse refs/remotes/origin/master)
git merge-base --is-ancestor refs/remotes/origin/production "$sha"
git push --quiet --atomic origin "$sha:refs/heads/production" "$sha:refs/floor/deployed/production"
"""

FLOOR_DEPLOY = """\
set -e
git fetch --quiet origin master '+refs/continuity/*:refs/floor/continuity/*'
sha=$(git rev-parse refs/remotes/origin/master~1)
git push --quiet origin "$sha:refs/floor/deployed/staging"
"""


def write(path, text, mode=None):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    if mode is not None:
        os.chmod(path, mode)


def jenkins_workspace(path, origin, env, wrappers):
    """A checkout made the way the Jenkins git plugin makes one, connecting through the wrappers."""
    os.makedirs(path)
    run(["git", "init", "--quiet"], path, env)
    run(["git", "config", "remote.origin.url", origin], path, env)
    run(["git", "config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"], path, env)
    run(["git", "fetch", "--quiet", "--tags", "--force", "origin", "+refs/heads/*:refs/remotes/origin/*"], path, env)
    run(["git", "checkout", "--quiet", "-f", "refs/remotes/origin/development^{commit}"], path, env)
    run(["git", "config", "remote.origin.uploadpack", wrappers["upload-pack"]], path, env)
    run(["git", "config", "remote.origin.receivepack", wrappers["receive-pack"]], path, env)


def setup(tmp, env, delay):
    """origin.git, a developer clone, two workspaces and the wrappers; return their paths."""
    os.makedirs(os.path.join(tmp, "home"))
    write(os.path.join(tmp, "gitconfig"), GITCONFIG)
    paths = {name: os.path.join(tmp, name) for name in ("origin.git", "dev", "continuity-ws", "floor-ws")}
    paths["log"] = os.path.join(tmp, "connections.log")
    paths["trace"] = os.path.join(tmp, "trace2.json")
    wrappers = {}
    for service in ("upload-pack", "receive-pack"):
        wrappers[service] = os.path.join(tmp, "wrap-" + service)
        sleep = "sleep {}\n".format(delay) if delay else ""
        write(wrappers[service], WRAPPER.format(service=service, log=paths["log"], sleep=sleep), 0o755)
    origin, dev = paths["origin.git"], paths["dev"]
    run(["git", "init", "--quiet", "--bare", origin], tmp, env)
    run(["git", "clone", "--quiet", origin, dev], tmp, env)
    write(os.path.join(dev, "fabfile.py"), FABFILE)
    write(os.path.join(dev, "fabric.yaml"), FABRIC_YAML)
    write(os.path.join(dev, "app.txt"), "version 1\n")
    run(["git", "add", "--all"], dev, env)
    run(["git", "commit", "--quiet", "-m", "Initial commit"], dev, env)
    run(["git", "push", "--quiet", "origin"] + ["HEAD:refs/heads/" + b for b in ("master", "development", "production")],
        dev, env)
    jenkins_workspace(paths["continuity-ws"], origin, env, wrappers)
    jenkins_workspace(paths["floor-ws"], origin, env, wrappers)
    return paths


def origin_refs(paths, env):
    out = run(["git", "--git-dir", paths["origin.git"], "for-each-ref", "--format=%(objectname) %(refname)"],
              paths["dev"], env)
    return dict(reversed(line.split(" ", 1)) for line in out.splitlines())


def restore_origin(paths, env, snapshot):
    """Put origin's refs back as they were in ``snapshot`` (untimed, no connection)."""
    now = origin_refs(paths, env)
    lines = ["delete {}\n".format(ref) for ref in now if ref not in snapshot]
    lines += ["update {} {}\n".format(ref, sha) for ref, sha in snapshot.items() if now.get(ref) != sha]
    if lines:
        run(["git", "--git-dir", paths["origin.git"], "update-ref", "--stdin"], paths["dev"], env,
            input="".join(lines).encode())


def new_development_commit(paths, env, number):
    dev = paths["dev"]
    with open(os.path.join(dev, "app.txt"), "a", encoding="utf-8") as f:
        f.write("change {}\n".format(number))
    run(["git", "commit", "--quiet", "--all", "-m", "Change {}".format(number)], dev, env)
    run(["git", "push", "--quiet", "origin", "HEAD:refs/heads/development"], dev, env)
    return run(["git", "rev-parse", "HEAD"], dev, env)


# -- one run -------------------------------------------------------------------


class Run:
    """What one command did: wall time, connections, git processes."""

    def __init__(self, seconds, connections, commands=None, processes=None, remote_commands=()):
        self.seconds = seconds
        self.remote_commands = remote_commands  # argv of the top-level ls-remote/fetch/push (trace2 only)
        self.connections = connections  # {"upload-pack": n, "receive-pack": n}
        self.commands = commands  # git commands started by the command itself (trace2 only)
        self.processes = processes  # every git process, children included (trace2 only)


def read_trace(path):
    """(top-level git commands, all git processes, {service: processes}, [remote argv]) from GIT_TRACE2_EVENT."""
    commands = processes = 0
    remote = []
    services = {"upload-pack": 0, "receive-pack": 0}
    if not os.path.exists(path):
        return commands, processes, services, remote
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") != "start":
                continue
            processes += 1
            argv = event.get("argv", [])
            if "/" not in event.get("sid", ""):
                commands += 1
                if len(argv) > 1 and argv[1] in ("ls-remote", "fetch", "push"):
                    remote.append(argv[1:])
            if len(argv) > 1 and argv[1] in services:
                services[argv[1]] += 1
    return commands, processes, services, remote


def measure(args, cwd, paths, env, trace):
    """Run ``args`` once; count the wrapper's log lines (and the trace2 events if ``trace``)."""
    for name in ("log", "trace"):
        if os.path.exists(paths[name]):
            os.remove(paths[name])
    if trace:
        env = dict(env, GIT_TRACE2_EVENT=paths["trace"])
    start = time.perf_counter()
    run(args, cwd, env)
    seconds = time.perf_counter() - start
    connections = {"upload-pack": 0, "receive-pack": 0}
    if os.path.exists(paths["log"]):
        with open(paths["log"], encoding="utf-8") as f:
            for line in f:
                connections[line.strip()] += 1
    if not trace:
        return Run(seconds, connections)
    commands, processes, services, remote = read_trace(paths["trace"])
    if services != connections:
        raise BenchFailed("`{}`: the wrapper counted {} but GIT_TRACE2 saw {}: a connection bypassed the "
                          "wrapper".format(" ".join(args), connections, services))
    return Run(seconds, connections, commands, processes, remote)


# -- the scenarios -------------------------------------------------------------


class Scenario:
    def __init__(self, label, args, floor, prepare=None):
        self.label = label
        self.args = args  # after `fab`
        self.floor = floor  # a shell script
        self.prepare = prepare  # called once before the runs; may return args to use instead


def scenarios(paths, env):
    ws = paths["continuity-ws"]
    state = {}

    def new_commit():
        state["tip"] = new_development_commit(paths, env, 1)

    def check_fast_forward(result):
        if origin_refs(paths, env)["refs/heads/master"] != state["tip"]:
            raise BenchFailed("the fast-forward pipeline did not move origin's master")

    def older_master():
        older = run(["git", "--git-dir", paths["origin.git"], "rev-parse", "master~1"], ws, env)
        return ["continuity.deploy", "staging", "--revision", older, "--force"]  # no check saw it: untested

    return [
        Scenario("a no-op pipeline", ["continuity.pipeline"], FLOOR_NOOP),
        Scenario("b ff pipeline+deploy", ["continuity.pipeline"], FLOOR_FAST_FORWARD, prepare=new_commit),
        Scenario("c status", ["continuity.status"], FLOOR_LS_REMOTE),
        Scenario("d history staging", ["continuity.history", "staging"], FLOOR_HISTORY),
        Scenario("e locks", ["continuity.locks"], FLOOR_LS_REMOTE),
        Scenario("f promote --yes", ["continuity.promote", "--yes"], FLOOR_PROMOTE),
        Scenario("g deploy --revision", None, FLOOR_DEPLOY, prepare=older_master),
        Scenario("h rollback staging", ["continuity.rollback", "staging"], FLOOR_DEPLOY),  # after b and g: back to the tip
    ], check_fast_forward


def run_scenario(scenario, paths, env, fab, repeat):
    """{"continuity": [Run], "floor": [Run]}; the first run of each is the traced one."""
    args = scenario.args
    if scenario.prepare:
        args = scenario.prepare() or args
    floor_script = os.path.join(os.path.dirname(paths["log"]), "floor.sh")
    write(floor_script, scenario.floor)
    snapshot = origin_refs(paths, env)
    runs = {"floor": [], "continuity": []}
    for rep in range(repeat + 1):  # run 0 is traced: counts, and a warm-up for the timings
        for side, command, cwd in (("floor", ["sh", floor_script], paths["floor-ws"]),
                                   ("continuity", [fab] + args, paths["continuity-ws"])):
            restore_origin(paths, env, snapshot)
            runs[side].append(measure(command, cwd, paths, env, trace=rep == 0))
    return runs


# -- the report ----------------------------------------------------------------


def total(connections):
    return connections["upload-pack"] + connections["receive-pack"]


def counts(runs):
    """The traced run's connections; '?' marks a count that changed between runs."""
    first = runs[0].connections
    steady = all(r.connections == first for r in runs)
    mark = "" if steady else "?"
    return "{}{} {}{} {}{}".format(first["upload-pack"], mark, first["receive-pack"], mark, total(first), mark)


def ms(values):
    return "{:7.0f}".format(statistics.median(values) * 1000)


def report(results, delay, repeat):
    print("\nconnections to origin (up = upload-pack: ls-remote/fetch; rp = receive-pack: push)")
    head = "{:<22} {:>11} {:>11} {:>6} {:>5} {:>6}   {:>8} {:>8} {:>8} {:>7}"
    print(head.format("", "continuity", "floor", "extra", "git", "git", "contin.", "floor", "diff", "extra x"))
    print(head.format("scenario", "up rp all", "up rp all", "conn.", "cmds", "procs", "ms", "ms", "ms", "delay"))
    for label, runs in results:
        ours, floor = runs["continuity"], runs["floor"]
        extra = total(ours[0].connections) - total(floor[0].connections)
        timed_ours = [r.seconds for r in ours[1:]] or [ours[0].seconds]
        timed_floor = [r.seconds for r in floor[1:]] or [floor[0].seconds]
        diff = statistics.median(timed_ours) - statistics.median(timed_floor)
        waits = "{:7.0f}".format(extra * delay * 1000) if delay else "{:>7}".format("-")
        print(head.format(label, counts(ours), counts(floor), "{:+d}".format(extra), ours[0].commands,
                          ours[0].processes, ms(timed_ours), ms(timed_floor), "{:8.0f}".format(diff * 1000), waits))
    print("\n(git cmds: git commands continuity started; git procs: all git processes, children and\n"
          " upload-pack/receive-pack included, from GIT_TRACE2_EVENT on the first, untimed run.\n"
          " Times: median of {} run(s) after it, each connection delayed {} s{}.\n"
          " A '?' marks a count that differed between runs.)".format(
              repeat, delay, ";\n extra x delay: the part of diff the extra connections' delay explains; the rest is\n mostly Python and Fabric starting, the diff at --delay 0" if delay else ""))


def show_remote_commands(results):
    print("\nthe git commands continuity ran that connect to origin (first run of each scenario)")
    for label, runs in results:
        print("{}:".format(label))
        for argv in runs["continuity"][0].remote_commands:
            print("    git " + " ".join(argv))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=float(os.environ.get("ROUNDTRIPS_DELAY") or 0),
                        help="seconds each connection sleeps before git serves it, e.g. 0.15 for a far "
                             "server (default: $ROUNDTRIPS_DELAY or 0)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side and scenario (default 3)")
    parser.add_argument("--verbose", action="store_true", help="list the ls-remote/fetch/push commands of each task")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    args = parser.parse_args(argv)
    if args.repeat < 0 or args.delay < 0:
        parser.error("--repeat and --delay must not be negative")

    try:
        with scratch("continuity-roundtrips-", keep=args.keep) as tmp:
            env = bench_env(tmp)
            fab = find_fab()
            paths = setup(tmp, env, args.delay)
            print("python {}  fab {}  {}  delay {} s  repeat {}".format(
                sys.version.split()[0], fab, run(["git", "--version"], tmp, env), args.delay, args.repeat))
            plan, check_fast_forward = scenarios(paths, env)
            results = []
            start = time.perf_counter()
            for scenario in plan:
                runs = run_scenario(scenario, paths, env, fab, args.repeat)
                if scenario.label.startswith("b "):
                    check_fast_forward(runs)
                results.append((scenario.label, runs))
            report(results, args.delay, args.repeat)
            if args.verbose:
                show_remote_commands(results)
            print("({:.1f} s)".format(time.perf_counter() - start))
    except BenchFailed as exc:
        print("benchmark FAILED: {}".format(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
