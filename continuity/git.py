"""Git, run as argument lists.

Branch names, remotes and revisions are data: they are passed to ``git`` as
separate arguments, never through a shell, and refs are always spelled in
full (``refs/heads/NAME``) so a name that begins with ``-`` cannot be read as
an option. We call the ``git`` binary directly rather than through GitPython:
everything here is a plumbing command, and a plain subprocess keeps
``import continuity`` light and lets us set timeouts and the environment.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any, Callable, NamedTuple

from . import _child
from .errors import GitError, UsageError

__all__ = ["valid_branch", "Git", "PushResult", "PendingPush", "RefUpdate", "ZERO"]

ZERO = "0" * 40

#: Never let git wait for a human: no credential prompts, no editor, no pager.
_QUIET_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_EDITOR": "true",
    "GIT_MERGE_AUTOEDIT": "no",
    "GIT_PAGER": "cat",
    "LC_ALL": "C",
}


#: How git says "the ref is not what you expected": our lease lost a race.
#: Local checks say "stale info" or "fetch first"; a push that raced another
#: one at the remote's ref lock says "cannot lock ref ... but expected ...".
_CONTENTION = (
    "stale info",
    "fetch first",
    "non-fast-forward",
    "reference already exists",
    "but expected",  # "cannot lock ref 'R': is at X but expected Y"
)


class RefUpdate(NamedTuple):
    """One ref of an atomic push: move ``ref`` to ``new`` ("" = delete) only if it is ``old`` ("" = absent)."""

    ref: str
    new: str
    old: str


#: A ref the remote named in "cannot lock ref 'R': is at X but expected Y" (a race at its ref lock).
_RACED = re.compile(r"cannot lock ref '([^']+)': (?:is at|reference already exists)")


class PushResult:
    """What ``git push --porcelain`` said about each ref.

    ``statuses`` is {ref: flag and summary} from the porcelain lines
    (``*`` new, `` `` moved, ``-`` deleted, ``=`` up to date, ``!`` rejected).
    ``stale`` names the refs whose lease failed: with ``--atomic``, git marks
    a lease that fails on our side "stale info" and every other ref "atomic
    push failed", so a refusal says which ref was not what we expected without
    another connection. A race lost at the remote's own ref lock is named in
    its "cannot lock ref" line.
    """

    def __init__(self, ok: bool, output: str) -> None:
        self.ok = ok  # False: refused because a ref was not what we expected
        self.output = output
        self.statuses: dict[str, str] = {}
        for line in output.splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and len(parts[0]) == 1 and parts[0] in "*+-=! " and ":" in parts[1]:
                self.statuses[parts[1].rsplit(":", 1)[1]] = parts[0] + " " + parts[2]
        self.stale = {ref for ref, status in self.statuses.items()
                      if status.startswith("!") and any(sign in status for sign in _CONTENTION)}
        self.stale.update(_RACED.findall(output))

    @property
    def up_to_date(self) -> bool:
        """Every ref already had the value we pushed (porcelain flag '=')."""
        flags = [line[0] for line in self.output.splitlines() if "\t" in line and line[:1] in "=*+-!"]
        return bool(flags) and all(flag == "=" for flag in flags)


class Git:
    """A repository (the workspace) and how to talk to it."""

    def __init__(self, path: str | os.PathLike[str] = ".", timeout: float = 300) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self.env = dict(os.environ, **_QUIET_ENV)
        self._identity: dict[str, str] | None = None  # computed once: see identity_env
        self._urls: dict[str, str] = {}  # remote -> URL, read once (see remote_url)
        #: How many times `checkout` ran: a task that never checked anything out ran no
        #: build step, check or deploy in the checkout (see `workspace.restored_head`).
        self.checkouts = 0
        #: Called once each, just before the next `checkout` (`workspace.restored_head` reads the
        #: checkout's state there, not before: a run with nothing to do never asks).
        self.before_checkout: list[Callable[[], None]] = []
        self._empty_tree: str | None = None
        #: What a run already learned about commits, so it never asks git twice: the tree of each
        #: commit we know exists (`known`, `tree`), the merge base of each pair asked (`is_ancestor`)
        #: and the commits counted between two (`count`).
        self._trees: dict[str, str] = {}
        self._bases: dict[frozenset[str], str] = {}
        self._counts: dict[str, int] = {}
        self._version: tuple[int, int] | None = None

    def run(self, *args: str, check: bool = True, input: str | None = None,
            env: Mapping[str, str] | None = None, timeout: float | None = None) -> str:
        """Run ``git ARGS`` and return its stripped standard output."""
        proc = self._spawn(args, input, env, timeout)
        if check and proc.returncode != 0:
            raise GitError(_describe(args, proc), args, proc.stderr)
        return proc.stdout.strip()

    def ok(self, *args: str) -> bool:
        """True when ``git ARGS`` exits 0."""
        return self._spawn(args, None, None, None).returncode == 0

    def call_bytes(self, *args: str, input: bytes) -> bytes:
        """Run ``git ARGS`` with ``input`` and return its raw standard output (``cat-file --batch``)."""
        proc = self._spawn(args, input, None, None, raw=True)  # type: ignore[arg-type]
        if proc.returncode:
            raise GitError(_describe(args, proc), args, proc.stderr.decode("utf-8", "replace"))
        return bytes(proc.stdout)

    def call(self, *args: str, env: Mapping[str, str] | None = None,
             timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``git ARGS``; return the CompletedProcess whatever its exit code."""
        return self._spawn(args, None, env, timeout)

    def _spawn(self, args: Sequence[str], input: str | None, env: Mapping[str, str] | None,
               timeout: float | None, raw: bool = False) -> subprocess.CompletedProcess[Any]:
        try:
            return subprocess.run(
                ["git", *args],
                cwd=self.path,
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                text=not raw,  # raw: bytes, so no newline translation turns a '\r' into '\n'
                errors=None if raw else "replace",
                env=dict(self.env, **(env or {})),
                timeout=timeout or self.timeout,
            )
        except subprocess.TimeoutExpired:
            raise GitError(
                "git {} did not finish within {:.0f}s; is the remote reachable? "
                "(raise continuity.git_timeout if it is just slow)".format(args[0], timeout or self.timeout),
                args,
            ) from None
        except FileNotFoundError:
            raise UsageError("git is not installed or not on PATH") from None

    # -- questions ---------------------------------------------------------

    def version(self) -> tuple[int, int]:
        """(major, minor) of the git this instance runs, asked once."""
        if self._version is None:
            match = re.search(r"(\d+)\.(\d+)", self.run("version"))
            self._version = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
        return self._version

    def known(self, commit: str, tree: str) -> None:
        """Remember that ``commit`` (a full SHA) exists here with ``tree``, as ``for-each-ref`` showed it."""
        self._trees[commit] = tree

    def commit(self, rev: str) -> str | None:
        """The full SHA of commit ``rev``, or None when there is none."""
        if rev in self._trees:  # a full SHA we saw as a commit: objects never go away during a run
            return rev
        proc = self._spawn(("rev-parse", "--verify", "--quiet", "--end-of-options", rev + "^{commit}"), None, None, None)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def tree(self, commit: str) -> str:
        """The tree of ``commit``."""
        if commit not in self._trees:
            tree = self.run("rev-parse", "--verify", "--end-of-options", commit + "^{tree}")
            if not _full_sha(commit):
                return tree
            self._trees[commit] = tree
        return self._trees[commit]

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        if not (_full_sha(ancestor) and _full_sha(descendant)):  # a ref can move: ask git each time
            proc = self._spawn(("merge-base", "--is-ancestor", ancestor, descendant), None, None, None)
            if proc.returncode > 1:
                raise GitError(_describe(("merge-base", "--is-ancestor", ancestor, descendant), proc))
            return proc.returncode == 0
        if ancestor == descendant:
            return True  # a commit is its own ancestor: no process to learn it
        # One `git merge-base A B` answers both directions: A is an ancestor of B exactly when it is
        # their merge base (then the only best one). The pipeline asks one pair both ways, then again.
        pair = frozenset((ancestor, descendant))
        if pair not in self._bases:
            proc = self._spawn(("merge-base", ancestor, descendant), None, None, None)
            if proc.returncode > 1 or (proc.returncode == 0 and not _full_sha(proc.stdout.strip())):
                raise GitError(_describe(("merge-base", ancestor, descendant), proc))
            self._bases[pair] = proc.stdout.strip()  # "" (exit 1): no common history
        return self._bases[pair] == ancestor

    def head(self) -> tuple[str | None, str | None]:
        """(branch name or None, commit SHA) of the work tree's HEAD."""
        sha = self.commit("HEAD")
        branch = self._spawn(("symbolic-ref", "--quiet", "HEAD"), None, None, None)
        name = branch.stdout.strip() if branch.returncode == 0 else None
        return name, sha

    def dirty_files(self) -> list[str]:
        """Tracked files with changes in the work tree or the index."""
        proc = self.call("status", "--porcelain", "--untracked-files=no", "--ignore-submodules")
        if proc.returncode:
            raise GitError(_describe(("status",), proc))
        return [line[3:] for line in proc.stdout.splitlines() if line.strip()]

    def log(self, rev_range: str, limit: int | None = None) -> list[tuple[str, str, str]]:
        """[(sha, subject, author)] of the commits in ``rev_range`` (``A..B``); author is "name <email>"."""
        args = ["--max-count={}".format(limit)] if limit else []
        return [(sha, subject, "{} <{}>".format(name, email))
                for sha, subject, name, email in self._log_fields(*args, rev_range)]

    def commits(self, rev_range: str) -> list[tuple[str, str, str, str]]:
        """[(sha, subject, author name, author email)] in ``rev_range``, newest first."""
        return self._log_fields("--no-merges", rev_range)

    def _log_fields(self, *args: str) -> list[tuple[str, str, str, str]]:
        """[(sha, subject, author name, author email)] from ``git log -z``, as git stored them.

        Fields and records are split on NUL only, from the raw bytes: a subject
        or a name may hold a carriage return, a form feed, U+2028 or U+001E
        (git keeps them all), which line-based parsing splits and text mode
        rewrites.
        """
        full = ("log", "-z", "--format=%H%x00%s%x00%an%x00%ae", *args, "--")
        raw = self._spawn(full, None, None, None, raw=True)
        proc = subprocess.CompletedProcess(full, raw.returncode, *(
            data.decode("utf-8", "replace") for data in (raw.stdout, raw.stderr)))
        if proc.returncode:
            raise GitError(_describe(full, proc), full, proc.stderr)
        fields = proc.stdout.split("\0")
        return [(fields[i], fields[i + 1], fields[i + 2], fields[i + 3]) for i in range(0, len(fields) - 3, 4)]

    def count(self, rev_range: str) -> int:
        """How many commits ``rev_range`` (``A..B``) has. Between two full SHAs, one process counts
        both ways (``status`` asks both), and neither is asked again."""
        old, _, new = rev_range.partition("..")
        if not (_full_sha(old) and _full_sha(new)):
            return int(self.run("rev-list", "--count", rev_range, "--") or 0)
        if rev_range not in self._counts:
            behind, ahead = self.run("rev-list", "--count", "--left-right", "{}...{}".format(old, new), "--").split()
            self._counts[rev_range] = int(ahead)
            self._counts["{}..{}".format(new, old)] = int(behind)
        return self._counts[rev_range]

    def changed_files(self, old: str, new: str) -> list[str]:
        out = self.run("diff", "--name-only", "--no-renames", "-z", old, new, "--")
        return [path for path in out.split("\0") if path]

    def valid_branch(self, name: str) -> bool:
        """True when git takes ``name`` as a branch name, as ``git branch NAME`` would (`valid_branch`)."""
        return valid_branch(name)

    def remotes(self) -> list[str]:
        return self.run("remote").split()

    def remote_url(self, remote: str) -> str:
        """``remote``'s URL as configured ("" when it has none); read once per run."""
        if remote not in self._urls:
            self._urls[remote] = self.run("config", "--get", "remote.{}.url".format(remote), check=False)
        return self._urls[remote]

    def ls_remote(self, remote: str, *refs: str) -> dict[str, str]:
        """{ref: sha} for the refs on the remote (all refs when none given).

        Without the peeled ``REF^{}`` lines git adds for an annotated tag:
        they are not refs, and a caller listing refs would take one for a
        ref of its own.
        """
        out = self.run("ls-remote", remote, *refs)
        pairs = (line.split("\t", 1) for line in out.splitlines() if "\t" in line)
        return {ref: sha for sha, ref in pairs if not ref.endswith("^{}")}

    # -- actions -----------------------------------------------------------

    def fetch(self, remote: str, *refspecs: str) -> None:
        self.run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", remote, *refspecs)

    def fetch_objects(self, remote: str, *refs: str) -> None:
        """Fetch what ``refs`` point to without creating or moving any local ref."""
        self.run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--refmap=", remote, *refs)

    def checkout(self, sha: str, force: bool = False) -> None:
        """Check out ``sha`` detached, with its submodules at the commits it names."""
        while self.before_checkout:
            self.before_checkout.pop(0)()
        self.checkouts += 1
        proc = self.call("checkout", "--quiet", *(["--force"] if force else []), "--detach", sha)
        if proc.returncode:
            in_the_way = [line.strip() for line in proc.stderr.splitlines() if line.startswith("\t")]
            if in_the_way:
                raise GitError(
                    "cannot check out {}: untracked files are in the way: {}; remove them, or commit them "
                    "on development".format(sha[:12], ", ".join(in_the_way[:10])), ("checkout",), proc.stderr)
            raise GitError(_describe(("checkout",), proc), ("checkout",), proc.stderr)
        if os.path.exists(os.path.join(self.path, ".gitmodules")):
            self.run("submodule", "--quiet", "update", "--init", "--recursive", "--checkout", "--force")

    def push(self, remote: str, updates: Iterable[tuple[str, str]],
             leases: Iterable[tuple[str, str]] = ()) -> PushResult:
        """Push ``updates`` [(sha or "", ref)] atomically, each guarded by a lease.

        ``leases`` is [(ref, expected sha or "")]: the remote ref must have that
        value ("" = must not exist) or nothing is pushed. This is git's own
        compare-and-swap, done by the remote under its ref lock.
        """
        args = _push_args(remote, updates, leases)
        proc = self._spawn(args, None, None, None)
        return _push_result(remote, args, proc)

    def transact(self, remote: str, updates: Iterable[RefUpdate]) -> PushResult:
        """Push ``updates`` (`RefUpdate`) in one atomic push: all of them, or none when one is stale."""
        updates = list(updates)
        return self.push(remote, [(u.new, u.ref) for u in updates], leases=[(u.ref, u.old) for u in updates])

    def start_transaction(self, remote: str, updates: Iterable[RefUpdate],
                          timeout: float | None = None) -> PendingPush:
        """`transact`, started as `start_push` starts a push (in a session of its own)."""
        updates = list(updates)
        return self.start_push(remote, [(u.new, u.ref) for u in updates], leases=[(u.ref, u.old) for u in updates],
                               timeout=timeout)

    def start_push(self, remote: str, updates: Iterable[tuple[str, str]], leases: Iterable[tuple[str, str]] = (),
                   timeout: float | None = None) -> PendingPush:
        """Start the push `push` would make; return a `PendingPush` to wait on.

        For pushes whose outcome must be known even when we are interrupted
        (the lock pushes): git runs in a session of its own, so a SIGTERM or
        Ctrl-C sent to our process group does not cut it off mid-flight.
        """
        return PendingPush(self, remote, _push_args(remote, updates, leases), timeout or self.timeout)

    def commit_tree(self, tree: str, *options: str) -> str:
        """``git commit-tree TREE OPTIONS`` (``-p``, ``-m``): our commits (locks, ledger, results, merges).

        The first one is tried with git's own identity: when git has one, as
        it almost always does, no process is spent asking (`identity_env`).
        """
        args = ("commit-tree", tree, *options)
        if self._identity is None:
            proc = self._spawn(args, None, None, None)
            if proc.returncode == 0:
                self._identity = {}  # git's identity works: keep using it
                return proc.stdout.strip()
            if not self.identity_env():  # git had an identity: it failed for another reason
                raise GitError(_describe(args, proc), args, proc.stderr)
        return self.run(*args, env=self.identity_env())

    def empty_tree(self) -> str:
        """The empty tree, written once: lock tokens and ledger entries are commits of it."""
        if self._empty_tree is None:
            self._empty_tree = self.run("hash-object", "-t", "tree", "-w", "--stdin", input="")
        return self._empty_tree

    def cat_batch(self, shas: Sequence[str]) -> dict[str, str]:
        """{sha: content} of the objects ``shas`` (a commit's headers and message, a blob's text), read in one
        ``git cat-file --batch``; a missing object is left out."""
        if not shas:
            return {}
        data = self.call_bytes("cat-file", "--batch", input="".join(sha + "\n" for sha in shas).encode())
        found: dict[str, str] = {}
        at = 0
        for sha in shas:
            end = data.index(b"\n", at)
            header = data[at:end].split()
            at = end + 1
            if len(header) < 3:  # "<sha> missing"
                continue
            size = int(header[2])
            found[sha] = data[at:at + size].decode("utf-8", "replace")
            at += size + 1
        return found

    def identity_env(self) -> dict[str, str]:
        """Fill in a committer identity for our commits when git has none.

        Jenkins agents often have no ``user.name``/``user.email``; git then
        refuses to commit. An identity from git's config or from the
        ``GIT_AUTHOR_*``/``GIT_COMMITTER_*`` variables always wins.
        """
        if self._identity is not None:
            return self._identity
        if self.ok("var", "GIT_COMMITTER_IDENT") and self.ok("var", "GIT_AUTHOR_IDENT"):
            self._identity = {}
            return self._identity
        fallback = {
            "GIT_AUTHOR_NAME": "continuity",
            "GIT_AUTHOR_EMAIL": "continuity@localhost",
            "GIT_COMMITTER_NAME": "continuity",
            "GIT_COMMITTER_EMAIL": "continuity@localhost",
        }
        self._identity = {key: value for key, value in fallback.items() if not self.env.get(key)}
        return self._identity


def _full_sha(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


class PendingPush:
    """A ``git push`` under way, started by `Git.start_push`.

    Call `result` to wait for it; if that is interrupted (SIGTERM, Ctrl-C),
    call `settle`: a push killed after sending its commands may still be
    applied by the remote later, so we wait for git to finish instead.
    ``cut_short`` tells when git did not finish by itself (killed after a
    timeout or by a signal): the remote may then still apply the push.
    """

    def __init__(self, git: Git, remote: str, args: Sequence[str], timeout: float) -> None:
        self.remote, self.args, self.timeout = remote, args, timeout
        self.cut_short = False
        # Files, not pipes: waiting needs no reader, even after an interruption.
        # They live as long as the push, past this method: no `with`.
        self._out: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self._err: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                ["git", *args], cwd=git.path, stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
                env=git.env, start_new_session=True,
            )
        except FileNotFoundError:
            raise UsageError("git is not installed or not on PATH") from None

    def result(self) -> PushResult:
        """Wait for the push; its `PushResult`, or `GitError` as `Git.push` raises."""
        try:
            _child.wait(self._proc, self.timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            raise GitError(
                "git push did not finish within {:.0f}s; is the remote reachable? "
                "(raise continuity.git_timeout if it is just slow)".format(self.timeout), self.args,
            ) from None
        self.cut_short = self._proc.returncode < 0
        return _push_result(self.remote, self.args, self._completed())

    def settle(self, grace: float) -> bool:
        """After an interruption: let git finish, for up to ``grace`` seconds; True when it did."""
        try:
            _child.wait(self._proc, grace)
        except subprocess.TimeoutExpired:
            self._kill()
        finally:
            if self._proc.returncode is None:  # interrupted again: do not leave it running
                self._kill()
            self._close()
        self.cut_short = self.cut_short or self._proc.returncode < 0
        return not self.cut_short

    def _kill(self) -> None:
        self._proc.kill()
        self._proc.wait()
        self.cut_short = True

    def _completed(self) -> subprocess.CompletedProcess[str]:
        output = []
        for stream in (self._out, self._err):
            stream.seek(0)
            output.append(stream.read().decode("utf-8", "replace"))
        self._close()
        return subprocess.CompletedProcess(self.args, self._proc.returncode, *output)

    def _close(self) -> None:
        self._out.close()
        self._err.close()


def _push_args(remote: str, updates: Iterable[tuple[str, str]], leases: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    args = ["push", "--porcelain", "--atomic", "--no-verify"]
    args += ["--force-with-lease={}:{}".format(ref, sha) for ref, sha in leases]
    return tuple(args + [remote] + ["{}:{}".format(sha, ref) for sha, ref in updates])


def _push_result(remote: str, args: Sequence[str], proc: subprocess.CompletedProcess[str]) -> PushResult:
    """`PushResult` of a finished push: ok, refused by a lease, or `GitError`."""
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode == 0:
        return PushResult(True, output)
    if any(sign in output for sign in _CONTENTION):
        return PushResult(False, output)
    raise GitError(_refused(remote, output) or _describe(args, proc), args, proc.stderr)


def _refused(remote: str, output: str) -> str | None:
    """What the remote said when it refused a push (a hook, permissions), in one line."""
    refused = [line.split("\t")[-1].strip() for line in output.splitlines() if line.startswith("!")]
    said = [line[len("remote:"):].strip() for line in output.splitlines() if line.startswith("remote:")]
    said = [line for line in said if line]
    if not refused and not said:
        return None
    text = "{} refused the push".format(remote)
    if refused:
        text += ": " + "; ".join(refused)
    errors = [line for line in said if line.startswith(("error:", "fatal:"))]
    if said:
        text += "; it said: " + " / ".join(errors[:2] or said[-3:])
    return text


def _describe(args: Sequence[str], proc: subprocess.CompletedProcess[Any]) -> str:
    lines = [line.strip() for line in (proc.stderr or proc.stdout or "").strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("fatal:", "error:"))]
    detail = (errors or lines or ["exit code {}".format(proc.returncode)])[0]
    return "git {} failed: {}".format(args[0], detail)


#: Characters no ref name may hold (git-check-ref-format(1), rules 4, 5 and 10).
_REF_FORBIDDEN = frozenset(" ~^:?*[\\\x7f") | frozenset(chr(code) for code in range(32))


def valid_branch(name: str) -> bool:
    """True when git takes ``name`` as a branch name, as ``git branch NAME`` would.

    The rules of git-check-ref-format(1) for ``refs/heads/NAME``, checked
    here rather than with one ``git check-ref-format`` process per name
    (tests/test_units.py holds the two to the same answers), plus what
    ``--branch`` adds: not ``-x`` (read as an option), ``HEAD`` or ``@``
    (read as HEAD in a revision), nor ``@{...}`` (a revision, not a name).
    """
    if not name or name.startswith("-") or name in ("HEAD", "@"):
        return False
    if name.endswith((".", "/")) or "@{" in name or ".." in name or any(c in _REF_FORBIDDEN for c in name):
        return False
    return all(part and not part.startswith(".") and not part.endswith(".lock") for part in name.split("/"))
