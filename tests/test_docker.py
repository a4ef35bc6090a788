"""continuity.docker against a real engine, real registries and a real sshd, all on 127.0.0.1.

The engine tests use the session fixtures of tests/docker_services.py: they
skip with the reason when no engine can run (CONTINUITY_STRICT_SKIPS=1 makes
that a failure). The settings and .dockerignore tests need no engine.
"""

import io
import re
import signal
import tarfile
import textwrap
import time
import uuid

import pytest
from invoke import Config, Context

import continuity
from conftest import FABFILE, assert_user_error, git, run_fab
from continuity import config as _config
from continuity import docker as cdocker
from continuity.docker.context import Matcher, parse_ignore, scan, write_tar
from continuity.errors import ConfigError, ContinuityError, DeployError, UsageError
from continuity.merge import Candidate
from continuity.report import Reporter
from continuity.workspace import open_workspace

pytest_plugins = ["docker_services"]  # docker_engine, docker_label, base_image, registry, auth_registry

# Until continuity/__init__.py adds it, the fabfile puts the docker collection under continuity.
DOCKER_FABFILE = FABFILE.replace(
    "ns = Collection(deploy, continuity)",
    "import continuity.docker\n\nif 'docker' not in continuity.ns.collections:\n"
    "    continuity.ns.add_collection(continuity.docker.ns)\n\nns = Collection(deploy, continuity)",
)

DOCKERIGNORE = "# notes are not part of the image\nnotes\n*.md\n!KEEP.md\n"


def unique(prefix):
    return "{}-{}".format(prefix, uuid.uuid4().hex[:8])


# -- settings ------------------------------------------------------------------------


def test_docker_is_off_until_configured_and_can_be_switched_off():
    assert cdocker.parse_settings({}) is None
    assert cdocker.parse_settings(dict(cdocker.COLLECTION_DEFAULTS)) is None
    assert cdocker.parse_settings({"image": "app", "enabled": False}) is None
    assert cdocker.parse_settings({"image": "app", "enabled": "0"}) is None
    assert _config.parse({}).docker is None


def test_every_default_is_a_string_a_boolean_or_none():
    assert all(value is None or isinstance(value, (str, bool)) for value in cdocker.COLLECTION_DEFAULTS.values())


def test_settings_from_yaml_and_from_environment_strings_agree():
    from_yaml = cdocker.parse_settings({
        "image": "127.0.0.1:5000/team/app", "build_args": {"PY": "3.12", "N": 2},
        "checks": ["true", {"name": "unit", "command": ["/bin/app", "--self-test"], "environment": {"A": "1"}, "timeout": 5}],
        "timeout": 30, "push": False,
    })
    from_env = cdocker.parse_settings({
        "image": "127.0.0.1:5000/team/app", "build_args": "PY=3.12\nN=2\n", "checks": "true\n", "timeout": "30",
        "push": "false",
    })
    assert from_yaml.build_args == from_env.build_args == (("N", "2"), ("PY", "3.12"))
    assert from_yaml.checks[0] == from_env.checks[0] == cdocker.DockerCheck("true", "true", (), 30.0)
    assert from_yaml.checks[1] == cdocker.DockerCheck("unit", ("/bin/app", "--self-test"), (("A", "1"),), 5.0)
    assert from_yaml.push is from_env.push is False
    assert from_yaml.registry_host == "127.0.0.1:5000"
    assert cdocker.parse_settings({"image": "team/app"}).registry_host == "docker.io"


@pytest.mark.parametrize("raw, phrase", [
    ({"imgae": "app"}, "continuity.docker.imgae: unknown setting; did you mean 'image'?"),
    ({"push": True}, "continuity.docker.image: set the repository to build and push"),
    ({"image": "app:latest"}, "without a tag or digest"),
    ({"image": "Team/App"}, "is not a valid repository name"),
    ({"image": "app", "context": "/srv"}, "continuity.docker.context must be a relative path"),
    ({"image": "app", "username_env": "REG_USER"}, "set both username_env and password_env"),
    ({"image": "app", "username_env": "U", "password_env": "hunter2!"}, "NAME of an environment variable"),
    ({"image": "app", "checks": [{"command": "true", "timout": 3}]}, "checks[1].timout: unknown setting; did you mean 'timeout'?"),
    ({"image": "app", "checks": ["true", "true"]}, "two checks are named 'true'"),
    ({"image": "app", "build_args": "JUSTANAME"}, "one NAME=value per line"),
    ({"image": "app", "production_tag": "prod tag"}, "not a valid image tag"),
])
def test_a_wrong_docker_setting_is_one_clear_config_error(raw, phrase):
    with pytest.raises(ConfigError) as info:
        cdocker.parse_settings(raw)
    assert phrase in str(info.value)


def test_a_dry_run_names_the_docker_stages_without_asking_the_engine():
    settings = _config.parse({"docker": {"image": "127.0.0.1:5000/app", "context": "app", "checks": ["make test"]}})
    lines = cdocker.pipeline_plan(settings, Candidate("a" * 40, "b" * 40, "a" * 40, True))

    assert lines == {
        "image": ["image 127.0.0.1:5000/app from app/Dockerfile for aaaaaaaaaaaa, unless one with the same content "
                  "key exists"],
        "check": ["docker check $ make test"],
        "publish": ["publish 127.0.0.1:5000/app:aaaaaaaaaaaa once master advanced"],
    }


def test_a_password_variable_that_is_not_set_is_named_and_its_value_never_asked_for(monkeypatch):
    from continuity.docker.engine import Engine

    monkeypatch.setenv("REG_USER", "ci")
    monkeypatch.delenv("REG_PASSWORD", raising=False)
    settings = cdocker.parse_settings({"image": "127.0.0.1:5000/app", "username_env": "REG_USER", "password_env": "REG_PASSWORD"})
    with pytest.raises(UsageError) as info:
        Engine(settings)
    assert "the environment variable REG_PASSWORD is not set" in str(info.value)


# -- .dockerignore and the content key -----------------------------------------------


def make_tree(root, files):
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


def sent(root, dockerfile="Dockerfile"):
    return {entry.path for entry in scan(root, root / dockerfile).entries if entry.kind != "d"}


def test_dockerignore_follows_dockers_rules(tmp_path):
    root = make_tree(tmp_path / "context", {
        "Dockerfile": "FROM scratch\n", "app.py": "", "README.md": "", "docs/KEEP.md": "", "docs/guide.md": "",
        "build/out.o": "", "src/a.pyc": "", "src/deep/b.pyc": "", "src/deep/c.py": "", "secret.txt": "",
        "sub/secret.txt": "", "vendor/lib/keep.cfg": "", "vendor/lib/drop.cfg": "", "tmp1/x": "", "tmpdir/y": "",
        ".git/HEAD": "ref: refs/heads/master\n", "sub/.git": "gitdir: ../.git/modules/sub\n",
        ".dockerignore": textwrap.dedent("""\
            # comments and blank lines are ignored

            *.md
            !docs/KEEP.md
            build/
            **/*.pyc
            /secret.txt
            vendor
            !**/keep.cfg
            tmp?
            """),
    })
    assert sent(root) == {
        ".dockerignore", "Dockerfile", "app.py", "docs/KEEP.md", "docs/guide.md", "src/deep/c.py",
        "sub/secret.txt", "sub/.git", "vendor/lib/keep.cfg", "tmpdir/y",
    }  # never the checkout's own .git: it changes with every fetch


def test_a_pattern_on_a_directory_covers_everything_below_and_the_last_match_wins():
    matcher = Matcher(parse_ignore("docs\n!docs/api\ndocs/api/internal\n"))
    assert matcher.excluded("docs/intro.txt", matcher.child_mask(0, "docs"))
    assert not matcher.excluded("docs/api/x.txt", matcher.child_mask(matcher.child_mask(0, "docs"), "docs/api"))
    deep = matcher.child_mask(matcher.child_mask(matcher.child_mask(0, "docs"), "docs/api"), "docs/api/internal")
    assert matcher.excluded("docs/api/internal/y.txt", deep)
    with pytest.raises(UsageError):
        parse_ignore("!\n")


def test_the_key_changes_with_an_input_but_not_with_an_ignored_file(tmp_path):
    tmp_path = make_tree(tmp_path / "context", {"Dockerfile": "FROM scratch\nCOPY . /\n", ".dockerignore": "notes\n", "app.py": "1", "notes/a": "x"})
    dockerfile = tmp_path / "Dockerfile"
    key = scan(tmp_path, dockerfile).key
    assert scan(tmp_path, dockerfile).key == key
    (tmp_path / "notes" / "a").write_text("changed")
    (tmp_path / "notes" / "new").write_text("new")
    assert scan(tmp_path, dockerfile).key == key
    assert scan(tmp_path, dockerfile, (("VERSION", "2"),)).key != key
    (tmp_path / "app.py").chmod(0o755)
    assert scan(tmp_path, dockerfile).key != key
    (tmp_path / "app.py").chmod(0o644)
    assert scan(tmp_path, dockerfile).key == key
    (tmp_path / "app.py").write_text("2")
    assert scan(tmp_path, dockerfile).key != key


def test_the_dockerfile_counts_even_when_ignored_and_the_tar_holds_exactly_what_was_hashed(tmp_path):
    tmp_path = make_tree(tmp_path / "context", {"docker/Dockerfile": "FROM scratch\n", ".dockerignore": "docker\n*.log\n", "a.txt": "a", "x.log": ""})
    (tmp_path / "link").symlink_to("a.txt")
    context = scan(tmp_path, tmp_path / "docker" / "Dockerfile")
    assert context.dockerfile_name == "docker/Dockerfile"
    with io.BytesIO() as buffer:
        write_tar(context, buffer)
        with tarfile.open(fileobj=buffer) as tar:
            members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {".dockerignore", "a.txt", "docker/Dockerfile", "link"}
    assert members["link"].issym() and members["link"].linkname == "a.txt"
    assert members["a.txt"].uid == 0 and members["a.txt"].mode == 0o644
    key = context.key
    (tmp_path / "docker" / "Dockerfile").write_text("FROM scratch\nLABEL x=1\n")
    assert scan(tmp_path, tmp_path / "docker" / "Dockerfile").key != key


# -- projects with a Dockerfile ------------------------------------------------------


def docker_project(make_project, base, docker_yaml, dockerfile=None, settings="", **files):
    """A project whose three branches hold a Dockerfile (on ``base``) and a .dockerignore; ``settings``: more
    lines under ``continuity:``."""
    config = "continuity:\n  checks: []\n  auto_deploy: []\n" + settings + "  docker:\n" + textwrap.indent(textwrap.dedent(docker_yaml), "    ")
    project = make_project(config=config, fabfile=DOCKER_FABFILE)
    files.setdefault("Dockerfile", dockerfile or 'FROM {}\nCOPY . /app\nCMD ["sleep", "3600"]\n'.format(base))
    files.setdefault(".dockerignore", DOCKERIGNORE)
    files.setdefault("notes/todo.md", "nothing yet\n")
    project.commit("the image", **files)
    git(project.dev, "push", "--quiet", "origin", *("HEAD:refs/heads/" + b for b in ("master", "development", "production")))
    return project


def containers(client, *labels):
    """Names of the containers that carry all ``labels``.

    The low-level listing: ``containers.list`` inspects each container it
    lists, and one that a test on another worker removes in between is a 404.
    """
    found = client.api.containers(all=True, filters={"label": list(labels)})
    return sorted(name.lstrip("/") for container in found for name in container.get("Names", [])[:1])


def remove_local(client, repository):
    for image in client.images.list(name=repository):
        client.images.remove(image.id, force=True)


def content_key(stdout):
    return re.search(r"content key (\w+)", stdout).group(1)


def test_the_image_is_built_once_and_reused_until_an_input_changes(make_project, base_image, registry, docker_engine):
    image = registry.repository(unique("pipeline"))
    project = docker_project(make_project, base_image, "image: {}\nnetwork: none\n".format(image))
    first = project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()

    built = project.fab(ws, "continuity.pipeline")

    assert built.returncode == 0, built.stdout + built.stderr
    assert "image: building" in built.stdout and "Step 2/4 : COPY . /app" in built.stdout
    assert re.search(r"continuity \| image +ok .* built ", built.stdout)
    assert re.search(r"continuity \| publish +ok .* pushed ", built.stdout)
    first_digest = registry.digest(docker_engine, "{}:{}".format(image, first))
    assert first_digest

    second = project.push_to("development", "notes only", **{"notes/todo.md": "an ignored change\n"})
    reused = project.fab(ws, "continuity.pipeline")

    assert reused.returncode == 0, reused.stdout + reused.stderr
    assert "no build needed" in reused.stdout and "image: building" not in reused.stdout
    assert content_key(reused.stdout) == content_key(built.stdout)
    assert registry.digest(docker_engine, "{}:{}".format(image, second)) == first_digest

    remove_local(docker_engine, image)  # as on another build machine: the registry has it
    third = project.push_to("development", "notes again", **{"notes/todo.md": "another ignored change\n"})
    pulled = project.fab(ws, "continuity.pipeline")

    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert "the registry has" in pulled.stdout and "image: building" not in pulled.stdout
    assert registry.digest(docker_engine, "{}:{}".format(image, third)) == first_digest

    fourth = project.push_to("development", "an input changes", **{"app.txt": "version 2\n"})
    rebuilt = project.fab(ws, "continuity.pipeline")

    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "image: building" in rebuilt.stdout
    assert content_key(rebuilt.stdout) != content_key(built.stdout)
    assert registry.digest(docker_engine, "{}:{}".format(image, fourth)) not in (None, first_digest)


def test_a_failing_check_in_the_container_leaves_master_untouched_and_no_container_behind(
        make_project, base_image, registry, docker_engine, docker_label):
    image = registry.repository(unique("failing"))
    project = docker_project(make_project, base_image, """\
        image: {}
        network: none
        checks:
          - name: app-present
            command: test -f /app/app.txt
          - name: widget
            command: echo broken-in-image; exit 4
        """.format(image))
    candidate = project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    before = project.refs()

    proc = project.fab(ws, "continuity.pipeline")

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "check 'widget' exited with code 4 in a container of" in proc.stderr
    assert "broken-in-image" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "result: FAILED: master untouched" in proc.stdout
    assert project.refs() == before
    assert registry.digest(docker_engine, "{}:{}".format(image, candidate)) is None
    for check in ("app-present", "widget"):  # other workers' checks may run meanwhile: only this test's
        assert containers(docker_engine, docker_label, "continuity.check=" + check) == []


def test_ctrl_c_during_a_check_in_the_container_removes_the_container(
        make_project, base_image, registry, docker_engine, docker_label):
    image = registry.repository(unique("interrupted"))
    project = docker_project(make_project, base_image, """\
        image: {}
        network: none
        checks:
          - name: slow
            command: sleep 60
        """.format(image))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    before = project.refs()

    fab = project.popen(ws, "continuity.pipeline")
    deadline = time.monotonic() + 60
    while not containers(docker_engine, docker_label, "continuity.check=slow") and time.monotonic() < deadline:
        assert fab.poll() is None, fab.communicate()
        time.sleep(0.1)
    fab.send_signal(signal.SIGINT)
    out, err = fab.communicate(timeout=60)

    assert fab.returncode == 130, out + err
    assert "interrupted" in err and "Traceback" not in err
    assert containers(docker_engine, docker_label, "continuity.check=slow") == []
    assert project.refs() == before


def test_a_failing_build_names_the_failing_step_and_leaves_master_untouched(make_project, base_image, registry):
    image = registry.repository(unique("broken"))
    dockerfile = "FROM {}\nRUN echo compiling the widget && exit 3\nCOPY . /app\n".format(base_image)
    project = docker_project(make_project, base_image, "image: {}\nnetwork: none\n".format(image), dockerfile=dockerfile)
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    before = project.refs()

    proc = project.fab(ws, "continuity.pipeline")

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "docker build failed at Step 2/4 : RUN echo compiling the widget && exit 3" in proc.stderr
    assert "returned a non-zero code: 3" in proc.stderr
    assert "compiling the widget" in proc.stderr.split("last output:", 1)[1]
    assert "Traceback" not in proc.stderr
    assert project.refs() == before


def test_the_tested_image_is_pushed_with_credentials_from_the_environment_and_the_secret_never_shows(
        make_project, base_image, auth_registry, docker_engine):
    image = auth_registry.repository(unique("private"))
    project = docker_project(make_project, base_image, """\
        image: {}
        network: none
        username_env: REG_USER
        password_env: REG_PASSWORD
        """.format(image))
    candidate = project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    secret = auth_registry.password

    proc = project.fab(ws, "continuity.pipeline", env={"REG_USER": "ci", "REG_PASSWORD": secret})

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert secret not in proc.stdout + proc.stderr
    assert project.ref("master") == candidate
    assert auth_registry.digest(docker_engine, "{}:{}".format(image, candidate))

    wrong = "wrong-" + uuid.uuid4().hex
    project.push_to("development", "notes", **{"notes/todo.md": "ignored: the image is reused\n"})
    before = project.refs()
    refused = project.fab(ws, "continuity.pipeline", env={"REG_USER": "ci", "REG_PASSWORD": wrong})

    assert_user_error(refused, "refused the credentials from $REG_USER and $REG_PASSWORD")
    assert wrong not in refused.stdout + refused.stderr and secret not in refused.stdout + refused.stderr
    assert project.refs() == before


def test_promote_gives_the_tested_digest_the_production_tag_without_rebuilding(
        make_project, base_image, registry, docker_engine):
    image = registry.repository(unique("promote"))
    project = docker_project(make_project, base_image, "image: {}\n".format(image))
    revision = project.ref("master")
    settings = _config.parse({"checks": [], "docker": {"image": image, "network": "none"}})
    ws = open_workspace(str(project.dev))
    rep = Reporter(out=io.StringIO())
    cdocker.pipeline_build(settings, ws, Candidate(revision, revision, revision, True), rep)
    cdocker.pipeline_publish(settings, ws, Candidate(revision, revision, revision, True), rep)
    tested = registry.digest(docker_engine, "{}:{}".format(image, revision))
    remove_local(docker_engine, image)  # promote must fetch the tested bytes, it cannot rebuild them
    said = []
    with pytest.raises(ContinuityError, match="the registry has no image .*:0{40}: the pipeline pushes it"):
        cdocker.promote_image(settings, None, "0" * 40, said.append)

    digest = cdocker.promote_image(settings, ws, revision, said.append)

    assert digest == tested
    deploy_context = Context(Config(overrides={"continuity": {"docker": {"image": image}}}))
    assert cdocker.tested_image(deploy_context, revision) == "{}@{}".format(image, tested)
    assert registry.digest(docker_engine, "{}:production".format(image)) == tested
    assert not any("build" in line for line in said)
    assert cdocker.promote_image(settings, ws, revision, said.append) == tested
    assert "is already" in said[-1]


def test_fab_promote_tags_the_digest_the_pipeline_tested(make_project, base_image, registry, docker_engine):
    image = registry.repository(unique("e2e"))
    project = docker_project(make_project, base_image, "image: {}\nnetwork: none\n".format(image))
    config = "continuity:\n  checks: []\n  auto_deploy: []\n  docker:\n    image: {}\n    network: none\n".format(image)
    dev = project.push_to("development", "feature", feature="x\n", **{"fabric.yaml": config})
    ws = project.workspace()
    pipeline = project.fab(ws, "continuity.pipeline")
    assert pipeline.returncode == 0, pipeline.stderr
    tested = registry.digest(docker_engine, "{}:{}".format(image, dev))
    remove_local(docker_engine, image)

    proc = project.fab(project.workspace(), "continuity.promote", "--yes")

    assert proc.returncode == 0, proc.stderr
    assert project.ref("production") == dev
    assert registry.digest(docker_engine, "{}:production".format(image)) == tested
    assert "building" not in proc.stdout


def test_promote_without_a_tested_image_moves_nothing(make_project, base_image, registry):
    image = registry.repository(unique("untested"))
    project = docker_project(make_project, base_image, "image: {}\nnetwork: none\n".format(image))
    config = "continuity:\n  checks: []\n  auto_deploy: []\n  docker:\n    image: {}\n    network: none\n    push: false\n".format(image)
    project.push_to("development", "no push", **{"fabric.yaml": config})
    ws = project.workspace()
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    before = project.refs()

    dry = project.fab(project.workspace(), "continuity.promote", "--dry-run")
    proc = project.fab(project.workspace(), "continuity.promote", "--yes")

    assert_user_error(dry, "the registry has no image", code=1)
    assert_user_error(proc, "the registry has no image", code=1)
    assert project.refs() == before


# -- the tasks -------------------------------------------------------------------------


def test_the_build_check_and_push_tasks_work_outside_the_pipeline_with_dry_runs(
        make_project, base_image, registry, docker_engine):
    image = registry.repository(unique("tasks"))
    project = docker_project(make_project, base_image, """\
        image: {}
        network: none
        checks:
          - name: app
            command: test -f /app/app.txt && echo app-is-there
        """.format(image))
    ws = project.workspace()
    head = git(ws, "rev-parse", "HEAD")

    def fab(*args, **env):
        proc = run_fab(ws, *args, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    assert "build it" in fab("continuity.docker.build", "--dry-run")
    assert docker_engine.images.list(name=image) == []
    assert "plan: docker check $ echo from-env" in fab(
        "continuity.docker.check", "--dry-run", FABRIC_CONTINUITY_DOCKER_CHECKS="echo from-env")
    assert "image: building" in fab("continuity.docker.build")
    assert "no build needed" in fab("continuity.docker.build")
    assert "app-is-there" in fab("continuity.docker.check")
    assert "plan: push" in fab("continuity.docker.push", "--dry-run")
    assert registry.digest(docker_engine, "{}:{}".format(image, head)) is None
    fab("continuity.docker.push")
    assert registry.digest(docker_engine, "{}:{}".format(image, head))


def test_a_hung_check_in_the_container_is_killed_at_its_timeout_and_removed(
        make_project, base_image, registry, docker_engine, docker_label):
    image = registry.repository(unique("hung"))
    project = docker_project(make_project, base_image, """\
        image: {}
        network: none
        checks:
          - name: hang
            command: sleep 60
            timeout: 1
        """.format(image))
    ws = project.workspace()

    start = time.monotonic()
    proc = run_fab(ws, "continuity.docker.check")

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert time.monotonic() - start < 30
    assert "check 'hang' timed out after 1s" in proc.stderr
    assert containers(docker_engine, docker_label, "continuity.check=hang") == []


def test_an_unreachable_engine_is_one_clear_error(make_project, tmp_path):
    project = make_project(config="continuity:\n  docker:\n    image: app\n", fabfile=DOCKER_FABFILE)

    proc = run_fab(project.dev, "continuity.docker.build", env={"DOCKER_HOST": "unix://{}/none.sock".format(tmp_path)})

    assert_user_error(proc, "cannot reach the Docker engine at unix://", "start dockerd or set DOCKER_HOST")


# -- rolling out over SSH -------------------------------------------------------------------


@pytest.fixture
def service_images(docker_engine, base_image, registry, tmp_path):
    """Two versions of a service pushed to the registry: (repository, {"v1": digest, "v2": digest}).

    v2 has a HEALTHCHECK; both have /ready.
    """
    repository = registry.repository(unique("service"))
    serve = 'CMD ["sh", "-c", "trap \'exit 0\' TERM; sleep 3600 & wait"]\n'  # stops at once on SIGTERM
    versions = {
        "v1": "FROM {}\nRUN touch /ready\n" + serve,
        "v2": "FROM {}\nRUN touch /ready && echo 2 > /version\nHEALTHCHECK --interval=1s --timeout=2s CMD test -f /ready\n"
              + serve,
    }
    digests = {}
    for tag, dockerfile in versions.items():
        directory = tmp_path / tag
        directory.mkdir()
        (directory / "Dockerfile").write_text(dockerfile.format(base_image))
        docker_engine.images.build(path=str(directory), tag="{}:{}".format(repository, tag), rm=True, network_mode="none")
        docker_engine.images.push(repository, tag)
        digests[tag] = registry.digest(docker_engine, "{}:{}".format(repository, tag))
    return repository, digests


@pytest.fixture
def service(docker_engine):
    name = unique("web")
    yield name
    for container in docker_engine.containers.list(all=True, filters={"label": "continuity.rollout=" + name}):
        container.remove(force=True)


def running(client, name):
    found = client.containers.list(all=True, filters={"label": "continuity.rollout=" + name})
    return sorted((c.name, c.status) for c in found)


def test_a_healthy_rollout_over_ssh_replaces_the_old_container_and_records_the_digest(
        sshd, docker_engine, service_images, service, monkeypatch):
    repository, digests = service_images
    remove_local(docker_engine, repository)  # the host pulls it by digest
    recorded, said = [], []
    monkeypatch.setattr(continuity.ledger, "annotate", lambda **fields: recorded.append(fields))
    c = sshd.connection()

    first = cdocker.rollout(c, repository, service, digest=digests["v1"], health_cmd="test -f /ready",
                            run_args=["--network", "none"], timeout=30, say=said.append)

    assert running(docker_engine, service) == [(first.container, "running")]
    assert any("pulling {}@{}".format(repository, digests["v1"]) in line for line in said)
    assert recorded[-1]["image_digest"] == digests["v1"]

    second = cdocker.rollout(c, "{}@{}".format(repository, digests["v2"]), service, run_args=["--network", "none"],
                             timeout=30, say=said.append)

    assert running(docker_engine, service) == [(second.container, "running")]
    assert second.replaced == (first.container,)
    assert docker_engine.containers.get(second.container).attrs["Config"]["Image"] == "{}@{}".format(repository, digests["v2"])
    assert "HEALTHCHECK healthy" in " ".join(said)
    assert recorded[-1]["image_digest"] == digests["v2"]


def test_an_unhealthy_rollout_keeps_the_old_container_running_and_fails_clearly(
        sshd, docker_engine, service_images, service):
    repository, digests = service_images
    c = sshd.connection()
    old = cdocker.rollout(c, repository, service, digest=digests["v1"], health_cmd="test -f /ready",
                          run_args=["--network", "none"], timeout=30, say=lambda text: None)

    with pytest.raises(DeployError) as info:
        cdocker.rollout(c, repository, service, digest=digests["v2"], health_cmd="test -f /never-ready",
                        run_args=["--network", "none"], timeout=2, say=lambda text: None)

    message = str(info.value)
    assert "was not healthy: not healthy after 2s: the health command kept failing" in message
    assert "{} keeps running".format(old.container) in message
    assert running(docker_engine, service) == [(old.container, "running")]


# -- recorded results ------------------------------------------------------------------

RESULTS = "refs/continuity/results"


def created(client, check, since):
    """How many containers the engine created for the Docker check named ``check`` since ``since`` (epoch
    seconds, a float: events are filtered on their nanosecond time, the engine's ``since`` being whole seconds)."""
    events = client.events(since=int(since) - 1, until=int(time.time()) + 1, decode=True,
                           filters={"type": "container", "event": "create", "label": "continuity.check=" + check})
    return sum(1 for event in events if event.get("timeNano", 0) >= since * 1e9)


def recorded_on(project, rev):
    """The result files recorded on origin for the tree of ``rev``, as text."""
    head = project.ref(RESULTS)
    tree = git(project.origin, "rev-parse", rev + "^{tree}")
    if head is None:
        return ""
    listing = git(project.origin, "ls-tree", "-r", "--name-only", head, "--", "{}/{}/".format(tree[:2], tree[2:]))
    return "\n".join(git(project.origin, "show", "{}:{}".format(head, path)) for path in listing.splitlines())


def test_a_docker_check_is_recorded_on_masters_tree_and_not_run_again_on_that_tree(
        make_project, base_image, registry, docker_engine):
    image = registry.repository(unique("recorded"))
    name = unique("app")
    project = docker_project(make_project, base_image, """\
        image: {}
        network: none
        checks:
          - name: {}
            command: test -f /app/feature && echo feature-is-there
        """.format(image, name))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    since = time.time()

    ran = project.fab(ws, "continuity.pipeline", env={"BUILD_NUMBER": "41"})

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "feature-is-there" in ran.stdout
    assert created(docker_engine, name, since) == 1
    texts = recorded_on(project, "master")
    assert "name: {}".format(name) in texts and "status: passed" in texts and "build_number: 41" in texts

    # The same files again (a change, then its revert): the candidate's tree already passed.
    project.push_to("development", "change", feature="y\n")
    project.push_to("development", "revert", feature="x\n")
    since = time.time()
    again = project.fab(project.workspace(), "continuity.pipeline")

    assert again.returncode == 0, again.stdout + again.stderr
    tree = git(project.origin, "rev-parse", "master^{tree}")
    assert "check '{}': reused, passed on tree {} in build #41".format(name, tree[:12]) in again.stdout
    assert "feature-is-there" not in again.stdout and "docker check: $" not in again.stdout
    assert created(docker_engine, name, since) == 0
    assert registry.digest(docker_engine, "{}:{}".format(image, project.ref("master")))  # still published


def test_a_revision_whose_docker_check_never_ran_is_not_tested_until_docker_check_records_it(
        make_project, base_image, registry, docker_engine):
    image = registry.repository(unique("untested"))
    project = docker_project(make_project, base_image, """\
        image: {}
        network: none
        checks:
          - name: app
            command: test -f /app/app.txt
        """.format(image), settings="  environments: {qa: {}}\n")
    first = project.push_to("development", "first", **{"app.txt": "version 2\n"})
    second = project.push_to("development", "second", **{"app.txt": "version 3\n"})
    ws = project.workspace()
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    assert project.ref("master") == second

    refused = project.fab(ws, "continuity.deploy", "qa", "--revision", first)

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "{} is not tested".format(first[:12]) in refused.stderr
    assert "docker check 'app' has no result" in refused.stderr
    assert "git checkout {} && fab continuity.docker.check".format(first[:12]) in refused.stderr
    status = project.fab(ws, "continuity.status")
    assert any("master" in line and line.endswith(", tested") for line in status.stdout.splitlines()), status.stdout
    assert "not tested (docker check 'app' has no result)" in status.stdout

    there = project.workspace(first)
    checked = project.fab(there, "continuity.docker.check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "recorded 1 result(s) for tree" in checked.stdout
    assert "name: app" in recorded_on(project, first)
    deployed = project.fab(ws, "continuity.deploy", "qa", "--revision", first)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr


def test_a_docker_checks_definition_is_its_command_environment_and_image_settings_not_its_name():
    def unit(**changes):
        raw = {"image": "127.0.0.1:5000/app", "network": "none",
               "checks": [dict({"name": "app", "command": "make test"}, **changes.pop("check", {}))]}
        raw.update(changes)
        settings = _config.Settings.__new__(_config.Settings)
        object.__setattr__(settings, "docker", cdocker.parse_settings(raw))
        (found,) = cdocker.settings.check_units(settings)
        return found

    same = unit()
    assert same.docker and same.kind == "check" and same.reuse and same.label == "docker check 'app'"
    assert unit(check={"name": "renamed"}).key == same.key
    assert unit(check={"timeout": 5}).key == same.key
    for changed in ({"check": {"command": ["make", "test"]}}, {"check": {"environment": {"A": "1"}}},
                    {"build_args": {"V": "2"}}, {"dockerfile": "other.Dockerfile"}, {"network": "host"},
                    {"image": "127.0.0.1:5000/other"}):
        assert unit(**changed).key != same.key, changed
    assert not unit(check={"reuse": False}).reuse


def test_a_long_docker_check_prints_a_heartbeat_with_its_last_line(make_project, base_image, registry):
    image = registry.repository(unique("slowly"))
    name = unique("slowly")
    project = docker_project(make_project, base_image, """\
        image: {}
        network: none
        checks:
          - name: {}
            command: echo warming the cache; sleep 2.5
        """.format(image, name), settings="  heartbeat: 1\n")

    proc = run_fab(project.workspace(), "continuity.docker.check")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "... docker check '{}' still running after 1s; last output: warming the cache".format(name) in proc.stdout
