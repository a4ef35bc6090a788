"""`fab continuity.doctor`: one line per check, against real parts, and nothing moves.

A healthy setup (a real sshd, a real registry that wants credentials, a
real SMTP server with STARTTLS and a login, a real webhook receiver) passes
every line; then each failure a user meets is one line that says what is
wrong and what fixes it, with exit code 1, and the origin's refs as they
were.
"""

import os
import subprocess
import textwrap
import threading
import uuid

import pytest

from conftest import FABFILE, assert_user_error, git
from ports import free_port

pytest_plugins = ["mail_server", "http_receiver", "docker_services"]

SMTP_PASSWORD = "smtp-" + uuid.uuid4().hex
HOOK_TOKEN = "T0KEN" + uuid.uuid4().hex


def doctor(project, ws=None, *args, env=None):
    """Run the doctor in a Jenkins-like workspace; check that the origin's refs did not move."""
    ws = ws or project.workspace()
    before = project.refs()
    proc = project.fab(ws, "continuity.doctor", *args, env=env, timeout=180)
    assert project.refs() == before, "the doctor changed refs on the origin"
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


def line(proc, name):
    """The report's one line for check ``name``."""
    found = [text for text in proc.stdout.splitlines() if text.startswith("continuity | doctor: {}: ".format(name))]
    assert len(found) == 1, (name, proc.stdout)
    return found[0]


def failed_alone(proc, name, *phrases):
    """Check ``name`` failed with ``phrases`` in its line, and exit code 1 names it (and only it)."""
    text = line(proc, name)
    assert text.startswith("continuity | doctor: {}: FAILED: ".format(name)), text
    for phrase in phrases:
        assert phrase in text, (phrase, text)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "continuity: error: doctor: 1 check(s) failed: {}; see the lines above".format(name) in proc.stderr, proc.stderr
    return text


def configured(make_project, extra="", fabfile=FABFILE, **kwargs):
    return make_project(config="continuity:\n  checks: []\n" + textwrap.indent(textwrap.dedent(extra), "  "),
                        fabfile=fabfile, **kwargs)


def hosts_yaml(sshd, hosts, key=None):
    return "environments:\n  staging:\n    hosts: [{}]\n    user: {}\n    key_filename: {}\n    connect_timeout: 5\n".format(
        ", ".join(hosts), sshd.user, key or sshd.key)


# -- all well -----------------------------------------------------------------------------------


def test_a_healthy_setup_passes_every_line_and_sends_nothing_anywhere(
        make_project, sshd, auth_registry, mail_server, http_receiver):
    smtp = mail_server(security="starttls", login=("ci", SMTP_PASSWORD))
    hosts = ["127.0.0.1:{}".format(sshd.ports[0]), "localhost:{}".format(sshd.ports[1])]
    project = configured(make_project, hosts_yaml(sshd, hosts) + textwrap.dedent("""\
        docker:
          image: {image}
          username_env: REG_USER
          password_env: REG_PASSWORD
        notify:
          email:
            host: 127.0.0.1
            port: {smtp}
            security: starttls
            username: ci
            password_env: SMTP_PASSWORD
            sender: ci@example.com
            recipients: [team@example.com]
          webhooks:
            - url_env: HOOK_URL
        """).format(image=auth_registry.repository("doctor-app"), smtp=smtp.port))
    env = {"REG_USER": auth_registry.username, "REG_PASSWORD": auth_registry.password,
           "SMTP_PASSWORD": SMTP_PASSWORD, "SSL_CERT_FILE": str(smtp.ca_file),
           "HOOK_URL": http_receiver.url("/hooks/" + HOOK_TOKEN)}

    proc = doctor(project, env=env)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = [text for text in proc.stdout.splitlines() if text.startswith("continuity | doctor: ")]
    assert report[-1] == "continuity | doctor: 13 ok, 0 failed, 0 skipped, 0 not configured", proc.stdout
    names = ["settings", "deploy task", "git", "workspace", "remote origin reachable", "remote origin pushable",
             "branches on origin", "locks on origin", "ledger on origin", "hosts of staging", "docker",
             "notify email via 127.0.0.1:{}".format(smtp.port), "notify webhook http://127.0.0.1:{} (json)".format(
                 http_receiver.port)]
    assert [text.split(": ")[1] for text in report[:-1]] == names  # in this order, one line each
    assert all(line(proc, name).startswith("continuity | doctor: {}: ok".format(name)) for name in names)
    assert "deploy(c, environment, revision=None), needed by auto_deploy (staging) and environments (staging)" in line(
        proc, "deploy task")
    assert "{} ({}@127.0.0.1:{}): ok".format(hosts[0], sshd.user, sshd.ports[0]) in line(proc, "hosts of staging")
    assert "accepted the credentials from $REG_USER and $REG_PASSWORD" in line(proc, "docker")
    assert "answered EHLO, STARTTLS, login, then QUIT; nothing sent" in line(proc, "notify email via 127.0.0.1:{}".format(
        smtp.port))
    assert smtp.messages == [] and http_receiver.requests == []  # nothing was sent
    secrets = (auth_registry.password, SMTP_PASSWORD, HOOK_TOKEN)
    assert not any(secret in proc.stdout + proc.stderr for secret in secrets)


# -- the settings and the deploy task -------------------------------------------------------------


def test_a_bad_setting_is_its_line_and_what_needs_settings_is_skipped(make_project):
    project = configured(make_project, "auto_deploi: [staging]\n")

    proc = doctor(project)

    failed_alone(proc, "settings", "continuity.auto_deploi: unknown setting; did you mean 'auto_deploy'?")
    assert line(proc, "git").startswith("continuity | doctor: git: ok")
    assert line(proc, "workspace").startswith("continuity | doctor: workspace: ok")
    assert line(proc, "remote reachable") == "continuity | doctor: remote reachable: skipped: needs valid settings"
    assert line(proc, "hosts") == "continuity | doctor: hosts: skipped: needs valid settings"


def test_an_unknown_line_stops_the_doctor_before_any_check(project):
    proc = doctor(project, None, "--line", "2.x")

    assert_user_error(proc, "unknown line '2.x'")
    assert "doctor:" not in proc.stdout


NO_DEPLOY = "from invoke import Collection\nimport continuity\n\nns = Collection(continuity)\n"


def test_a_missing_deploy_task_fails_when_auto_deploy_needs_it(make_project):
    project = configured(make_project, fabfile=NO_DEPLOY)

    proc = doctor(project)

    failed_alone(proc, "deploy task", "no 'deploy' task found in your fabfile",
                 "ns = Collection(deploy, continuity)", "(needed by auto_deploy (staging))")


def test_a_missing_deploy_task_passes_when_nothing_deploys(make_project):
    project = configured(make_project, "auto_deploy: []\n", fabfile=NO_DEPLOY)

    proc = doctor(project)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "not needed by these settings" in line(proc, "deploy task")


@pytest.mark.parametrize("signature, phrase", [
    ("c", "takes no 'environment' argument"),
    ("c, environment, target", "requires 'target', which continuity does not pass"),
])
def test_a_deploy_task_continuity_cannot_call_is_named_with_the_fix(make_project, signature, phrase):
    fabfile = ("from fabric import task\nfrom invoke import Collection\nimport continuity\n\n\n"
               "@task\ndef deploy({}):\n    pass\n\n\nns = Collection(deploy, continuity)\n".format(signature))
    project = configured(make_project, fabfile=fabfile)

    proc = doctor(project)

    failed_alone(proc, "deploy task", phrase)


# -- the checkout and the remote ---------------------------------------------------------------------


def test_uncommitted_changes_fail_the_workspace_line(project):
    ws = project.workspace()
    (ws / "app.txt").write_text("edited by hand\n")

    proc = doctor(project, ws)

    failed_alone(proc, "workspace", "uncommitted changes to tracked files (app.txt); commit or stash them")


def test_a_missing_branch_is_named_with_the_command_that_creates_it(make_project):
    project = configured(make_project, branches=("master", "development"))

    proc = doctor(project)

    failed_alone(proc, "branches on origin", "remote 'origin' has no branch 'production'",
                 "`fab continuity.init`")


def test_an_unreachable_remote_fails_and_skips_what_needs_it(project):
    ws = project.workspace()
    git(ws, "remote", "set-url", "origin", str(project.root / "gone.git"))

    proc = doctor(project, ws)

    failed_alone(proc, "remote origin reachable", "cannot reach remote 'origin'", "gone.git",
                 "check `git remote -v` and your credentials")
    for name in ("remote origin pushable", "branches on origin", "locks on origin", "ledger on origin"):
        assert line(proc, name) == "continuity | doctor: {}: skipped: needs the remote".format(name)


def test_a_remote_whose_hook_refuses_every_push_is_not_pushable_and_its_hook_saw_the_test_command(project):
    seen = project.root / "pre-receive.log"
    hook = project.origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\ncat >> {}\necho 'this mirror is read-only' >&2\nexit 1\n".format(seen))
    hook.chmod(0o755)

    proc = doctor(project)

    failed_alone(proc, "remote origin pushable", "origin refused a test push (creating "
                 "refs/heads/master/continuity-doctor): [remote rejected] (pre-receive hook declined); it said: "
                 "this mirror is read-only", "give these credentials write access")
    assert line(proc, "remote origin reachable").startswith("continuity | doctor: remote origin reachable: ok")
    # The hook ran on the test command, as on a real push: create the ref at master's commit.
    assert seen.read_text().split() == ["0" * 40, project.ref("master"), "refs/heads/master/continuity-doctor"]



@pytest.fixture
def smart_http(project):
    """The project's origin over git's smart HTTP (git http-backend); pushes need a user (``served["user"]``)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    served = {"user": "ci"}  # as a web server's authentication would set REMOTE_USER; "" for anonymous

    class Backend(BaseHTTPRequestHandler):
        def do_GET(self):
            self._backend()

        def do_POST(self):
            self._backend()

        def _backend(self):
            path, _, query = self.path.partition("?")
            env = {"GIT_PROJECT_ROOT": str(project.root), "GIT_HTTP_EXPORT_ALL": "1", "REMOTE_USER": served["user"],
                   "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command,
                   "CONTENT_TYPE": self.headers.get("Content-Type", ""), "PATH": os.environ["PATH"]}
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
            head, _, rest = out.partition(b"\r\n\r\n")
            fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n") if ": " in line)
            self.send_response(int(fields.pop("Status", "200").split()[0]))
            for key, value in fields.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(rest)))
            self.end_headers()
            self.wfile.write(rest)

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    served["url"] = "http://127.0.0.1:{}/origin.git".format(server.server_address[1])
    yield served
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("transport", ["ssh", "http"])
@pytest.mark.parametrize("refusing", [False, True])
def test_pushable_is_verified_the_same_way_over_ssh_and_smart_http(project, sshd, smart_http, transport, refusing):
    env = {}
    if transport == "ssh":
        url = "ssh://{}@127.0.0.1:{}{}".format(sshd.user, sshd.ports[0], project.origin)
        env["GIT_SSH_COMMAND"] = "ssh -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no " \
                                 "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR".format(sshd.key)
    else:
        url = smart_http["url"]
    ws = project.workspace()
    git(ws, "remote", "set-url", "origin", url)
    if refusing:
        hook = project.origin / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\necho 'pushes are frozen' >&2\nexit 1\n")
        hook.chmod(0o755)

    proc = doctor(project, ws, env=env)

    if refusing:
        failed_alone(proc, "remote origin pushable", "[remote rejected] (pre-receive hook declined); it said: "
                     "pushes are frozen")
    else:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "then refused to write it, as git must while master exists; nothing moved" in line(
            proc, "remote origin pushable")

# -- locks and the ledger -------------------------------------------------------------------------------


def _token(project, **fields):
    body = "continuity lock\n\n" + "".join("{}: {}\n".format(k, v) for k, v in fields.items())
    tree = git(project.origin, "hash-object", "-t", "tree", "-w", "--stdin")
    return git(project.origin, "commit-tree", tree, "-m", body)


def _blob(project):
    return git(project.origin, "hash-object", "-w", "--stdin")  # stdin is empty: the empty blob


@pytest.mark.parametrize("kind, phrases", [
    ("foreign", ["pipeline held by nobody (not a continuity lock)", "not a continuity lock (a blob)",
                 "remove it: `fab continuity.unlock pipeline`"]),
    ("stale", ["pipeline held by pid 4242 on agent-7 since 2020-01-01T00:00:00Z", "it looks stale",
               "if its run is dead: `fab continuity.unlock pipeline`"]),
])
def test_a_lock_no_run_will_release_is_named_with_the_command_that_breaks_it(project, kind, phrases):
    token = _blob(project) if kind == "foreign" else _token(
        project, lock="pipeline", host="agent-7", pid=4242, started="2020-01-01T00:00:00Z")
    git(project.origin, "update-ref", "refs/continuity/locks/pipeline", token)

    proc = doctor(project)

    failed_alone(proc, "locks on origin", *phrases)


def test_a_lock_whose_run_is_gone_passes_as_the_next_run_takes_it_over(project):
    token = _token(project, lock="deploy-staging", host="agent-7", pid=4242, started="2020-01-01T00:00:00Z",
                   lease=60, renewed="2020-01-01T00:01:00Z")
    git(project.origin, "update-ref", "refs/continuity/locks/deploy-staging", token)

    proc = doctor(project)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "deploy-staging held by pid 4242 on agent-7" in line(proc, "locks on origin")
    assert "its run is probably gone" in line(proc, "locks on origin")


def test_a_damaged_ledger_ref_is_named_with_the_push_that_repairs_it(project):
    git(project.origin, "update-ref", "refs/continuity/ledger/staging", _blob(project))

    proc = doctor(project)

    failed_alone(proc, "ledger on origin", "the ledger of staging on origin is damaged",
                 "refs/continuity/ledger/staging is a blob",
                 "`git push origin --delete refs/continuity/ledger/staging`")


# -- hosts ---------------------------------------------------------------------------------------------------


def test_a_host_with_nothing_listening_fails_its_environment_line(make_project, sshd):
    dead = sshd.free_dead_port()
    hosts = ["127.0.0.1:{}".format(sshd.ports[0]), "127.0.0.1:{}".format(dead)]
    project = configured(make_project, hosts_yaml(sshd, hosts))

    proc = doctor(project)

    failed_alone(proc, "hosts of staging", "127.0.0.1:{0} ({1}@127.0.0.1:{0}): ok".format(sshd.ports[0], sshd.user),
                 "127.0.0.1:{}: cannot connect to {}@127.0.0.1:{}: connection refused".format(dead, sshd.user, dead),
                 "check continuity.environments.staging.hosts (and user, port, key_filename) and your SSH key")


def test_a_host_that_refuses_the_key_fails_its_environment_line(make_project, sshd, tmp_path):
    stranger = tmp_path / "stranger_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True,
                   stdin=subprocess.DEVNULL)
    host = "127.0.0.1:{}".format(sshd.ports[0])
    project = configured(make_project, hosts_yaml(sshd, [host], key=stranger))

    proc = doctor(project)

    failed_alone(proc, "hosts of staging", "{}: cannot connect to {}@{}: SSH login refused".format(host, sshd.user, host),
                 "check user and key_filename")


# -- Docker --------------------------------------------------------------------------------------------------


def test_registry_credentials_the_registry_refuses_fail_the_docker_line(make_project, auth_registry):
    project = configured(make_project, textwrap.dedent("""\
        docker:
          image: {}
          username_env: REG_USER
          password_env: REG_PASSWORD
        """).format(auth_registry.repository("doctor-app")))
    wrong = "wrong-" + uuid.uuid4().hex

    proc = doctor(project, env={"REG_USER": auth_registry.username, "REG_PASSWORD": wrong})

    failed_alone(proc, "docker", "the registry {} refused the credentials from $REG_USER and $REG_PASSWORD".format(
        auth_registry.host))
    assert wrong not in proc.stdout + proc.stderr


def test_a_registry_without_credentials_is_asked_for_the_production_tag_and_a_missing_one_is_fine(
        make_project, registry):
    project = configured(make_project, "docker:\n  image: {}\n".format(registry.repository("doctor-open")))

    proc = doctor(project)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert line(proc, "docker") == (
        "continuity | doctor: docker: ok: the engine answers; registry {0} answers without credentials "
        "({0}/doctor-open:production not pushed yet); nothing pulled or pushed".format(registry.host))


# -- notifications -------------------------------------------------------------------------------------------


def test_an_smtp_port_with_nothing_listening_fails_the_email_line(make_project, dead_smtp_port):
    project = configured(make_project, textwrap.dedent("""\
        notify:
          email: {{host: 127.0.0.1, port: {}, sender: ci@example.com, recipients: [team@example.com]}}
        """).format(dead_smtp_port))

    proc = doctor(project)

    failed_alone(proc, "notify email via 127.0.0.1:{}".format(dead_smtp_port), "connection refused",
                 "check continuity.notify.email and that the server is up")


def test_a_webhook_with_nothing_listening_fails_its_line_without_showing_the_url(make_project, http_receiver):
    dead = http_receiver.url("/hooks/" + HOOK_TOKEN).replace(str(http_receiver.port), str(free_port()))
    project = configured(make_project, "notify:\n  webhooks:\n    - url_env: HOOK_URL\n")

    proc = doctor(project, env={"HOOK_URL": dead})

    port = dead.split(":")[2].split("/")[0]
    failed_alone(proc, "notify webhook http://127.0.0.1:{} (json)".format(port), "connection refused",
                 "check continuity.notify.webhooks")
    assert HOOK_TOKEN not in proc.stdout + proc.stderr



def test_a_smart_http_remote_that_refuses_receive_pack_to_anonymous_users_is_not_pushable(project, smart_http):
    smart_http["user"] = ""  # git http-backend then answers 403 to receive-pack, and still serves fetches
    ws = project.workspace()
    git(ws, "remote", "set-url", "origin", smart_http["url"])

    proc = doctor(project, ws)

    failed_alone(proc, "remote origin pushable", "The requested URL returned error: 403")
    assert line(proc, "remote origin reachable").startswith("continuity | doctor: remote origin reachable: ok")
