"""The Invoke compatibility shims (continuity/config/_compat.py), pinned to the Invoke versions pyproject.toml allows.

continuity wraps two Invoke internals so that a wrong value under ``continuity:``
is a one-line error from the parser instead of a traceback. These tests run
real Invoke `Config` objects (project file, collection, environment) and fail,
rather than skip, on an Invoke outside the supported range: a new Invoke that
moved either internal must be noticed here, not in a user's CI.
"""

import re
import subprocess
import sys
from pathlib import Path

import invoke
import pytest
from invoke import Config
from invoke.config import AmbiguousMergeError
from invoke.exceptions import UncastableEnvVar

import continuity
from continuity.config import _compat

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def version(text):
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def invoke_range():
    """(lowest, first unsupported) from pyproject.toml's ``invoke>=X,<Y``."""
    [spec] = re.findall(r"""["']invoke\s*([^"']+)["']""", PYPROJECT.read_text())
    bounds = dict(re.findall(r"(>=|<)\s*([\d.]+)", spec))
    return version(bounds[">="]), version(bounds["<"])


def config(tmp_path, project_yaml, collection, monkeypatch=None, **env):
    """A real Invoke Config: ``collection`` defaults, ``invoke.yaml`` in tmp_path, then INVOKE_* variables."""
    (tmp_path / "invoke.yaml").write_text(project_yaml)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = Config(project_location=str(tmp_path), lazy=True)
    cfg.load_collection(collection)
    cfg.load_project()
    cfg.load_shell_env()
    return cfg


def test_the_installed_invoke_is_one_pyproject_toml_supports():
    lowest, unsupported = invoke_range()
    assert lowest <= version(invoke.__version__) < unsupported, (invoke.__version__, lowest, unsupported)


def test_importing_continuity_installs_both_shims_on_a_stock_invoke():
    script = (
        "import invoke.config, invoke.env\n"
        "before = (invoke.config.merge_dicts, invoke.env.Environment._path_set)\n"
        "assert not any(hasattr(f, '_continuity_shim') for f in before)\n"
        "import continuity\n"
        "after = (invoke.config.merge_dicts, invoke.env.Environment._path_set)\n"
        "assert all(getattr(f, '_continuity_shim', False) for f in after), after\n"
        "assert all(a is not b for a, b in zip(before, after))\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.stdout == "ok\n", proc.stderr


def test_installing_the_shims_again_wraps_nothing_twice():
    import importlib

    import invoke.config
    import invoke.env

    installed = (invoke.config.merge_dicts, invoke.env.Environment._path_set)
    assert continuity.config._compat.installed()

    _compat.install()
    importlib.reload(_compat).install()

    assert (invoke.config.merge_dicts, invoke.env.Environment._path_set) == installed


# -- under continuity -------------------------------------------------------------------------


def test_an_environment_variable_over_a_list_under_continuity_arrives_as_the_string(tmp_path, monkeypatch):
    cfg = config(tmp_path, "continuity:\n  checks: [make lint]\n  sync_development: true\n",
                 {"continuity": {"checks": None, "max_attempts": 3}}, monkeypatch,
                 INVOKE_CONTINUITY_CHECKS="make test", INVOKE_CONTINUITY_MAX_ATTEMPTS="five",
                 INVOKE_CONTINUITY_SYNC_DEVELOPMENT="no")

    assert cfg.continuity.checks == "make test"
    assert cfg.continuity.max_attempts == "five"  # the parser says what is wrong with it
    assert cfg.continuity.sync_development == "no"  # stock Invoke would make "no" true


def test_a_null_over_a_mapping_under_continuity_keeps_the_defaults(tmp_path):
    defaults = {"continuity": {"hotfix": {"prefix": "hotfix/", "tag": ""}, "notify": {"email": {"host": None}}}}

    cfg = config(tmp_path, "continuity:\n  hotfix:\n  notify:\n    email:\n", defaults)

    assert cfg.continuity.hotfix == {"prefix": "hotfix/", "tag": ""}
    assert cfg.continuity.notify.email == {"host": None}


def test_an_empty_continuity_key_keeps_the_defaults(tmp_path):
    cfg = config(tmp_path, "continuity:\n", {"continuity": {"remote": "origin"}})

    assert cfg.continuity == {"remote": "origin"}


def test_a_value_of_another_type_under_continuity_replaces_the_default_for_the_parser_to_name(tmp_path):
    defaults = {"continuity": {"hotfix": {"prefix": "hotfix/"}, "checks": None, "lines": {}}}

    cfg = config(tmp_path, "continuity:\n  hotfix: []\n  checks: {make: test}\n  lines:\n    5: {}\n", defaults)

    assert cfg.continuity.hotfix == []
    assert cfg.continuity.checks == {"make": "test"}
    assert list(cfg.continuity.lines) == ["5"]  # a string, as Invoke's variable names need


def test_keys_under_continuity_are_strings_even_for_a_task_without_the_collection_defaults(tmp_path, monkeypatch):
    # the user's own root ``deploy`` task: continuity's collection config does not apply to it
    cfg = config(tmp_path, "continuity:\n  lines:\n    5: {}\n", {}, monkeypatch, INVOKE_CONTINUITY_REMOTE="up")

    assert list(cfg.continuity.lines) == ["5"]


# -- anywhere else: stock Invoke --------------------------------------------------------------


def test_a_null_over_another_keys_mapping_is_still_an_invoke_error(tmp_path):
    with pytest.raises(AmbiguousMergeError):
        config(tmp_path, "other:\n", {"other": {"a": 1}})


def test_a_null_over_a_mapping_nested_under_another_key_is_still_an_invoke_error(tmp_path):
    with pytest.raises(AmbiguousMergeError):
        config(tmp_path, "other:\n  a:\n", {"other": {"a": {"b": 1}}})


def test_a_continuity_key_nested_under_another_key_is_not_ours(tmp_path):
    with pytest.raises(AmbiguousMergeError):
        config(tmp_path, "other:\n  continuity:\n", {"other": {"continuity": {"a": 1}}})


def test_a_list_over_another_keys_mapping_is_still_an_invoke_error(tmp_path):
    with pytest.raises(AmbiguousMergeError):
        config(tmp_path, "other: []\n", {"other": {"a": 1}})


def test_an_environment_variable_over_another_keys_list_is_still_uncastable(tmp_path, monkeypatch):
    with pytest.raises(UncastableEnvVar):
        config(tmp_path, "other:\n  items: [a]\n", {"other": {"items": None}}, monkeypatch, INVOKE_OTHER_ITEMS="b")


def test_environment_variables_for_other_keys_are_cast_as_stock_invoke_casts_them(tmp_path, monkeypatch):
    cfg = config(tmp_path, "", {"other": {"flag": True, "count": 1}}, monkeypatch,
                 INVOKE_OTHER_FLAG="no", INVOKE_OTHER_COUNT="7")

    assert cfg.other.flag is True  # Invoke: only "" and "0" are false
    assert cfg.other.count == 7
