"""The distribution a user installs: `fabric-continuity`, built and installed for real.

One build per test session (shared by the xdist workers): ``python -m build``
makes the sdist from a copy of this tree and the wheel from that sdist (so a
file the sdist forgot breaks the wheel), ``twine check`` reads both as the
package index would, and a fresh virtual environment gets the wheel with its
dependencies from the index. In that environment `fab --list` runs on the
tutorial's own fabfile, taken from docs/tutorial.rst.
"""

import fcntl
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

import continuity
from conftest import FAB

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial.rst"
DIST_NAME = "fabric-continuity"

# What never goes into the copy the sdist is built from: this checkout's own state.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", ".tox", "*.egg-info", "build", "dist", "_build", "demo", "__pycache__", "*.py[cod]",
    ".*_cache", ".import_linter_cache",
)


def _quiet_env():
    """This environment for pip and build, minus what would point them at this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def _run(args, cwd, env, timeout=600):
    return subprocess.run(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def _check(proc, what):
    if proc.returncode != 0:
        raise RuntimeError("{} failed with exit code {}:\n{}\n{}".format(
            what, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    return proc.stdout


def _index_unreachable(work, env):
    """Why pip cannot fetch from the package index, or None when it can."""
    proc = _run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(work / "probe"),
                 "setuptools>=77"], work, env, timeout=300)
    if proc.returncode == 0:
        return None
    return (proc.stderr.strip().splitlines() or ["pip download exited {}".format(proc.returncode)])[-1]


def _build_and_install(work):
    """Build sdist and wheel, install the wheel into a new venv; a dict of paths (or why to skip)."""
    env = _quiet_env()
    reason = _index_unreachable(work, env)
    if reason:
        return {"skip": "the package index is unreachable, so the build and pip cannot fetch: " + reason}
    source, dist, venv = work / "source", work / "dist", work / "venv"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    _check(_run([sys.executable, "-m", "build", "--outdir", str(dist), str(source)], work, env), "python -m build")
    [wheel] = dist.glob("*.whl")
    [sdist] = dist.glob("*.tar.gz")
    twine = _check(_run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)], work, env),
                   "twine check")
    # Without a pip of its own (ensurepip is the slow part): this pip installs into it.
    _check(_run([sys.executable, "-m", "venv", "--without-pip", str(venv)], work, env), "python -m venv")
    _check(_run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                 str(wheel)], work, env), "pip install " + wheel.name)
    return {"wheel": str(wheel), "sdist": str(sdist), "venv": str(venv), "twine": twine}


@pytest.fixture(scope="session")
def built(tmp_path_factory, worker_id):
    """The one build of this session: the first xdist worker makes it, the others wait and share it."""
    for module in ("build", "twine"):
        if importlib.util.find_spec(module) is None:
            pytest.skip("{} is not installed (pip install -e '.[test]')".format(module))
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if worker_id != "master" else base  # the parent is this session's, under xdist
    work = shared / "packaging"
    with open(shared / "packaging.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        outcome_file = shared / "packaging.json"
        if outcome_file.exists():
            outcome = json.loads(outcome_file.read_text())
        else:
            work.mkdir()
            try:
                outcome = _build_and_install(work)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                outcome = {"error": str(exc)}
            outcome_file.write_text(json.dumps(outcome))
    if "skip" in outcome:
        pytest.skip(outcome["skip"])
    if "error" in outcome:
        pytest.fail(outcome["error"], pytrace=False)
    return {key: Path(value) if key != "twine" else value for key, value in outcome.items()}


def tutorial_fabfile():
    """The fabfile the tutorial tells a user to write."""
    blocks = re.findall(r"^\.\. code-block:: python\n\n((?:   .*\n|\n)+)", TUTORIAL.read_text(), re.MULTILINE)
    [fabfile] = [block for block in blocks if "ns = Collection(deploy, continuity)" in block]
    return textwrap.dedent(fabfile)


def tutorial_task_names():
    """The task names the tutorial's ``fab --list`` shows."""
    text = TUTORIAL.read_text()
    listing = text[text.index("   $ fab --list\n"):]
    listing = listing[:listing.index("\n\n", listing.index("Available tasks:") + len("Available tasks:\n\n"))]
    return re.findall(r"^ {5}(\w[\w.-]*)  ", listing, re.MULTILINE)


def listed_tasks(fab, directory):
    proc = subprocess.run([str(fab), "--list"], cwd=directory, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return re.findall(r"^  (\w[\w.-]*)", proc.stdout, re.MULTILINE)


def in_venv(built, code):
    proc = subprocess.run([str(built["venv"] / "bin" / "python"), "-c", code], cwd=str(built["venv"]),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_wheel_and_the_sdist_are_fabric_continuity_and_pass_twine_check(built):
    assert built["wheel"].name == "fabric_continuity-{}-py3-none-any.whl".format(continuity.__version__)
    assert built["sdist"].name == "fabric_continuity-{}.tar.gz".format(continuity.__version__)
    assert built["twine"].count("PASSED") == 2, built["twine"]
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = wheel.namelist()
        [metadata] = [name for name in names if name.endswith(".dist-info/METADATA")]
        fields = wheel.read(metadata).decode("utf-8").split("\n\n", 1)[0]
    assert "\nName: fabric-continuity\n" in fields
    assert "\nLicense-Expression: BSD-3-Clause\n" in fields
    for requirement in ("fabric<4,>=3.2", "invoke<3,>=2.2", "docker>=7"):
        assert "\nRequires-Dist: {}\n".format(requirement) in fields, fields
    assert "Description-Content-Type: text/x-rst" in fields


def test_the_wheel_holds_every_module_of_the_package_and_no_tests(built):
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = set(wheel.namelist())
    package = {path.relative_to(ROOT).as_posix() for path in (ROOT / "continuity").rglob("*.py")}
    assert package - names == set()
    assert {name.split("/", 1)[0] for name in names} == {"continuity", "fabric_continuity-{}.dist-info".format(
        continuity.__version__)}


def test_the_sdist_holds_the_license_the_readme_and_the_docs_but_no_tests(built):
    with tarfile.open(built["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"LICENSE", "README.rst", "pyproject.toml", "setup.py", "continuity/__init__.py",
            "docs/tutorial.rst", "docs/conf.py"} <= names
    assert not [name for name in names if name.startswith(("tests/", "benchmarks/", "docs/_build/"))]
    assert not [name for name in names if name.endswith(".pyc")]


def test_fab_list_in_a_fresh_venv_shows_the_tasks_the_tutorial_shows(built, tmp_path):
    (tmp_path / "venv-project").mkdir()
    (tmp_path / "venv-project" / "fabfile.py").write_text(tutorial_fabfile())
    installed = listed_tasks(built["venv"] / "bin" / "fab", tmp_path / "venv-project")

    expected = tutorial_task_names()
    assert "continuity.pipeline" in expected and "deploy" in expected  # the parse of the tutorial worked
    assert [name for name in expected if name not in installed] == []
    # ... and exactly what this checkout lists: nothing the package needs was left out of the wheel.
    (tmp_path / "checkout-project").mkdir()
    (tmp_path / "checkout-project" / "fabfile.py").write_text(tutorial_fabfile())
    assert installed == listed_tasks(FAB, tmp_path / "checkout-project")


def test_the_installed_package_is_imported_from_the_venv_with_the_version_of_the_metadata(built):
    where = in_venv(built, "import continuity; print(continuity.__file__)")
    assert Path(where).is_relative_to(built["venv"]), where
    version = in_venv(built, "import continuity; print(continuity.__version__)")
    metadata = in_venv(built, "import importlib.metadata as m; print(m.version({!r}))".format(DIST_NAME))
    assert version == metadata == continuity.__version__
