#!/usr/bin/env python3
"""Run continuity's main job end to end on a throwaway local setup.

``make demo`` runs this script. It builds everything it needs under ``demo/``
at the repository root (removed and recreated on every run):

    demo/origin.git   the shared repository (a bare repo, as on a git server)
    demo/project/     a developer's clone of a tiny Python project using continuity
    demo/jenkins/     a Jenkins-style workspace: detached HEAD, no local branches
    demo/staging/     where the project's ``deploy`` task puts the code

then runs ``fab continuity.init``, ``fab continuity.pipeline`` and
``fab continuity.status`` the way a developer and a CI server would. Nothing
leaves this machine, and the user's own git configuration is never read or
written: git runs with a config file of its own in ``demo/``.

Standard library only. Exits non-zero when a step fails.
"""

import os
import shutil
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "demo")
ORIGIN = os.path.join(DEMO, "origin.git")
PROJECT = os.path.join(DEMO, "project")
JENKINS = os.path.join(DEMO, "jenkins")
STAGING = os.path.join(DEMO, "staging")

#: Variables from the caller's shell that would change what git, Fabric or
#: continuity do (a GIT_DIR, a FABRIC_CONTINUITY_* setting, a real Jenkins
#: build's variables). The demo sets the ones it needs itself.
_LEAKY_PREFIXES = ("GIT_", "FABRIC_", "INVOKE_", "CONTINUITY_")
_LEAKY_NAMES = ("BUILD_NUMBER", "BUILD_URL", "BUILD_ID", "JOB_NAME", "JOB_URL", "WORKSPACE", "JENKINS_URL")

GITCONFIG = """\
[user]
	name = Demo Developer
	email = developer@example.invalid
[init]
	defaultBranch = master
[advice]
	detachedHead = false
"""


class DemoFailed(Exception):
    """A step of the demo did not do what it should."""


# -- the sample project --------------------------------------------------------

PROJECT_FILES = {
    ".gitignore": """\
        __pycache__/
        *.pyc
        .pytest_cache/
        """,
    "pyproject.toml": """\
        [project]
        name = "greeter"
        version = "0.1.0"
        description = "The sample project of the continuity demo."

        [tool.pytest.ini_options]
        testpaths = ["tests"]
        """,
    "greeter/__init__.py": '''\
        """Greets people."""


        def greet(name):
            return "Hello, {}!".format(name)
        ''',
    "tests/test_greeter.py": """\
        from greeter import greet


        def test_greet_says_hello():
            assert greet("Ada") == "Hello, Ada!"
        """,
    "fabfile.py": '''\
        """The project's tasks: its own deploy, plus continuity's tasks."""

        import os
        import shlex
        import shutil

        from fabric import task
        from invoke import Collection

        import continuity

        HERE = os.path.dirname(os.path.abspath(__file__))


        @task(help={
            "environment": "Where to deploy: a directory of that name next to this checkout.",
            "revision": "The commit to record (default: CONTINUITY_REVISION, else HEAD).",
        })
        def deploy(c, environment, revision=None):
            """Copy the checked-out tree to ../ENVIRONMENT (this demo's stand-in for a server)."""
            revision = revision or os.environ.get("CONTINUITY_REVISION")
            if not revision:
                revision = c.run("git rev-parse HEAD", hide=True).stdout.strip()
            target = os.path.join(os.path.dirname(HERE), environment)
            shutil.rmtree(target, ignore_errors=True)
            os.makedirs(target)
            c.run("git archive --format=tar {} | tar -x -C {}".format(shlex.quote(revision), shlex.quote(target)))
            with open(os.path.join(target, "REVISION"), "w") as f:
                f.write(revision + "\\n")
            print("deployed {} to {}".format(revision[:12], target))


        ns = Collection(deploy, continuity)
        ''',
    "fabric.yaml": """\
        continuity:
          build:
            - name: bytecode
              command: python -m compileall -q greeter
              paths: [greeter]
          checks:
            - python -m pytest -q
          auto_deploy: [staging]
        """,
}

FEATURE_FILES = {
    "greeter/__init__.py": '''\
        """Greets people."""


        def greet(name, punctuation="!"):
            return "Hello, {}{}".format(name, punctuation)


        def farewell(name):
            return "Goodbye, {}.".format(name)
        ''',
    "tests/test_greeter.py": """\
        from greeter import farewell, greet


        def test_greet_says_hello():
            assert greet("Ada") == "Hello, Ada!"


        def test_farewell_says_goodbye():
            assert farewell("Ada") == "Goodbye, Ada."
        """,
}


# -- running things ------------------------------------------------------------


def demo_env():
    """The environment every command of the demo runs with."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_PREFIXES) and k not in _LEAKY_NAMES
    }
    home = os.path.join(DEMO, "home")
    env.update(
        HOME=home,  # no ~/.fabric.yaml or other dotfile of the user leaks in
        GIT_CONFIG_GLOBAL=os.path.join(DEMO, "gitconfig"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
    )
    # `python` in the project's checks must be the one that has pytest and
    # continuity: the interpreter running this script.
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", os.defpath)])
    return env


def find_fab():
    """The ``fab`` installed next to this Python, else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "fab")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("fab")
    if not found:
        raise DemoFailed("no `fab` next to {} or on PATH; run `make demo`, which installs it".format(sys.executable))
    return found


def run(args, cwd, env, quiet=False, extra_env=None):
    """Run ``args``; show its output unless ``quiet``; raise `DemoFailed` if it fails."""
    full_env = dict(env, **(extra_env or {}))
    if not quiet:
        print("$ {}    (in {})".format(" ".join(args), os.path.relpath(cwd, ROOT)), flush=True)
    proc = subprocess.run(
        args,
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if quiet else None,
        stderr=subprocess.STDOUT if quiet else None,
        text=True,
    )
    if proc.returncode != 0:
        output = (proc.stdout or "").strip() if quiet else ""
        raise DemoFailed("`{}` in {} exited with code {}{}".format(
            " ".join(args), os.path.relpath(cwd, ROOT), proc.returncode, ":\n" + output if output else ""))
    return proc


def git(cwd, env, *args):
    """Run git quietly and return its stripped output."""
    proc = run(["git", *args], cwd, env, quiet=True)
    return proc.stdout.strip()


def heading(number, title, text=""):
    print("\n==> {}. {}".format(number, title))
    if text:
        print(textwrap.fill(textwrap.dedent(text).strip(), width=78, initial_indent="    ", subsequent_indent="    "))
    print(flush=True)


def write_files(root, files):
    for relative, content in files.items():
        path = os.path.join(root, *relative.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(content))


# -- the steps -----------------------------------------------------------------


def fresh_demo_dir():
    shutil.rmtree(DEMO, ignore_errors=True)
    os.makedirs(os.path.join(DEMO, "home"))
    with open(os.path.join(DEMO, "gitconfig"), "w", encoding="utf-8") as f:
        f.write(GITCONFIG)


def preflight(env):
    """Fail early, with a hint, when the tools the demo needs are missing."""
    if shutil.which("git", path=env["PATH"]) is None:
        raise DemoFailed("git is not installed or not on PATH")
    probe = subprocess.run(
        ["python", "-c", "import pytest, continuity"], env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    if probe.returncode != 0:
        raise DemoFailed(
            "the `python` on PATH cannot import pytest and continuity, which the sample project's "
            "check needs; run the demo with `make demo` (it uses the project's virtualenv)"
        )


def create_origin_and_project(env):
    heading(1, "A shared repository and a sample project", """
        origin.git plays the git server. project/ is a developer's clone of a tiny
        package (greeter) with one test, a fabfile whose deploy task copies the tree
        to demo/ENVIRONMENT, and a fabric.yaml with continuity's settings: a build step,
        the check `python -m pytest -q`, and auto_deploy to staging.
        """)
    git(DEMO, env, "init", "--quiet", "--bare", ORIGIN)
    git(DEMO, env, "clone", "--quiet", ORIGIN, PROJECT)
    write_files(PROJECT, PROJECT_FILES)
    git(PROJECT, env, "add", "--all")
    git(PROJECT, env, "commit", "--quiet", "-m", "Start the greeter project")
    git(PROJECT, env, "push", "--quiet", "origin", "HEAD:refs/heads/master")
    master = git(PROJECT, env, "rev-parse", "--short=12", "HEAD")
    print("created {} and pushed master {}".format(os.path.relpath(PROJECT, ROOT), master))
    print("\n--- demo/project/fabric.yaml ---\n" + textwrap.dedent(PROJECT_FILES["fabric.yaml"]).rstrip())


def init_branches(env, fab):
    heading(2, "fab continuity.init", """
        continuity works with three branches: development (where people push),
        master (what passed the checks) and production. init creates the missing
        ones on origin, at master's revision.
        """)
    run([fab, "continuity.init"], PROJECT, env)


def push_a_change(env):
    heading(3, "A developer pushes a change to development", """
        In the project clone: switch to development, add a feature and its test,
        commit, and push to origin. Nobody merges into master by hand.
        """)
    git(PROJECT, env, "fetch", "--quiet", "origin")
    git(PROJECT, env, "switch", "--quiet", "-c", "development", "--track", "origin/development")
    write_files(PROJECT, FEATURE_FILES)
    git(PROJECT, env, "commit", "--quiet", "--all", "-m", "Add farewell()")
    git(PROJECT, env, "push", "--quiet", "origin", "development")
    sha = git(PROJECT, env, "rev-parse", "HEAD")
    print("pushed development {} ({})".format(sha[:12], git(PROJECT, env, "log", "-1", "--format=%s")))
    return sha


def jenkins_checkout(env, sha):
    heading(4, "A Jenkins-style workspace", """
        The Jenkins git plugin does not clone: it inits a repository, fetches every
        branch as origin/NAME and checks out the commit that triggered the build,
        with a detached HEAD and no local branch. demo/jenkins/ is made the same way.
        """)
    os.makedirs(JENKINS)
    git(JENKINS, env, "init", "--quiet")
    git(JENKINS, env, "config", "remote.origin.url", ORIGIN)
    git(JENKINS, env, "fetch", "--quiet", "--tags", "--force", "origin", "+refs/heads/*:refs/remotes/origin/*")
    git(JENKINS, env, "checkout", "--quiet", "-f", sha)
    print("demo/jenkins: HEAD detached at {}".format(git(JENKINS, env, "rev-parse", "--short=12", "HEAD")))
    return {
        "BUILD_NUMBER": "1",
        "BUILD_ID": "1",
        "JOB_NAME": "greeter-continuity",
        "BUILD_URL": "http://127.0.0.1:8080/job/greeter-continuity/1/",
        "WORKSPACE": JENKINS,
        "GIT_COMMIT": sha,
        "GIT_BRANCH": "origin/development",
    }


def run_pipeline(env, fab, jenkins_env):
    heading(5, "fab continuity.pipeline (the Jenkins job)", """
        continuity fetches origin, pins development, merges it into master in memory,
        runs the build step and the checks on exactly that tree, pushes master only if
        it has not moved (a compare-and-swap), then calls the project's deploy task
        for staging.
        """)
    run([fab, "continuity.pipeline"], JENKINS, env, extra_env=jenkins_env)


def run_again(env, fab, jenkins_env):
    heading(6, "The same job again", """
        development is now part of master, so a second run has nothing to do and
        says so without building, checking or deploying anything.
        """)
    run([fab, "continuity.pipeline"], JENKINS, env, extra_env=dict(jenkins_env, BUILD_NUMBER="2", BUILD_ID="2"))


def show_status(env, fab):
    heading(7, "fab continuity.status", """
        Where each branch stands on origin, what each one lacks, and which revision
        each environment runs.
        """)
    run([fab, "continuity.status"], JENKINS, env)


def verify(env, old_master, development):
    heading(8, "The result")
    master = git(DEMO, env, "--git-dir", ORIGIN, "rev-parse", "refs/heads/master")
    print("origin master:    {} -> {}".format(old_master[:12], master[:12]))
    if master == old_master:
        raise DemoFailed("origin's master did not advance")
    contains = subprocess.run(
        ["git", "--git-dir", ORIGIN, "merge-base", "--is-ancestor", development, master],
        env=env, stdin=subprocess.DEVNULL,
    )
    if contains.returncode != 0:
        raise DemoFailed("origin's master does not contain development {}".format(development[:12]))
    revision_file = os.path.join(STAGING, "REVISION")
    try:
        with open(revision_file, encoding="utf-8") as f:
            deployed = f.read().strip()
    except OSError:
        raise DemoFailed("{} is missing: the deploy did not run".format(os.path.relpath(revision_file, ROOT))) from None
    print("demo/staging:     REVISION {}".format(deployed[:12]))
    if deployed != master:
        raise DemoFailed("demo/staging runs {}, not origin's master {}".format(deployed[:12], master[:12]))
    greeting = run(["python", "-c", "import greeter; print(greeter.farewell('demo'))"], STAGING, env, quiet=True)
    print("demo/staging:     greeter.farewell('demo') -> {}".format(greeting.stdout.strip()))
    print("\nDemo finished: development was checked, merged into master, pushed and deployed to staging.")


def main():
    fresh_demo_dir()
    env = demo_env()
    preflight(env)
    fab = find_fab()
    print("continuity demo in {} (removed and recreated on every run)".format(os.path.relpath(DEMO, os.getcwd())))
    print("fab: {}".format(fab))
    create_origin_and_project(env)
    init_branches(env, fab)
    old_master = git(DEMO, env, "--git-dir", ORIGIN, "rev-parse", "refs/heads/master")
    development = push_a_change(env)
    jenkins_env = jenkins_checkout(env, development)
    run_pipeline(env, fab, jenkins_env)
    run_again(env, fab, jenkins_env)
    show_status(env, fab)
    verify(env, old_master, development)


if __name__ == "__main__":
    try:
        main()
    except DemoFailed as exc:
        print("\ndemo FAILED: {}".format(exc), file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
