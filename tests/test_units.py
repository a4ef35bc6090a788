"""The plain functions under the tasks: settings, path matching, merging, running commands."""

import copy
import os
import subprocess
import sys
import time

import pytest
from invoke import Config, Context

from conftest import Project, git
from continuity import config as cfg
from continuity import merge
from continuity._proc import run_shell
from continuity.build import matches
from continuity.errors import ConfigError, MergeConflict
from continuity.git import Git

# -- settings ------------------------------------------------------------------


def test_the_defaults_are_the_documented_ones():
    s = cfg.parse({})
    assert (s.remote, s.branches.development, s.branches.master, s.branches.production) == (
        "origin", "development", "master", "production")
    assert [c.command for c in s.checks] == ["python -m pytest"]
    assert s.auto_deploy == ("staging",)
    assert s.build == ()


def test_settings_come_from_an_invoke_config_with_collection_defaults():
    config = Config(overrides={"continuity": {"branches": {"master": "main"}}})
    config.load_collection(cfg.COLLECTION_DEFAULTS)
    s = cfg.settings(Context(config=config))
    assert s.branches.master == "main"
    assert s.branches.development == "development"
    assert s.checks[0].command == "python -m pytest"


def test_strings_from_environment_variables_become_lists():
    s = cfg.parse({"checks": "make lint\nmake test\n", "auto_deploy": "qa, staging  demo", "max_attempts": "5"})
    assert [c.command for c in s.checks] == ["make lint", "make test"]
    assert s.auto_deploy == ("qa", "staging", "demo")
    assert s.max_attempts == 5


def test_an_empty_auto_deploy_means_no_deploys():
    assert cfg.parse({"auto_deploy": ""}).auto_deploy == ()
    assert cfg.parse({"auto_deploy": []}).auto_deploy == ()


def test_a_check_timeout_applies_unless_the_check_has_its_own():
    s = cfg.parse({"check_timeout": 60, "checks": ["a", {"command": "b", "timeout": 5, "name": "bee"}]})
    assert [(c.name, c.timeout) for c in s.checks] == [("a", 60.0), ("bee", 5.0)]


@pytest.mark.parametrize("raw, message", [
    ({"remotes": "x"}, "did you mean 'remote'?"),
    ({"zzz": 1}, "known keys:"),
    ({"branches": {"develop": "x"}}, "continuity.branches.develop: unknown setting; did you mean 'development'?"),
    ({"checks": [3]}, "continuity.checks[1] must be a shell command"),
    ({"build": [{"name": "a", "command": "x"}, {"name": "a", "command": "y"}]}, "must be unique"),
    ({"build": "make"}, "set it in fabric.yaml"),
    ({"lock_timeout": "soon"}, "continuity.lock_timeout must be a number of seconds"),
    ({"max_attempts": 0}, "from 1 to"),
    ({"auto_deploy": ["../up"]}, "is not an environment name"),
])
def test_bad_settings_say_what_to_fix(raw, message):
    with pytest.raises(ConfigError) as info:
        cfg.parse(raw)
    assert message in str(info.value)


# -- build paths -----------------------------------------------------------------


@pytest.mark.parametrize("path, pattern, expected", [
    ("src/a/b.py", "src", True),
    ("src/a/b.py", "src/", True),
    ("src/a/b.py", "src/*", True),
    ("src/a/b.py", "*.py", True),
    ("srcs/a.py", "src", False),
    ("docs/index.rst", "*.py", False),
    ("package.json", "package.json", True),
    ("a/package.json", "package.json", False),
    (".github/x.yml", ".github", True),
    ("app/x", "./app", True),
])
def test_build_path_patterns(path, pattern, expected):
    assert matches(path, pattern) is expected


# -- merging -------------------------------------------------------------------


def _diverged(tmp_path, conflict):
    project = Project(tmp_path).create()
    base = project.push_to("master", "on master", **{"app.txt": "master\n"})
    files = {"app.txt": "development\n"} if conflict else {"other.txt": "development\n"}
    dev = project.push_to("development", "on development", base="development", **files)
    git(project.dev, "fetch", "--quiet", "origin")
    return Git(project.dev), base, dev


@pytest.mark.parametrize("version", [(2, 39), (2, 30)], ids=["merge-tree", "worktree-fallback"])
def test_a_merge_commit_is_made_without_touching_the_checkout(tmp_path, monkeypatch, version):
    repo, base, dev = _diverged(tmp_path, conflict=False)
    monkeypatch.setattr(Git, "version", lambda self: version)
    head = repo.commit("HEAD")

    candidate = merge.prepare(repo, base, dev, "Merge it")

    assert not candidate.fast_forward
    assert repo.run("rev-list", "--parents", "-n1", candidate.sha).split()[1:] == [base, dev]
    assert repo.commit("HEAD") == head
    assert repo.run("worktree", "list").count("\n") == 0


@pytest.mark.parametrize("version", [(2, 39), (2, 30)], ids=["merge-tree", "worktree-fallback"])
def test_a_conflict_lists_the_files_and_leaves_no_trace(tmp_path, monkeypatch, version):
    repo, base, dev = _diverged(tmp_path, conflict=True)
    monkeypatch.setattr(Git, "version", lambda self: version)

    with pytest.raises(MergeConflict) as info:
        merge.prepare(repo, base, dev, "Merge it", names=("dev", "main"))

    assert info.value.files == ("app.txt",)
    assert "'dev' does not merge cleanly into 'main'" in str(info.value)
    assert repo.run("worktree", "list").count("\n") == 0
    assert repo.run("status", "--porcelain") == ""


def test_a_machine_without_a_git_identity_still_makes_merge_commits(tmp_path, monkeypatch):
    repo, base, dev = _diverged(tmp_path, conflict=False)
    empty = tmp_path / "empty.gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("EMAIL", "")
    repo = Git(repo.path)

    candidate = merge.prepare(repo, base, dev, "Merge it")

    assert repo.run("log", "-1", "--format=%cn <%ce>", candidate.sha) in (
        "continuity <continuity@localhost>", repo.run("var", "GIT_COMMITTER_IDENT", check=False).rsplit(">", 1)[0] + ">")


def test_when_git_refuses_to_guess_an_identity_our_commits_get_continuitys(tmp_path, monkeypatch):
    repo, base, dev = _diverged(tmp_path, conflict=False)
    config = tmp_path / "strict.gitconfig"
    config.write_text("[user]\n\tuseConfigOnly = true\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    repo = Git(repo.path)

    candidate = merge.prepare(repo, base, dev, "Merge it")
    token = repo.commit_tree(repo.empty_tree(), "-m", "a lock token")

    for sha in (candidate.sha, token):
        assert repo.run("log", "-1", "--format=%an <%ae> %cn <%ce>", sha) == (
            "continuity <continuity@localhost> continuity <continuity@localhost>")


def _spawned(monkeypatch, repo):
    """The git commands ``repo`` starts from now on (it still runs them)."""
    started = []
    spawn = repo._spawn

    def counting(args, *rest, **kwargs):
        started.append(args[0])
        return spawn(args, *rest, **kwargs)

    monkeypatch.setattr(repo, "_spawn", counting)
    return started


def test_git_with_an_identity_makes_commits_without_asking_for_it(tmp_path, monkeypatch):
    repo, _, _ = _diverged(tmp_path, conflict=False)
    tree = repo.empty_tree()
    started = _spawned(monkeypatch, repo)

    first = repo.commit_tree(tree, "-m", "one")
    second = repo.commit_tree(tree, "-p", first, "-m", "two")

    assert started == ["commit-tree", "commit-tree"]
    assert repo.run("rev-parse", second + "^") == first


def test_a_pair_of_commits_is_compared_once_whichever_way_it_is_asked(tmp_path, monkeypatch):
    repo, base, dev = _diverged(tmp_path, conflict=False)
    root = repo.run("rev-list", "--max-parents=0", dev)
    started = _spawned(monkeypatch, repo)

    assert not repo.is_ancestor(base, dev) and not repo.is_ancestor(dev, base)
    assert repo.is_ancestor(root, dev) and not repo.is_ancestor(dev, root) and repo.is_ancestor(dev, dev)
    assert (repo.count("{}..{}".format(root, dev)), repo.count("{}..{}".format(dev, root))) == (1, 0)
    assert repo.count("{}..{}".format(base, dev)) == 1 and repo.count("{}..{}".format(dev, base)) == 1

    assert started == ["merge-base", "merge-base", "rev-list", "rev-list"]
    assert repo.is_ancestor("refs/remotes/origin/development", dev)  # a ref may move: asked each time
    assert started[-1] == "merge-base"


def test_an_identity_from_the_environment_wins(tmp_path, monkeypatch):
    repo, base, dev = _diverged(tmp_path, conflict=False)
    empty = tmp_path / "empty.gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv("GIT_{}_NAME".format(role), "CI Bot")
        monkeypatch.setenv("GIT_{}_EMAIL".format(role), "ci@example.com")
    repo = Git(repo.path)

    candidate = merge.prepare(repo, base, dev, "Merge it")

    assert repo.run("log", "-1", "--format=%an <%ae> %cn <%ce>", candidate.sha) == (
        "CI Bot <ci@example.com> CI Bot <ci@example.com>")


# -- git ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["master", "release/1.x", "dev$(x)", "feature-@"])
def test_a_branch_name_git_branch_takes_is_valid(tmp_path, name):
    assert Git(tmp_path).valid_branch(name)


@pytest.mark.parametrize("name", ["-x", "--force", "HEAD", "@", "@{-1}", "master@{1}", "bad..name", "a.lock", "", "a b"])
def test_a_name_git_branch_refuses_or_reads_as_a_revision_is_not_a_branch_name(tmp_path, name):
    repo = tmp_path / "repo"
    git(tmp_path, "init", "--quiet", str(repo))
    git(repo, "commit", "--quiet", "--allow-empty", "-m", "one")
    git(repo, "checkout", "--quiet", "-b", "other")  # so @{-1} would expand to master

    assert not Git(repo).valid_branch(name)


_REF_NAMES = [
    "master", "a/b/c", "release/1.x", "dev$(x)", "feature-@", "ünïcødé", "a.b", "a_b", "a-b.c", "x@y", "{x}", "a}",
    "a..b", "a.", "a/", "/a", "a//b", ".a", "a/.b", "a.lock", "a.lock/b", "a/b.lock", "a.locks", "lock", ".lock",
    "a b", "a~1", "a^", "a:b", "a?", "a*", "a[1]", "a\\b", "a\tb", "a\x7fb", "a\x01", "@{", "a@{b", "a{", "@x",
    "x@", "a/@", "@/a", "refs/heads/x", "-", "a-", "HEAD/x", "x/HEAD", "a/./b", "a/../b", "...", "*",
]


@pytest.mark.parametrize("name", _REF_NAMES)
def test_valid_branch_answers_as_git_check_ref_format_does(tmp_path, name):
    """continuity checks branch names in Python (no git process per name): the same answers as git's."""
    proc = subprocess.run(["git", "check-ref-format", "--branch", name], cwd=str(tmp_path), capture_output=True,
                          text=True)
    by_git = proc.returncode == 0 and proc.stdout.strip() == name and name not in ("HEAD", "@")

    assert Git(tmp_path).valid_branch(name) == by_git


def test_ls_remote_lists_an_annotated_tag_once_without_its_peeled_line(tmp_path):
    repo = tmp_path / "repo"
    git(tmp_path, "init", "--quiet", str(repo))
    git(repo, "commit", "--quiet", "--allow-empty", "-m", "one")
    git(repo, "tag", "-a", "-m", "t", "tagx")
    git(repo, "update-ref", "refs/continuity/locks/pipeline", git(repo, "rev-parse", "tagx"))

    refs = Git(tmp_path).ls_remote(str(repo), "refs/continuity/locks/*", "refs/tags/*")

    assert refs == {"refs/continuity/locks/pipeline": git(repo, "rev-parse", "tagx"),
                    "refs/tags/tagx": git(repo, "rev-parse", "tagx")}


# -- running commands ------------------------------------------------------------


def test_a_command_that_passes_reports_its_output_tail(tmp_path):
    out = _Sink()
    result = run_shell("echo one; echo two", str(tmp_path), out=out)
    assert result.ok and result.exit_code == 0
    assert result.tail == "one\ntwo\n" == out.text


def test_a_timeout_kills_the_whole_process_group(tmp_path, monkeypatch):
    monkeypatch.setenv("CONTINUITY_KILL_GRACE", "0.5")  # the shell ignores SIGTERM: SIGKILL after the grace
    script = "sleep 300 & echo $! > child.pid; trap '' TERM; sleep 300"
    start = time.monotonic()
    result = run_shell(script, str(tmp_path), timeout=0.5, out=_Sink())
    assert result.timed_out and not result.ok and result.exit_code is None
    assert time.monotonic() - start < 4.5  # less than the default grace of 5s: the variable was read
    child = int((tmp_path / "child.pid").read_text())
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(child, 0)
            time.sleep(0.05)


def test_the_kill_grace_is_read_from_the_environment_at_each_kill(monkeypatch):
    from continuity._proc import _grace

    assert _grace() == 5.0
    for value, grace in (("0.2", 0.2), ("0", 0.0), ("30", 30.0)):
        monkeypatch.setenv("CONTINUITY_KILL_GRACE", value)
        assert _grace() == grace
    for wrong in ("soon", "", "-1", "nan", "inf", "1e9"):
        monkeypatch.setenv("CONTINUITY_KILL_GRACE", wrong)
        assert _grace() == 5.0, wrong


def test_output_that_is_not_utf8_does_not_break_the_run(tmp_path):
    result = run_shell("printf '\\377\\376 bytes\\n'; exit 4", str(tmp_path), out=_Sink())
    assert result.exit_code == 4 and "bytes" in result.tail


class _Sink:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_importing_continuity_does_not_import_heavy_libraries():
    code = "import sys, continuity; print(sorted(m for m in ('docker', 'requests', 'git', 'smtplib', 'urllib.request', 'xml.etree.ElementTree') if m in sys.modules))"
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_background_process_left_by_a_command_is_stopped_when_it_exits(tmp_path):
    start = time.monotonic()
    result = run_shell("sleep 300 & echo $! > left.pid; echo done", str(tmp_path), out=_Sink())
    assert result.ok and result.tail == "done\n"
    assert time.monotonic() - start < 3
    left = int((tmp_path / "left.pid").read_text())
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(left, 0)
            time.sleep(0.05)


@pytest.mark.parametrize("value", ["nan", "inf", float("inf")])
def test_timeouts_must_be_finite(value):
    with pytest.raises(ConfigError):
        cfg.parse({"check_timeout": value})


def test_no_task_takes_h_for_an_option_of_its_own():
    """`fab continuity.TASK -h` shows the help: Invoke hands out short flags, and none may be -h."""
    import continuity

    def tasks(collection):
        yield from collection.tasks.values()
        for sub in collection.collections.values():
            yield from tasks(sub)

    taken = sorted("{}: --{}".format(t.name, arg.name) for t in tasks(continuity.ns) for arg in copy.deepcopy(t).get_arguments()
                   if "h" in arg.names)
    assert taken == []


# -- the checkout ------------------------------------------------------------------


def test_a_block_that_checks_nothing_out_asks_git_nothing_about_the_checkout(tmp_path, monkeypatch):
    from continuity.workspace import open_workspace, restored_head

    project = Project(tmp_path).create()
    ws = open_workspace(str(project.dev))
    started = _spawned(monkeypatch, ws.git)

    with restored_head(ws, say=lambda text: None):
        pass

    assert started == []


def test_head_is_put_back_after_checkouts_in_nested_blocks(tmp_path, monkeypatch):
    from continuity.workspace import open_workspace, restored_head

    project = Project(tmp_path).create()
    older = project.push_to("master", "older", older="1\n")
    project.push_to("master", "newer", newer="2\n")
    git(project.dev, "checkout", "--quiet", "master")
    git(project.dev, "reset", "--quiet", "--hard", "origin/master")
    ws = open_workspace(str(project.dev))
    head = ws.git.commit("HEAD")

    with restored_head(ws, say=lambda text: None):
        with restored_head(ws, say=lambda text: None):
            pass  # the inner block checks nothing out: the outer one still notes where HEAD was
        ws.git.checkout(older)
        assert ws.git.commit("HEAD") == older

    assert ws.git.commit("HEAD") == head
    assert git(project.dev, "symbolic-ref", "HEAD") == "refs/heads/master"
    assert ws.git.before_checkout == []


# -- waiting for a child -------------------------------------------------------------


def test_waiting_for_a_child_is_woken_by_its_exit_not_by_polling(monkeypatch):
    from continuity import _child

    def no_polling(seconds):
        raise AssertionError("Popen.wait(timeout) polls with time.sleep; _child.wait must not")

    fast = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    slow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    monkeypatch.setattr(subprocess.time, "sleep", no_polling)
    try:
        assert _child.wait(fast, 30) == 3
        assert _child.wait(fast, 30) == 3  # reaped already: the same answer
        with pytest.raises(subprocess.TimeoutExpired):
            _child.wait(slow, 0.2)
    finally:
        slow.kill()
        slow.wait()
