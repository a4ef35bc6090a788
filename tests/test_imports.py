"""What ``import continuity`` and ``fab --list`` load: only what a task at hand needs.

Every ``fab`` start imports continuity, so what its modules do at import is
paid by each run (``fab --list`` included). The heavy libraries are imported
in the function that uses them; the dataclasses are made on their first
instance (continuity/_dataclass.py); these tests keep it that way without
timing anything.
"""

import dataclasses
import json
import os
import re
import subprocess
import sys
import threading

import pytest

from conftest import FAB
from continuity import _dataclass, junit

#: Loaded only by the task that talks to what they reach (or by nothing of ours).
NOT_AT_IMPORT = (
    "docker", "requests", "urllib3",  # the Docker SDK: continuity.docker.engine, when a task talks to the engine
    "smtplib", "email.mime", "aiosmtpd",  # e-mail notifications, when one is sent
    "xml.etree", "xml.dom",  # the JUnit report, when one is written
    "http.client", "urllib.request",  # webhooks, when one is posted
    "tarfile",  # a Docker build's context, when one is sent
    "uuid",  # a lock's run id (uuid imports platform), when a lock is taken
)

FABFILE = '''\
import atexit, json, os, sys

from fabric import task
from invoke import Collection

import continuity


@task
def deploy(c, environment):
    """Deploy nothing."""


ns = Collection(deploy, continuity)
atexit.register(lambda: json.dump(sorted(sys.modules), open(os.environ["MODULES_OUT"], "w")))
'''


def loaded(modules, names=NOT_AT_IMPORT):
    return sorted(name for name in names if name in modules or any(m.startswith(name + ".") for m in modules))


def python(code):
    """What ``code``, run in a new interpreter, prints as JSON."""
    proc = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_import_continuity_loads_none_of_the_heavy_libraries():
    modules = python("import continuity, json, sys; print(json.dumps(sorted(sys.modules)))")
    assert "continuity.pipeline" in modules
    assert loaded(set(modules)) == []


def test_fab_list_with_continuity_loads_none_of_the_heavy_libraries(tmp_path):
    (tmp_path / "fabfile.py").write_text(FABFILE)
    out = tmp_path / "modules.json"
    proc = subprocess.run([FAB, "--list"], cwd=tmp_path, env=dict(os.environ, MODULES_OUT=str(out)),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "continuity.pipeline" in proc.stdout
    assert loaded(set(json.loads(out.read_text()))) == []


def test_import_continuity_makes_only_the_dataclasses_it_instantiates():
    made = python(
        "import continuity, gc, json\n"
        "classes = [o for o in gc.get_objects() if isinstance(o, type) and o.__module__.startswith('continuity')]\n"
        "print(json.dumps([c.__module__ + '.' + c.__qualname__ for c in classes if '__dataclass_fields__' in vars(c)]))"
    )
    # The settings, records and results are made when a task runs, not when fab starts.
    for name in ("continuity.config.model.Settings", "continuity.record.RunRecord", "continuity._proc.Result",
                 "continuity.ledger.Entry", "continuity.docker.settings.DockerSettings"):
        assert name not in made


def test_every_deferred_dataclass_is_a_valid_dataclass_once_made():
    _dataclass.make_all()  # a definition dataclasses refuses fails here, not in a user's run
    assert _dataclass._pending == {}
    import continuity.config.model as model

    assert dataclasses.is_dataclass(model.Settings) and dataclasses.is_dataclass(model.Environment)


def test_a_deferred_dataclass_behaves_as_the_standard_one():
    def define(decorator):
        @decorator(frozen=True)
        class Point:
            x: int
            tags: list = dataclasses.field(default_factory=list)

            def __post_init__(self):
                self.tags.append("made")

        @decorator
        class Counter:
            n: int = 0

        class Labelled(Point):
            pass

        return Point, Counter, Labelled

    for Point, Counter, Labelled in (define(_dataclass.dataclass), define(dataclasses.dataclass)):
        point = Point(1)
        assert repr(point).endswith(".Point(x=1, tags=['made'])")
        assert (point == Point(1), point == Point(2)) == (True, False)
        assert Point.__hash__ not in (None, object.__hash__)  # frozen and eq: hashed by its fields
        with pytest.raises(dataclasses.FrozenInstanceError):
            point.x = 2
        assert dataclasses.replace(point, x=3).x == 3
        assert (Counter(), Counter.__hash__) == (Counter(0), None)
        assert repr(Labelled(4)).endswith(".Labelled(x=4, tags=['made'])")
        with pytest.raises(TypeError, match="missing 1 required positional argument: 'x'"):
            Point()
        with pytest.raises(TypeError, match="positional arguments but 3 were given"):
            Counter(1, 2)


def test_a_deferred_dataclass_first_called_by_many_threads_at_once_gives_each_its_instance():
    @_dataclass.dataclass(frozen=True)
    class Pair:
        a: int
        b: int = 0

    init = Pair.__init__
    barrier = threading.Barrier(8)
    results = []

    def make(n):
        barrier.wait()
        results.append(Pair(n))

    threads = [threading.Thread(target=make, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(pair.a for pair in results) == list(range(8))
    assert Pair.__init__ is not init and Pair not in _dataclass._pending


def test_the_junit_filter_removes_exactly_what_xml_1_0_forbids():
    everything = "".join(map(chr, range(0x110000)))
    allowed = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")  # the XML 1.0 Char rule
    assert re.sub(junit._NOT_XML, "", everything) == allowed.sub("", everything)
