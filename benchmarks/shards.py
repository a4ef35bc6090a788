#!/usr/bin/env python3
"""One check of 4 shards of 2 s each: checked on 1 agent, then on 4 agents at once.

A throwaway project (a bare origin, workspaces made as Jenkins' git plugin
makes them) whose only check has ``shards: 4`` and sleeps ``--work`` seconds
per shard. For each round it publishes a new candidate (``fab
continuity.candidate``), then checks it:

* 1 agent: one workspace runs ``fab continuity.test --candidate ID``, which
  runs the 4 shards one after the other;
* 4 agents: four workspaces run ``fab continuity.test --candidate ID --shard
  I/4`` at the same time.

It times each (wall clock, from start to the last agent's end), then checks
that ``fab continuity.pipeline --candidate ID`` would accept the results
(``--dry-run``). The floor for 4 agents is one shard's time plus
continuity's own overhead per agent (start, fetch of the candidate,
checkout, recording the result: measured here as the 1-agent time minus 4
shards). Timings are printed, never asserted. On a machine with fewer cores
than agents, the agents' own overhead competes for them.
"""

import argparse
import os
import statistics
import subprocess
import sys
import textwrap
import time

from _common import BenchFailed, bench_env, find_fab, run, scratch

SHARDS = 4


def main():
    options = _arguments()
    fab = find_fab()
    with scratch("continuity-bench-shards-", keep=options.keep) as tmp:
        env = bench_env(tmp)
        os.makedirs(env["HOME"], exist_ok=True)
        with open(env["GIT_CONFIG_GLOBAL"], "w") as f:
            f.write("[user]\n\tname = Bench\n\temail = bench@example.com\n[init]\n\tdefaultBranch = master\n"
                    "[advice]\n\tdetachedHead = false\n")
        origin, dev = _project(tmp, env, options.work)
        workspaces = [_workspace(tmp, origin, env, index) for index in range(SHARDS + 1)]
        one, four, overhead = [], [], []
        for round_ in range(options.repeat):
            for agents, times in ((1, one), (SHARDS, four)):
                name = _candidate(fab, dev, workspaces[0], env, "{}-{}".format(round_, agents))
                times.append(_check(fab, workspaces[1:], env, name, agents))
                run([fab, "continuity.pipeline", "--candidate", name, "--dry-run"], workspaces[0], env)
            overhead.append(one[-1] - SHARDS * options.work)
    _print(options, one, four, overhead)


def _arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--work", type=float, default=2.0, help="seconds each shard sleeps (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print it")
    return parser.parse_args()


def _project(tmp, env, work):
    origin, dev = os.path.join(tmp, "origin.git"), os.path.join(tmp, "dev")
    run(["git", "init", "--quiet", "--bare", origin], tmp, env)
    run(["git", "clone", "--quiet", origin, dev], tmp, env)
    _write(dev, "fabfile.py", """\
        from fabric import task
        from invoke import Collection

        import continuity


        @task
        def deploy(c, environment):
            pass


        ns = Collection(deploy, continuity)
        """)
    _write(dev, "fabric.yaml", """\
        continuity:
          auto_deploy: []
          checks:
            - name: suite
              command: sleep {}
              shards: {}
        """.format(work, SHARDS))
    _write(dev, "round.txt", "0\n")
    run(["git", "add", "-A"], dev, env)
    run(["git", "commit", "--quiet", "-m", "initial"], dev, env)
    run(["git", "push", "--quiet", "origin", "HEAD:refs/heads/master", "HEAD:refs/heads/development",
         "HEAD:refs/heads/production"], dev, env)
    return origin, dev


def _write(directory, name, text):
    with open(os.path.join(directory, name), "w") as f:
        f.write(textwrap.dedent(text))


def _workspace(tmp, origin, env, index):
    ws = os.path.join(tmp, "agent{}".format(index))
    os.makedirs(ws)
    run(["git", "init", "--quiet"], ws, env)
    run(["git", "remote", "add", "origin", origin], ws, env)
    run(["git", "fetch", "--quiet", "origin", "+refs/heads/*:refs/remotes/origin/*"], ws, env)
    run(["git", "checkout", "--quiet", "-f", "refs/remotes/origin/master"], ws, env)
    return ws


def _candidate(fab, dev, ws, env, label):
    """A new commit on development (a new tree: nothing to reuse), and its candidate's id."""
    _write(dev, "round.txt", label + "\n")
    run(["git", "commit", "--quiet", "-am", "round " + label], dev, env)
    run(["git", "push", "--quiet", "origin", "HEAD:refs/heads/development"], dev, env)
    output = os.path.join(ws, ".git", "candidate-id")
    run([fab, "continuity.candidate", "--output", output], ws, env)
    with open(output) as f:
        return f.read().strip()


def _check(fab, workspaces, env, name, agents):
    """Seconds from starting ``agents`` agents on candidate ``name`` until the last one ends."""
    start = time.monotonic()
    if agents == 1:
        commands = [([fab, "continuity.test", "--candidate", name], workspaces[0])]
    else:
        commands = [([fab, "continuity.test", "--candidate", name, "--shard", "{}/{}".format(i + 1, agents)],
                     workspaces[i]) for i in range(agents)]
    procs = [(subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT), args) for args, cwd in commands]
    for proc, args in procs:
        out = proc.communicate()[0].decode("utf-8", "replace")
        if proc.returncode:
            raise BenchFailed("`{}` exited with code {}:\n{}".format(" ".join(args), proc.returncode,
                                                                     "\n".join(out.splitlines()[-15:])))
    return time.monotonic() - start


def _print(options, one, four, overhead):
    floor = options.work + statistics.median(overhead)
    print("one check of {} shards, {:g}s each; {} round(s); wall clock, seconds".format(
        SHARDS, options.work, options.repeat))
    print("{:<34} {:>8} {:>8}".format("", "median", "min"))
    print("{:<34} {:>8.2f} {:>8.2f}".format("1 agent (4 shards one after another)", statistics.median(one), min(one)))
    print("{:<34} {:>8.2f} {:>8.2f}".format("4 agents at once (1 shard each)", statistics.median(four), min(four)))
    print("{:<34} {:>8.2f}".format("continuity's overhead per agent", statistics.median(overhead)))
    print("{:<34} {:>8.2f}".format("floor for 4 agents (1 shard + it)", floor))
    print("ratio 1 agent / 4 agents: {:.2f} (ideal {}); 4 agents are {:.2f}s above the floor".format(
        statistics.median(one) / statistics.median(four), SHARDS, statistics.median(four) - floor))


if __name__ == "__main__":
    try:
        main()
    except BenchFailed as exc:
        sys.exit("benchmarks/shards.py: {}".format(exc))
