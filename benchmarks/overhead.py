#!/usr/bin/env python3
"""How much does continuity cost over the git commands doing the same work?

``make bench`` runs this script. It builds a throwaway origin (a history of
``--commits`` commits over ``--files`` files, with master, development and
production) and two Jenkins-style workspaces, then times, side by side:

A. no-op run: development is already in master.
   ``fab continuity.pipeline``  vs  ``git fetch`` + ``git merge-base --is-ancestor``
B. fast-forward run: development has one new commit.
   ``fab continuity.pipeline``  vs  ``git fetch``, ``git checkout --detach``,
   the same check (``true``), ``git push origin SHA:refs/heads/master``

Each repetition makes a new commit on development (scenario B) and puts
origin's master back before each side runs, outside the timed part; the two
sides alternate so that neither always runs on a warm cache. It also times the
fixed costs (starting Python, importing fabric and continuity, ``fab --list``)
so the reader can tell Fabric's startup from continuity's own work.

C. start-up: ``fab --list`` in a project whose fabfile adds continuity's
tasks, against ``fab --list`` with a one-task fabfile (the same Fabric), wall
clock and CPU time (user + system of the child, steadier on a busy machine),
and what ``import continuity`` adds on top of ``import fabric``. The goal is
a ratio of at most 1.1. ``--startup-only`` measures only this, in seconds.

Timings are printed, never asserted: the script exits 0 unless a command
fails. Standard library only; nothing leaves this machine.
"""

import argparse
import os
import resource
import statistics
import sys
import time

from _common import FABFILE, FLOOR_NOOP, GITCONFIG, BenchFailed, bench_env, find_fab, run, scratch

BARE_FABFILE = '''\
from fabric import task


@task
def deploy(c, environment):
    """Deploy nothing: the benchmark measures Fabric's own start-up."""
'''

FABRIC_YAML = """\
continuity:
  checks:
    - "true"
  auto_deploy: []
"""

RAW_FAST_FORWARD = """\
set -e
git fetch --quiet origin development master
sha=$(git rev-parse refs/remotes/origin/development)
git checkout --quiet --detach "$sha"
true
git push --quiet origin "$sha:refs/heads/master"
"""


PY_START = "python -c pass"
IMPORT_FABRIC = "python -c 'import fabric'"
IMPORT_CONTINUITY = "python -c 'import continuity'"
IMPORT_BOTH = "python -c 'import fabric, continuity'"
FAB_VERSION = "fab --version"
FAB_LIST = "fab --list (loads the fabfile)"


def timed(args, cwd, env):
    """Seconds ``args`` took, wall clock; raise `BenchFailed` if it failed."""
    return timed_cpu(args, cwd, env)[0]


def timed_cpu(args, cwd, env):
    """(wall clock, CPU) seconds ``args`` took; CPU is the child's user + system time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run(args, cwd, env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


# -- setup ---------------------------------------------------------------------


def _data(payload):
    raw = payload.encode("utf-8")
    return b"data %d\n%s\n" % (len(raw), raw)


def _module(index, version):
    lines = ['"""Module {} of the benchmark project, version {}."""'.format(index, version), ""]
    for n in range(20):
        lines.append("def function_{0}(x):\n    return x * {1} + {0}\n".format(n, version + index))
    return "\n".join(lines) + "\n"


def _path(index):
    return "src/pkg{:02d}/mod{:04d}.py".format(index // 50, index)


def history_stream(commits, files):
    """A ``git fast-import`` stream: ``commits`` commits touching ``files`` files."""
    out = []
    when = 1700000000
    for number in range(commits):
        message = "Initial import" if number == 0 else "Change {}".format(number)
        out.append(b"commit refs/heads/master\n")
        out.append("committer Bench <bench@example.invalid> {} +0000\n".format(when + number * 60).encode())
        out.append(_data(message))
        if number == 0:
            changes = [("fabfile.py", FABFILE), ("fabric.yaml", FABRIC_YAML)]
            changes += [(_path(i), _module(i, 0)) for i in range(files)]
        else:
            changes = [(_path((number * 7 + k * 131) % files), _module(number, number)) for k in range(5)]
        for path, content in changes:
            out.append("M 100644 inline {}\n".format(path).encode())
            out.append(_data(content))
        out.append(b"\n")
    for branch in ("development", "production"):
        out.append("reset refs/heads/{}\nfrom refs/heads/master\n\n".format(branch).encode())
    return b"".join(out)


def jenkins_workspace(path, origin, env):
    """A checkout made the way the Jenkins git plugin makes one: detached, no branches."""
    os.makedirs(path)
    run(["git", "init", "--quiet"], path, env)
    run(["git", "config", "remote.origin.url", origin], path, env)
    run(["git", "config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"], path, env)
    run(["git", "fetch", "--quiet", "--tags", "--force", "origin", "+refs/heads/*:refs/remotes/origin/*"], path, env)
    run(["git", "checkout", "--quiet", "-f", "refs/remotes/origin/development^{commit}"], path, env)


def setup(tmp, env, commits, files):
    """origin.git, a developer clone and two workspaces; return their paths."""
    os.makedirs(os.path.join(tmp, "home"))
    with open(os.path.join(tmp, "gitconfig"), "w", encoding="utf-8") as f:
        f.write(GITCONFIG)
    paths = {name: os.path.join(tmp, name) for name in ("origin.git", "dev", "continuity-ws", "raw-ws")}
    origin = paths["origin.git"]
    run(["git", "init", "--quiet", "--bare", origin], tmp, env)
    run(["git", "fast-import", "--quiet"], origin, env, input=history_stream(commits, files))
    run(["git", "clone", "--quiet", "--branch", "development", origin, paths["dev"]], tmp, env)
    jenkins_workspace(paths["continuity-ws"], origin, env)
    jenkins_workspace(paths["raw-ws"], origin, env)
    for name, script in (("raw-noop.sh", FLOOR_NOOP), ("raw-fast-forward.sh", RAW_FAST_FORWARD)):
        paths[name] = os.path.join(tmp, name)
        with open(paths[name], "w", encoding="utf-8") as f:
            f.write(script)
    return paths


def origin_ref(paths, env, branch):
    return run(["git", "--git-dir", paths["origin.git"], "rev-parse", "refs/heads/" + branch], paths["dev"], env)


def set_origin_master(paths, env, sha):
    """Put origin's master at ``sha``: the untimed reset between runs."""
    run(["git", "--git-dir", paths["origin.git"], "update-ref", "refs/heads/master", sha], paths["dev"], env)


def new_development_commit(paths, env, number):
    """One more commit on origin's development, pushed from the developer clone."""
    dev = paths["dev"]
    with open(os.path.join(dev, "src", "pkg00", "mod0000.py"), "a", encoding="utf-8") as f:
        f.write("\n# benchmark change {}\n".format(number))
    run(["git", "commit", "--quiet", "--all", "-m", "Benchmark change {}".format(number)], dev, env)
    run(["git", "push", "--quiet", "origin", "HEAD:refs/heads/development"], dev, env)
    return run(["git", "rev-parse", "HEAD"], dev, env)


# -- the measurements ----------------------------------------------------------


def alternate(repeat, sides, before=None):
    """Run each side ``repeat`` times, alternating who goes first; {name: [seconds]}."""
    times = {name: [] for name in sides}
    names = list(sides)
    for rep in range(repeat):
        if before:
            before(rep)
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            times[name].append(sides[name](rep))
    return times


def scenario_noop(paths, env, fab, repeat):
    tip = origin_ref(paths, env, "development")

    def continuity_side(rep):
        set_origin_master(paths, env, tip)
        return timed([fab, "continuity.pipeline"], paths["continuity-ws"], env)

    def raw_side(rep):
        set_origin_master(paths, env, tip)
        return timed(["sh", paths["raw-noop.sh"]], paths["raw-ws"], env)

    warm(continuity_side, raw_side)
    return alternate(repeat, {"continuity": continuity_side, "raw git": raw_side})


def scenario_fast_forward(paths, env, fab, repeat):
    state = {}

    def new_commit(rep):
        state["base"] = origin_ref(paths, env, "master")
        state["sha"] = new_development_commit(paths, env, rep)

    def side(args, cwd):
        def go(rep):
            set_origin_master(paths, env, state["base"])
            seconds = timed(args, cwd, env)
            if origin_ref(paths, env, "master") != state["sha"]:
                raise BenchFailed("`{}` did not move origin's master to {}".format(" ".join(args), state["sha"][:12]))
            return seconds
        return go

    continuity_side = side([fab, "continuity.pipeline"], paths["continuity-ws"])
    raw_side = side(["sh", paths["raw-fast-forward.sh"]], paths["raw-ws"])
    new_commit(-1)
    warm(continuity_side, raw_side)
    return alternate(repeat, {"continuity": continuity_side, "raw git": raw_side}, before=new_commit)


def warm(*sides):
    """One untimed run each: page cache, .pyc files, git's index stat data."""
    for side in sides:
        side(-1)


def fixed_costs(paths, env, fab, repeat):
    python = sys.executable
    commands = {
        PY_START: ([python, "-c", "pass"], paths["dev"]),
        IMPORT_FABRIC: ([python, "-c", "import fabric"], paths["dev"]),
        IMPORT_CONTINUITY: ([python, "-c", "import continuity"], paths["dev"]),
        IMPORT_BOTH: ([python, "-c", "import fabric, continuity"], paths["dev"]),
        FAB_VERSION: ([fab, "--version"], paths["dev"]),
        FAB_LIST: ([fab, "--list"], paths["continuity-ws"]),
    }
    sides = {name: (lambda rep, a=args, c=cwd: timed(a, c, env)) for name, (args, cwd) in commands.items()}
    warm(*sides.values())
    return alternate(repeat, sides)


def startup(tmp, env, fab, repeat):
    """C: ``fab --list`` with continuity's tasks vs a one-task fabfile, and ``import continuity``."""
    projects = {}
    for name, fabfile in (("continuity", FABFILE), ("bare", BARE_FABFILE)):
        projects[name] = os.path.join(tmp, "startup-" + name)
        os.makedirs(projects[name])
        with open(os.path.join(projects[name], "fabfile.py"), "w", encoding="utf-8") as f:
            f.write(fabfile)
    python = sys.executable
    commands = {
        "fab --list, continuity": ([fab, "--list"], projects["continuity"]),
        "fab --list, bare": ([fab, "--list"], projects["bare"]),
        "import fabric": ([python, "-c", "import fabric"], projects["bare"]),
        "import fabric, continuity": ([python, "-c", "import fabric, continuity"], projects["bare"]),
    }
    cpu = {name: [] for name in commands}

    def side(name):
        args, cwd = commands[name]

        def go(rep):
            wall, used = timed_cpu(args, cwd, env)
            if rep >= 0:
                cpu[name].append(used)
            return wall
        return go

    sides = {name: side(name) for name in commands}
    warm(*sides.values())
    wall = alternate(repeat, sides)
    return wall, cpu


# -- the report ----------------------------------------------------------------


def ms(seconds):
    return "{:8.1f}".format(seconds * 1000)


def print_scenarios(results):
    print("\n{:<22} {:>21} {:>21} {:>10} {:>7}".format("scenario", "continuity ms", "raw git ms", "diff ms", "ratio"))
    row = "{:<22} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7}"
    print(row.format("", "median", "min", "median", "min", "median", "median"))
    for label, times in results:
        ours, raw = times["continuity"], times["raw git"]
        ours_median, raw_median = statistics.median(ours), statistics.median(raw)
        ratio = "{:.1f}x".format(ours_median / raw_median)
        print(row.format(
            label, ms(ours_median), ms(min(ours)), ms(raw_median), ms(min(raw)), ms(ours_median - raw_median), ratio))


def print_fixed(times):
    print("\n{:<44} {:>10} {:>10}".format("fixed cost", "median ms", "min ms"))
    for name, values in times.items():
        print("{:<44} {:>10} {:>10}".format(name, ms(statistics.median(values)), ms(min(values))))


def print_breakdown(results, fixed):
    """Split continuity's extra time into Python/Fabric startup and its own work."""
    print("\n{:<44} {:>10} {:>10}".format("where the time goes", "median ms", "min ms"))

    def line(label, pick):
        values = [pick(statistics.median), pick(min)]
        print("{:<44} {:>10} {:>10}".format(label, *(ms(v) for v in values)))

    line("starting Python", lambda f: f(fixed[PY_START]))
    line("+ importing fabric (invoke, paramiko...)", lambda f: f(fixed[IMPORT_FABRIC]) - f(fixed[PY_START]))
    line("+ importing continuity on top of fabric", lambda f: f(fixed[IMPORT_BOTH]) - f(fixed[IMPORT_FABRIC]))
    line("+ fab: parse, load the fabfile and config", lambda f: f(fixed[FAB_LIST]) - f(fixed[IMPORT_BOTH]))
    line("= fab --list: the fixed cost of any fab", lambda f: f(fixed[FAB_LIST]))
    for label, times in results:
        line("{}: difference - fab --list".format(label.split()[0]),
             lambda f, t=times: f(t["continuity"]) - f(t["raw git"]) - f(fixed[FAB_LIST]))
    print("(the last lines are continuity's own work: ls-remote, the workspace checks, the run\n"
          " lock, the compare-and-swap push, restoring HEAD, the report; about 1 ms of the\n"
          " raw side is starting sh. Medians of differences are noisy on a busy machine.)")


def print_startup(wall, cpu):
    print("\n{:<30} {:>21} {:>21} {:>15}".format("C start-up", "with continuity ms", "bare fab ms", "ratio"))
    row = "{:<30} {:>10} {:>10} {:>10} {:>10} {:>7} {:>7}"
    print(row.format("", "median", "min", "median", "min", "median", "min"))
    for label, times in (("fab --list (wall clock)", wall), ("fab --list (CPU)", cpu)):
        ours, bare = times["fab --list, continuity"], times["fab --list, bare"]
        print(row.format(label, ms(statistics.median(ours)), ms(min(ours)), ms(statistics.median(bare)), ms(min(bare)),
                         "{:.2f}x".format(statistics.median(ours) / statistics.median(bare)),
                         "{:.2f}x".format(min(ours) / min(bare))))
    for label, times in (("import continuity (wall clock)", wall), ("import continuity (CPU)", cpu)):
        both, fabric = times["import fabric, continuity"], times["import fabric"]
        print("{:<30} {:>10} {:>10}   on top of import fabric ({} ms median)".format(
            label, ms(statistics.median(both) - statistics.median(fabric)), ms(min(both) - min(fabric)),
            ms(statistics.median(fabric)).strip()))
    print("(goal: fab --list with continuity at most 1.1x bare fab --list)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="repetitions per measurement (default 10)")
    parser.add_argument("--commits", type=int, default=200, help="commits in the generated history (default 200)")
    parser.add_argument("--files", type=int, default=1000, help="files in the generated tree (default 1000)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    parser.add_argument("--startup-only", action="store_true", help="measure only C, the start-up (seconds)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.commits < 1 or args.files < 1:
        parser.error("--repeat, --commits and --files must be at least 1")

    try:
        with scratch("continuity-bench-", keep=args.keep) as tmp:
            env = bench_env(tmp)
            fab = find_fab()
            if args.startup_only:
                os.makedirs(os.path.join(tmp, "home"))
                print("python {}  fab {}  repeat {}".format(sys.version.split()[0], fab, args.repeat))
                print_startup(*startup(tmp, env, fab, args.repeat))
                return 0
            start = time.perf_counter()
            paths = setup(tmp, env, args.commits, args.files)
            print("setup: {} commits, {} files, origin with master/development/production ({:.1f}s)".format(
                args.commits, args.files + 2, time.perf_counter() - start))
            print("python {}  fab {}  repeat {}".format(sys.version.split()[0], fab, args.repeat))
            results = [
                ("A no-op run", scenario_noop(paths, env, fab, args.repeat)),
                ("B fast-forward run", scenario_fast_forward(paths, env, fab, args.repeat)),
            ]
            fixed = fixed_costs(paths, env, fab, args.repeat)
            wall, cpu = startup(tmp, env, fab, args.repeat)
            print_scenarios(results)
            print_fixed(fixed)
            print_breakdown(results, fixed)
            print_startup(wall, cpu)
    except BenchFailed as exc:
        print("benchmark FAILED: {}".format(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
