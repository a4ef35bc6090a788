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
i. ``fab continuity.hotfix.finish quick`` (``hotfix.deploy`` on)

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
command fails.

It prints ONE table: per task, the connections (continuity vs the floor) and,
side by side for each delay (by default a local origin, 0 s, and a far one,
0.15 s: every connection sleeps that long before git serves it), the time
against the floor, which is bare ``fab --version`` start-up plus the raw git
step (what any fab task pays, plus the git work itself). ``--delay S`` (given
once or more) chooses the delays. Standard library only; nothing leaves this
machine.
"""

import argparse
import json
import os
import sys
import time

from _common import FABFILE, FLOOR_NOOP, GITCONFIG, BenchFailed, bench_env, find_fab, run, scratch

FABRIC_YAML = """\
continuity:
  checks:
    - "true"
  auto_deploy:
    - staging
  hotfix:
    deploy: true
"""

WRAPPER = """\
#!/bin/sh
echo {service} >> '{log}'
{sleep}exec git {service} "$@"
"""

# The floors: what a hand-written shell step needs for the same git work.
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

FLOOR_HOTFIX = """\
set -e
git fetch --quiet origin production development hotfix/quick '+refs/continuity/*:refs/floor/continuity/*'
sha=$(git rev-parse refs/remotes/origin/hotfix/quick)
git checkout --quiet --detach "$sha"
true
git push --quiet --atomic origin "$sha:refs/heads/production" :refs/heads/hotfix/quick \\
    "$sha:refs/floor/deployed/production"
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

    def hotfix_branch():
        dev = paths["dev"]
        run(["git", "fetch", "--quiet", "origin"], dev, env)
        run(["git", "checkout", "--quiet", "--detach", "origin/production"], dev, env)
        with open(os.path.join(dev, "hotfix.txt"), "w", encoding="utf-8") as f:
            f.write("quick fix\n")
        run(["git", "add", "hotfix.txt"], dev, env)
        run(["git", "commit", "--quiet", "-m", "Quick fix"], dev, env)
        run(["git", "push", "--quiet", "origin", "HEAD:refs/heads/hotfix/quick"], dev, env)

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
        Scenario("i hotfix.finish", ["continuity.hotfix.finish", "quick"], FLOOR_HOTFIX, prepare=hotfix_branch),
    ], check_fast_forward


def run_scenario(scenario, paths, env, fab, repeat):
    """{"continuity": [Run], "floor": [Run]}; the first run of each is the traced one."""
    args = scenario.args
    if scenario.prepare:
        args = scenario.prepare() or args
    floor_script = os.path.join(os.path.dirname(paths["log"]), "floor.sh")
    write(floor_script, scenario.floor)
    snapshot = origin_refs(paths, env)
    runs = {"floor": [], "continuity": [], "startup": []}
    for rep in range(repeat + 1):  # run 0 is traced: counts, and a warm-up for the timings
        for side, command, cwd in (("floor", ["sh", floor_script], paths["floor-ws"]),
                                   ("continuity", [fab] + args, paths["continuity-ws"])):
            restore_origin(paths, env, snapshot)
            runs[side].append(measure(command, cwd, paths, env, trace=rep == 0))
        # bare fab start-up, interleaved with the runs it is compared with: the load of a shared machine drifts
        runs["startup"].append(measure([fab, "--version"], paths["continuity-ws"], paths, env, trace=False))
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


def fastest(runs):
    """The fastest of the timed runs (the traced run 0 is a warm-up, used only when there is nothing else).

    The minimum, not the median: on a shared machine the other load only ever adds time.
    """
    return min([r.seconds for r in runs[1:]] or [runs[0].seconds])


def report(phases, repeat):
    """ONE table: per task, connections (continuity vs raw git) and the time ratio at each delay.

    ``phases`` is [(delay, [(label, runs)])]. The floor of a
    task is bare `fab --version` start-up plus the raw git shell step doing the
    same git work; the ratio is continuity's median time over it.
    """
    first = phases[0][1]
    head = "{:<22} {:>11} {:>11} {:>5} {:>6}" + "".join("   {:>7} {:>7} {:>6}" for _ in phases)
    print("\nconnections to origin (up: ls-remote/fetch, rp: push) and time against the floor "
          "(bare `fab --version` + the raw git step)")
    print(head.format("", "continuity", "raw git", "git", "git",
                      *[text for delay, _ in phases for text in ("", "delay", "{:g} ms".format(delay * 1000))]))
    print(head.format("task", "up rp all", "up rp all", "cmds", "procs",
                      *[text for _ in phases for text in ("contin.", "floor", "ratio")]))
    for index, (label, runs) in enumerate(first):
        ours, floor = runs["continuity"], runs["floor"]
        cells = []
        for _, results in phases:
            timed = results[index][1]
            mine, bare = fastest(timed["continuity"]), fastest(timed["startup"]) + fastest(timed["floor"])
            cells += ["{:5.0f}ms".format(mine * 1000), "{:5.0f}ms".format(bare * 1000), "{:5.2f}x".format(mine / bare)]
        print(head.format(label, counts(ours), counts(floor), ours[0].commands, ours[0].processes, *cells))
    print("\n(floor: bare `fab --version`, run between the others ({}), plus the raw git step; times: the\n"
          " fastest of {} run(s) after an untimed traced one; git cmds: the git commands continuity started;\n"
          " git procs: all git processes, children and upload-pack/receive-pack included (GIT_TRACE2_EVENT,\n"
          " delay {:g} s). A '?' marks a count that differed between runs.)".format(
              ", ".join("fastest {:.0f} ms at delay {:g} s".format(
                  min(fastest(runs["startup"]) for _, runs in results) * 1000, delay) for delay, results in phases),
              repeat, phases[0][0]))


def show_remote_commands(results):
    print("\nthe git commands continuity ran that connect to origin (first run of each scenario)")
    for label, runs in results:
        print("{}:".format(label))
        for argv in runs["continuity"][0].remote_commands:
            print("    git " + " ".join(argv))


def measure_phase(delay, fab, repeat, keep):
    """Every scenario on a fresh origin whose connections each sleep ``delay`` s: [(label, runs)]."""
    with scratch("continuity-roundtrips-", keep=keep) as tmp:
        env = bench_env(tmp)
        paths = setup(tmp, env, delay)
        plan, check_fast_forward = scenarios(paths, env)
        results = []
        for scenario in plan:
            runs = run_scenario(scenario, paths, env, fab, repeat)
            if scenario.label.startswith("b "):
                check_fast_forward(runs)
            results.append((scenario.label, runs))
        return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, action="append",
                        help="seconds each connection sleeps before git serves it, e.g. 0.15 for a far server; "
                             "give it more than once for several columns (default: 0 and 0.15, or "
                             "$ROUNDTRIPS_DELAY alone)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per side and scenario (default 5)")
    parser.add_argument("--verbose", action="store_true", help="list the ls-remote/fetch/push commands of each task")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories and print their paths")
    args = parser.parse_args(argv)
    delays = args.delay or ([float(os.environ["ROUNDTRIPS_DELAY"])] if os.environ.get("ROUNDTRIPS_DELAY") else [0.0, 0.15])
    if args.repeat < 0 or any(delay < 0 for delay in delays):
        parser.error("--repeat and --delay must not be negative")

    try:
        fab = find_fab()
        start = time.perf_counter()
        phases = []
        for delay in delays:
            phases.append((delay, measure_phase(delay, fab, args.repeat, args.keep)))
        with scratch("continuity-roundtrips-version-") as tmp:
            git_version = run(["git", "--version"], tmp, bench_env(tmp))
        print("python {}  fab {}  {}  repeat {}  ({} cpu)".format(
            sys.version.split()[0], fab, git_version, args.repeat, os.cpu_count()))
        report(phases, args.repeat)
        if args.verbose:
            show_remote_commands(phases[0][1])
        print("({:.1f} s)".format(time.perf_counter() - start))
    except BenchFailed as exc:
        print("benchmark FAILED: {}".format(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
