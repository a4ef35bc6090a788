"""What a Docker build sends, and the content key of it.

The build context is every file under the context directory that
``.dockerignore`` does not exclude, plus the Dockerfile and ``.dockerignore``
themselves (the Docker CLI always sends those two), but never a ``.git``
directory at the top of the context. `scan` walks the context
once, hashes every file it would send (streamed in chunks) and combines the
hashes with the Dockerfile and the build arguments into the content key.
`write_tar` makes the context sent to the engine from exactly that list, so
the key describes what was built, and an excluded file can never reach it.

``.dockerignore`` follows Docker's rules: one pattern per line, ``#`` starts a
comment line, ``*`` and ``?`` stay within a path segment, ``**`` spans any
number of segments, ``[...]`` classes and ``\\`` escapes work, a leading
``/`` means the context root. A pattern that matches a directory excludes
everything below it; a ``!`` pattern includes again what an earlier one
excluded, and the last pattern that matches wins. As with BuildKit (and
unlike the classic builder), a ``!`` pattern with wildcards also reaches into
excluded directories.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import stat
from collections.abc import Iterable, Sequence
from typing import IO, TYPE_CHECKING

from .._dataclass import dataclass
from ..errors import UsageError

if TYPE_CHECKING:
    import tarfile

__all__ = ["Pattern", "Matcher", "BuildContext", "parse_ignore", "scan", "write_tar", "key_tag", "KEY_LABEL",
           "CHECK_LABEL"]

KEY_LABEL = "continuity.key"  # on images: the content key they were built for
CHECK_LABEL = "continuity.check"  # on check containers: the check's name
_KEY_TAG_LENGTH = 32  # hex digits of the key in the tag: 128 bits

KEY_VERSION = b"continuity-docker-key/1\0"
_CHUNK = 1 << 20
_OUTSIDE_DOCKERFILE = ".continuity.Dockerfile"
_WILDCARDS = re.compile(r"[*?\[\\]")


@dataclass(frozen=True)
class Pattern:
    text: str  # cleaned, without the "!"
    exclusion: bool  # a "!" pattern: includes again
    regex: re.Pattern[str]

    @property
    def literal_prefix(self) -> str:
        """The part before the first wildcard: what a match must start with."""
        match = _WILDCARDS.search(self.text)
        return self.text[: match.start()] if match else self.text


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the context, "/"-separated
    kind: str  # "f" file, "x" executable file, "l" symlink, "d" directory
    digest: str  # sha256 of the content (of the link target for a symlink), "" for a directory


@dataclass(frozen=True)
class BuildContext:
    root: str  # the context directory, absolute
    dockerfile: str  # the Dockerfile, absolute
    dockerfile_name: str  # its name inside the context sent to the engine
    entries: tuple[Entry, ...]  # sorted by path
    ignored: int  # files and directories .dockerignore left out
    key: str  # sha256 hex of everything the build depends on

    @property
    def files(self) -> int:
        return sum(1 for entry in self.entries if entry.kind != "d")


def parse_ignore(text: str, where: str = ".dockerignore") -> tuple[Pattern, ...]:
    """The patterns of a ``.dockerignore`` file, in order."""
    patterns = []
    for number, line in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        if line.startswith("#"):
            continue
        line = line.strip()
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
            if not line:
                raise UsageError("{} line {}: '!' must be followed by a pattern".format(where, number))
        if line:
            cleaned = _clean(line)
            patterns.append(Pattern(cleaned, exclusion, _compile(cleaned, where, number)))
    return tuple(patterns)


def _clean(pattern: str) -> str:
    """Go's filepath.Clean, then a leading "/" dropped, as Docker does."""
    clean = posixpath.normpath(pattern)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    return clean[1:] if len(clean) > 1 and clean.startswith("/") else clean


def _compile(pattern: str, where: str, number: int) -> re.Pattern[str]:
    """Docker's translation of a pattern into a regular expression."""
    out, i, n = ["^"], 0, len(pattern)
    while i < n:
        char, i = pattern[i], i + 1
        if char == "*" and i < n and pattern[i] == "*":
            i += 1
            if i < n and pattern[i] == "/":
                i += 1
            out.append(".*" if i == n else "(?:.*/)?")
        elif char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char in ".+()|{}$":
            out.append("\\" + char)
        elif char == "\\":
            out.append(re.escape(pattern[i]) if i < n else "\\\\")
            i += 1
        else:
            out.append(char)
    try:
        return re.compile("".join(out) + "$", re.DOTALL)
    except re.error as exc:
        raise UsageError("{} line {}: {!r} is not a valid pattern ({})".format(where, number, pattern, exc)) from None


class Matcher:
    """Decides what ``.dockerignore`` excludes, walking top-down.

    ``mask`` has bit ``i`` set when pattern ``i`` matched a parent directory:
    a pattern excludes (or includes again) a path when it matches the path or
    any directory above it.
    """

    def __init__(self, patterns: Iterable[Pattern]) -> None:
        self.patterns = tuple(patterns)
        self.exclusions = tuple(p for p in self.patterns if p.exclusion)

    def excluded(self, path: str, mask: int = 0) -> bool:
        matched = False
        for index, pattern in enumerate(self.patterns):
            if pattern.exclusion == matched and ((mask >> index) & 1 or pattern.regex.match(path)):
                matched = not pattern.exclusion
        return matched

    def child_mask(self, mask: int, directory: str) -> int:
        for index, pattern in enumerate(self.patterns):
            if not (mask >> index) & 1 and pattern.regex.match(directory):
                mask |= 1 << index
        return mask

    def may_include_below(self, directory: str) -> bool:
        """Could a "!" pattern include something inside excluded ``directory``?"""
        below = directory + "/"
        for pattern in self.exclusions:
            prefix = pattern.literal_prefix
            if prefix.startswith(below) or below.startswith(prefix):
                return True
        return False


def scan(context_dir: str, dockerfile: str, build_args: Sequence[tuple[str, str]] = ()) -> BuildContext:
    """The `BuildContext` of ``context_dir`` with ``dockerfile`` and ``build_args``."""
    root = os.path.abspath(context_dir)
    dockerfile = os.path.abspath(dockerfile)
    if not os.path.isdir(root):
        raise UsageError("continuity.docker.context: {} is not a directory".format(root))
    if not os.path.isfile(dockerfile):
        raise UsageError("continuity.docker.dockerfile: there is no Dockerfile at {}".format(dockerfile))
    relative = os.path.relpath(dockerfile, root).replace(os.sep, "/")
    inside = not (relative == ".." or relative.startswith("../"))
    always = {".dockerignore", relative} if inside else {".dockerignore"}
    matcher = Matcher(_read_ignore(root))
    found, ignored = _walk(root, matcher, always)
    if inside and relative not in found:  # below a directory .dockerignore left out
        found[relative] = "f"
    entries = tuple(_entry(root, path, found[path]) for path in sorted(found))
    dockerfile_digest = _file_digest(dockerfile)[0]
    key = _key(entries, dockerfile_digest, build_args)
    return BuildContext(root, dockerfile, relative if inside else _OUTSIDE_DOCKERFILE, entries, ignored, key)


def _read_ignore(root: str) -> tuple[Pattern, ...]:
    path = os.path.join(root, ".dockerignore")
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return parse_ignore(f.read(), path)
    except FileNotFoundError:
        return ()


def _walk(root: str, matcher: Matcher, always: Iterable[str]) -> tuple[dict[str, str], int]:
    """{relative path: kind} of what the build sends, and how many were left out."""
    found: dict[str, str] = {}
    ignored = 0
    pending = [("", 0)]
    while pending:
        directory, mask = pending.pop()
        with os.scandir(os.path.join(root, directory) if directory else root) as listing:
            children = list(listing)
        for child in children:
            if not directory and child.name == ".git":
                continue  # changes with every fetch: it would make every key new
            path = directory + "/" + child.name if directory else child.name
            excluded = path not in always and matcher.excluded(path, mask)
            kind = _kind(child)
            if kind == "d":
                if not excluded:
                    found[path] = kind
                if not excluded or matcher.may_include_below(path):
                    pending.append((path, matcher.child_mask(mask, path)))
                    continue
            if excluded or kind is None:
                ignored += 1
            else:
                found[path] = kind
    return found, ignored


def _kind(entry: os.DirEntry[str]) -> str | None:
    if entry.is_symlink():
        return "l"
    if entry.is_dir(follow_symlinks=False):
        return "d"
    if entry.is_file(follow_symlinks=False):
        return "f"  # or "x": `_entry` looks at the mode when it reads the file
    return None  # sockets, pipes, devices: never sent


def _entry(root: str, path: str, kind: str) -> Entry:
    full = os.path.join(root, path)
    if kind == "d":
        return Entry(path, kind, "")
    if kind == "l":
        return Entry(path, kind, hashlib.sha256(os.fsencode(os.readlink(full))).hexdigest())
    digest, mode = _file_digest(full)
    return Entry(path, "x" if mode & stat.S_IXUSR else "f", digest)


def _file_digest(path: str) -> tuple[str, int]:
    """(sha256 hex of the content, mode), reading the file in chunks (os.read: no buffering layer)."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        mode = os.fstat(fd).st_mode
        chunk = os.read(fd, _CHUNK)
        while chunk:
            digest.update(chunk)
            chunk = os.read(fd, _CHUNK)
    finally:
        os.close(fd)
    return digest.hexdigest(), mode


def _key(entries: Sequence[Entry], dockerfile_digest: str, build_args: Sequence[tuple[str, str]]) -> str:
    digest = hashlib.sha256(KEY_VERSION)
    digest.update(json.dumps({"dockerfile": dockerfile_digest, "build_args": list(build_args)}).encode() + b"\0")
    for entry in entries:
        digest.update("{}\0{}\0{}\0".format(entry.kind, entry.path, entry.digest).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def key_tag(key: str) -> str:
    """The tag that marks an image built from content ``key``."""
    return "key-" + key[:_KEY_TAG_LENGTH]


def write_tar(context: BuildContext, fileobj: IO[bytes]) -> IO[bytes]:
    """Write the context the engine gets (an uncompressed tar) to ``fileobj``."""
    import tarfile  # only a build needs it; `fab --list` should not pay for it

    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in context.entries:
            _add(tar, context.root, entry)
        if context.dockerfile_name == _OUTSIDE_DOCKERFILE:
            _add(tar, os.path.dirname(context.dockerfile), Entry(os.path.basename(context.dockerfile), "f", ""),
                 name=_OUTSIDE_DOCKERFILE)
    fileobj.seek(0)
    return fileobj


def _add(tar: tarfile.TarFile, root: str, entry: Entry, name: str | None = None) -> None:
    """Add one entry with normalized owner and permissions (builds do not depend on umask)."""
    import tarfile

    full = os.path.join(root, entry.path)
    info = tarfile.TarInfo(name or entry.path)
    info.uid = info.gid = 0
    if entry.kind == "d":
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        info.mtime = os.lstat(full).st_mtime
        tar.addfile(info)
    elif entry.kind == "l":
        info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, os.readlink(full)
        info.mtime = os.lstat(full).st_mtime
        tar.addfile(info)
    else:
        with open(full, "rb") as f:
            status = os.fstat(f.fileno())
            info.size, info.mtime = status.st_size, status.st_mtime
            info.mode = 0o755 if entry.kind == "x" else 0o644
            tar.addfile(info, f)
