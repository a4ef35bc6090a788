"""``fab continuity.report --html PATH``: the page, rendered by a real browser.

The project below has deploys, a failed deploy, a rollback with its bad mark,
a held lock, an environment only the remote knows, and hostile text (a commit
subject with a script element, BUILD_URLs with credentials and quotes). The
page is written by ``fab`` and opened by headless Chromium (Debian's
``chromium``, which ``make test`` installs): the tests read the DOM the
browser built, compare it with the HTML written (a page the browser had to
repair fails), and save a screenshot at a phone's width.
"""

import html
import os
import shutil
import struct
import subprocess
import time
import zlib
from html.parser import HTMLParser

import pytest

from conftest import Project, assert_user_error, git, isolate
from continuity.page_html import Candidate, CheckResult, EnvironmentView, Event, Page, escape, render

HOSTILE_SUBJECT = 'ship <script>alert(1)</script> & "quotes" \'too\''
HOSTILE_BUILD = 'https://jenkins:s3cret-token@ci.example.com/job/shop/7/"><script>alert(2)</script>'
ROLLBACK_BUILD = "https://ci.example.com/job/shop/10/"
LEGACY_BY = "https://old:hunter2@ci.example.com/job/legacy/1/"
CONFIG = Project.config(extra="environments:\n  qa: {}\n")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


# -- the browser ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium(tmp_path_factory):
    """The path of headless Chromium, once it has rendered a trivial page; else skip with why."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if not binary:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; `make test` installs it)")
    probe = tmp_path_factory.mktemp("probe") / "probe.html"
    probe.write_text("<!DOCTYPE html><p id=probe>ok</p>")
    proc = _browse(binary, tmp_path_factory.mktemp("profile"), probe, "--dump-dom")
    if 'id="probe"' not in proc.stdout:
        pytest.skip("chromium does not render here: {}".format(proc.stderr.strip()[-500:]))
    return binary


def _browse(binary, profile, page, *args, width=390):
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--hide-scrollbars", "--user-data-dir={}".format(profile), "--window-size={},2000".format(width), *args,
         page.as_uri()],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)


def dump_dom(chromium, tmp_path, page, width=390):
    proc = _browse(chromium, tmp_path / "profile", page, "--dump-dom", width=width)
    assert proc.returncode == 0 and "<html" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


def screenshot(chromium, tmp_path, page, width=390):
    target = tmp_path / "page-{}.png".format(width)
    proc = _browse(chromium, tmp_path / "profile", page, "--screenshot={}".format(target), width=width)
    assert proc.returncode == 0 and target.exists(), proc.stderr[-2000:]
    print("screenshot:", target)
    return target


# -- reading a DOM ----------------------------------------------------------------------------------


class Node:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent, self.children, self.texts = tag, dict(attrs), parent, [], []

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()

    def find_all(self, tag=None, **attrs):
        return [n for n in self.walk() if (tag is None or n.tag == tag)
                and all(n.attrs.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items())]

    def find(self, tag=None, **attrs):
        found = self.find_all(tag, **attrs)
        assert found, "no <{}> with {} in the page".format(tag, attrs)
        return found[0]

    def text(self):
        return "".join(self.texts) + "".join(child.text() for child in self.children)

    def classes(self):
        return self.attrs.get("class", "").split()


class Tree(HTMLParser):
    """The element tree of an HTML text, and every start tag in order (with id and class)."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.root = self.node = Node("#document", {})
        self.tags = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.node)
        self.node.children.append(node)
        self.tags.append((tag, node.attrs.get("id"), node.attrs.get("class")))
        if tag not in VOID:
            self.node = node

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.node = self.node.parent

    def handle_endtag(self, tag):
        node = self.node
        while node is not self.root and node.tag != tag:
            node = node.parent
        assert node is not self.root, "</{}> closes nothing".format(tag)
        assert node is self.node, "</{}> closes <{}> that is still open in the written HTML".format(tag, self.node.tag)
        self.node = node.parent

    def handle_data(self, data):
        self.node.texts.append(data)


def check_rendered(written, dom):
    """The browser built exactly the elements written (nothing repaired, moved or dropped); its DOM tree."""
    source, rendered = Tree(written), Tree(dom)
    assert source.node is source.root, "the written HTML leaves <{}> open".format(source.node.tag)
    body = source.tags[[t for t, _, _ in source.tags].index("body"):]
    rendered_body = rendered.tags[[t for t, _, _ in rendered.tags].index("body"):]
    assert rendered_body == body, "the browser built another page than the one written"
    return rendered.root


def check_safe(root):
    """No script, no event handler, only http(s) links."""
    assert not root.find_all("script"), "a script element got into the page"
    for node in root.walk():
        assert not [name for name in node.attrs if name.startswith("on")], (node.tag, node.attrs)
        if node.tag in ("a", "link", "img", "iframe", "object", "embed", "form"):
            assert node.tag == "a", "<{}> on the page".format(node.tag)
            href = node.attrs.get("href", "")
            assert href.startswith(("#", "http://", "https://")), href


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return data, width, height


def png_colours(data):
    """How many distinct byte values the image data holds (a blank page has a handful)."""
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            chunks.append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    return len(set(zlib.decompress(b"".join(chunks))))


# -- the project ------------------------------------------------------------------------------------


def _plant_commit(project, message):
    tree = git(project.dev, "hash-object", "-t", "tree", "-w", "--stdin")
    return git(project.dev, "commit-tree", tree, "-m", message)


def _plant_lock(project, name, **fields):
    body = "continuity lock\n\nlock: {}\n".format(name) + "".join("{}: {}\n".format(k, v) for k, v in fields.items())
    git(project.dev, "push", "--quiet", "origin", "{}:refs/continuity/locks/{}".format(
        _plant_commit(project, body), name))


def _plant_legacy_environment(project, revision):
    """An environment no setting names, recorded by an older continuity that kept credentials in BUILD_URL."""
    body = ("environment: legacy\nrevision: {}\nresult: deployed\ntime: 2026-01-02T03:04:05Z\nby: {}\n"
            "task: deploy\nline: main\n").format(revision, LEGACY_BY)
    entry = _plant_commit(project, "continuity ledger: legacy deployed\n\n" + body)
    git(project.dev, "push", "--quiet", "origin", "{}:refs/continuity/ledger/legacy".format(entry),
        "{}:refs/continuity/deployed/legacy".format(revision))


class Site:
    """The project below and the page ``fab continuity.report`` wrote for it."""

    def __init__(self, project, first, second, target):
        self.project, self.first, self.second, self.target = project, first, second, target
        self.written = target.read_text()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Deploys to staging (the second one rolled back), a failed then a good deploy to qa, two held locks,
    an environment only the remote knows; then the page, written once for the tests that read it."""
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, root)
        project = Project(root).create(config=CONFIG)
        ws = project.workspace()
        first = project.push_to("development", HOSTILE_SUBJECT, feature="x\n")
        run = project.fab(ws, "continuity.pipeline", env={"BUILD_URL": HOSTILE_BUILD})
        assert run.returncode == 0, run.stderr
        second = project.push_to("development", "second feature", second="y\n")
        assert project.fab(ws, "continuity.pipeline").returncode == 0
        rollback = project.fab(ws, "continuity.rollback", "staging", env={"BUILD_URL": ROLLBACK_BUILD})
        assert rollback.returncode == 0, rollback.stderr
        assert project.fab(ws, "continuity.deploy", "qa", env={"DEPLOY_FAIL": "1"}).returncode == 1
        assert project.fab(ws, "continuity.deploy", "qa").returncode == 0
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        _plant_lock(project, "deploy-production", host="agent-7", pid=4242, started=now, renewed=now, lease=60,
                    build="https://ci.example.com/job/shop/11/")
        _plant_lock(project, "pipeline", host="agent-8", pid=77, started="2026-01-01T00:00:00Z", lease=60,
                    renewed="2026-01-01T00:00:00Z", build="javascript:alert(3)")
        _plant_legacy_environment(project, first)
        target = root / "site" / "continuity.html"
        target.parent.mkdir()
        before = project.refs()
        proc = project.fab(ws, "continuity.report", "--html", str(target))
        assert proc.returncode == 0, proc.stderr
        assert project.refs() == before, "the report changed something on the remote"
        return Site(project, first, second, target)


def _card(root, environment):
    return next(card for card in root.find_all("article") if card.find("h3").text() == environment)


def _field(card, name):
    terms = card.find_all("dt")
    term = next(t for t in terms if t.text() == name)
    siblings = term.parent.children
    return siblings[siblings.index(term) + 1]


# -- the tests ----------------------------------------------------------------------------------------


def test_the_page_shows_environments_timelines_candidates_and_locks_as_the_browser_renders_them(
        chromium, site, tmp_path):
    project, first, second = site.project, site.first, site.second

    root = check_rendered(site.written, dump_dom(chromium, tmp_path, site.target))

    for section in ("environments", "timeline", "candidates", "locks"):
        root.find("section", id=section)
    assert [card.find("h3").text() for card in root.find_all("article")] == ["qa", "staging", "production", "legacy"]
    staging = _card(root, "staging")
    assert _field(staging, "Runs").find("code").attrs["title"] == first
    assert _field(staging, "Task").text() == "rollback"
    assert _field(staging, "By").find("a").attrs["href"] == ROLLBACK_BUILD
    assert _field(staging, "Tested").find("span").text() == "passed"  # the pipeline's check passed on its tree
    assert _field(_card(root, "qa"), "Behind master").text() == "0 commits"
    assert "Nothing deployed yet" in _card(root, "production").text()
    assert "Not configured" in _card(root, "legacy").text()

    marks = {svg.attrs["data-environment"]: [c.attrs["data-result"] for c in svg.find_all("circle")]
             for svg in root.find_all("svg", class_="timeline")}
    assert marks == {"staging": ["deployed", "deployed", "rollback", "bad"], "qa": ["failed", "deployed"],
                     "legacy": ["deployed"]}
    for circle in root.find("svg", data_environment="staging").find_all("circle"):
        assert circle.find("title").text().startswith("20")
        assert circle.attrs["fill"].startswith("#"), "colours are attributes, not CSS (Jenkins' CSP)"
    staging_rows = root.find("table", data_environment="staging").find("tbody").find_all("tr")
    assert [row.find_all("td")[1].text() for row in staging_rows] == ["bad", "rollback", "deployed", "deployed"]
    assert staging_rows[0].find("code").attrs["title"] == second
    assert "replaced by rollback " + first[:12] in staging_rows[0].text()
    assert "the deploy script broke" in root.find("table", data_environment="qa").text()

    candidates = root.find("table", class_="candidates").find("tbody").find_all("tr")
    master_log = git(project.origin, "log", "--first-parent", "--format=%H", "master").split()
    assert [row.find("code").attrs["title"] for row in candidates] == master_log
    verdicts = {row.find("code").attrs["title"]: row.find("span").text() for row in candidates}
    assert verdicts == {second: "passed", first: "passed", master_log[-1]: "no recorded results"}, verdicts
    assert "test -f app.txt" in candidates[0].text() and "not run" not in candidates[0].text()

    locks = {row.find("code").text(): row for row in root.find("table", class_="locks").find_all("tr")[1:]}
    assert sorted(locks) == ["deploy-production", "pipeline"]
    assert "alive" in locks["deploy-production"].find("span").text()
    assert "pid 4242 on agent-7" in locks["deploy-production"].text()
    assert locks["deploy-production"].find("a").attrs["href"] == "https://ci.example.com/job/shop/11/"
    assert locks["pipeline"].find("span").text() == "stale"
    assert not locks["pipeline"].find_all("a"), "a javascript: URL is not a link"
    assert "javascript:alert(3)" in locks["pipeline"].text()


def test_hostile_text_is_shown_as_text_and_credentials_never_reach_the_page(chromium, site, tmp_path):
    written = site.written
    dom = dump_dom(chromium, tmp_path, site.target)

    root = check_rendered(written, dom)

    check_safe(root)
    for secret in ("s3cret", "hunter2"):
        assert secret not in written and secret not in dom
    subjects = [row.find("td", class_="text").text() for row in root.find("table", class_="candidates").find_all("tr")[1:]]
    assert HOSTILE_SUBJECT in subjects
    assert HOSTILE_SUBJECT in _field(_card(root, "legacy"), "Runs").text()
    by = root.find("table", data_environment="staging").find_all("a")
    assert 'https://***@ci.example.com/job/shop/7/"><script>alert(2)</script>' in [a.attrs["href"] for a in by]
    assert _field(_card(root, "legacy"), "By").find("a").attrs["href"] == "https://***@ci.example.com/job/legacy/1/"


#: A frame of a phone's width showing the page (its own viewport, so its media queries apply), and a
#: script that writes down how wide the page is in it and what sticks out (outside a table that scrolls).
MEASURE = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="phone" width="{width}" height="2000" style="border:0" srcdoc="{page}"></iframe>
<script>
document.getElementById("phone").addEventListener("load", function () {{
  var doc = this.contentDocument, width = this.contentWindow.innerWidth;
  var out = Array.prototype.filter.call(doc.querySelectorAll("body *"), function (e) {{
    return e.getBoundingClientRect().right > width + 0.5 && !e.parentElement.closest(".scroll");
  }}).map(function (e) {{ return e.tagName + "." + e.className; }});
  document.body.setAttribute("data-fit", doc.documentElement.scrollWidth + " " + width + " " + out.join(","));
}});
</script></body></html>"""


#: Jenkins' default Content-Security-Policy for published files, less ``sandbox`` (not allowed in a <meta>).
JENKINS_CSP = "default-src 'none'; img-src 'self'; style-src 'self';"


def measure(chromium, tmp_path, written, width, csp=None):
    """(page width, viewport width, elements sticking out of it outside a table that scrolls) at ``width``."""
    if csp:
        written = written.replace('<meta charset="utf-8">', '<meta charset="utf-8"><meta http-equiv='
                                  '"Content-Security-Policy" content="{}">'.format(csp))
    probe = tmp_path / "measure.html"
    probe.write_text(MEASURE.format(width=width, page=html.escape(written, quote=True)))
    fit = Tree(dump_dom(chromium, tmp_path, probe, width=800)).root.find("body").attrs.get("data-fit", "")
    assert fit.count(" ") >= 2, "the measuring script did not run: " + fit
    page_width, viewport, sticking_out = fit.split(" ", 2)
    return int(page_width), int(viewport), [e for e in sticking_out.split(",") if e]


@pytest.mark.parametrize("width", [390, 320])
def test_the_page_fits_a_phone_screen_and_the_screenshot_shows_it(chromium, site, tmp_path, width):
    written = site.written
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in written
    assert "@media (max-width:" in written and "@media print" in written

    page_width, viewport, sticking_out = measure(chromium, tmp_path, written, width)
    shot = screenshot(chromium, tmp_path, site.target, width=width)

    assert viewport == width and page_width <= width and not sticking_out, (
        "the page scrolls sideways at {}px: {} wide; sticking out: {}".format(width, page_width, sticking_out))
    data, shot_width, height = png_size(shot)
    assert (shot_width, height) == (width, 2000)
    assert len(data) > 20000 and png_colours(data) > 64, "the screenshot is (nearly) blank"


def test_under_jenkins_default_csp_the_page_loses_its_styles_but_the_timelines_still_fit(chromium, site, tmp_path):
    page_width, viewport, sticking_out = measure(chromium, tmp_path, site.written, 390, csp=JENKINS_CSP)

    assert page_width > viewport, "the styles were not blocked: the tables do not scroll by themselves then"
    assert sticking_out == [], "only the tables may be wider than a phone without styles"


def test_recorded_results_show_on_the_candidates_and_environments():
    page = Page(line="main", remote="origin", master="master", master_sha="a" * 40, generated="2026-03-01T10:00:00Z",
                events_shown=50)
    page.candidates = [
        Candidate("a" * 40, "fix", "Ann", "2026-03-01T09:00:00Z",
                  [CheckResult("unit", "passed", 12.5), CheckResult("browser", "flaky", 70.0)]),
        Candidate("b" * 40, "break", "Bob", "2026-03-01T08:00:00Z", [CheckResult("unit", "failed", 3.0)],
                  culprits=["b" * 12]),
        Candidate("c" * 40, "old", "Cy", "2026-03-01T07:00:00Z"),
    ]
    page.environments = [EnvironmentView("staging", revision="a" * 40, tested="passed",
                                         events=[Event("2026-03-01T09:30:00Z", "deployed", "a" * 40, "pipeline")])]

    root = Tree(render(page)).root

    rows = root.find("table", class_="candidates").find("tbody").find_all("tr")
    assert [row.find("span").text() for row in rows] == ["passed", "failed", "no recorded results"]
    assert "1m22s" in rows[0].text() and "bbbbbbbbbbbb" in rows[1].text()
    assert [li.text() for li in root.find("ul", class_="flaky").find_all("li")] == ["browser"]
    assert "No recorded results" not in root.find("section", id="candidates").text()
    assert _field(_card(root, "staging"), "Tested").text() == "passed"


def test_a_page_the_browser_has_to_repair_fails_the_check(chromium, tmp_path):
    page = Page(line="main", remote="origin", master="master", master_sha="a" * 40, generated="2026-03-01T10:00:00Z")
    written = render(page)
    # A <div> straight inside a table: the browser moves it out, before the table.
    moved = written.replace('<p class="none">No lock', (
        '<div class="scroll"><table><tbody><div>stray</div><tr><td>x</td></tr></tbody></table></div><p class="none">No lock'))
    assert moved != written
    target = tmp_path / "moved.html"
    target.write_text(moved)
    with pytest.raises(AssertionError, match="another page than the one written"):
        check_rendered(moved, dump_dom(chromium, tmp_path, target))
    with pytest.raises(AssertionError, match="still open"):
        check_rendered(written.replace("</h2>", "", 1), written)
    target.write_text(written)
    check_rendered(written, dump_dom(chromium, tmp_path, target))


def test_the_page_escapes_text_as_html_escape_does():
    for text in (HOSTILE_SUBJECT, HOSTILE_BUILD, "&amp; already", "<<>>\"'\"'", "plain", "é ü \u2028"):
        assert escape(text) == html.escape(text, quote=True)


def test_a_missing_directory_or_a_directory_as_path_is_one_line_and_writes_nothing(project, tmp_path):
    ws = project.workspace()
    missing = project.fab(ws, "continuity.report", "--html", str(tmp_path / "nowhere" / "page.html"))
    assert_user_error(missing, "the directory {} does not exist; create it first".format(tmp_path / "nowhere"))
    assert_user_error(project.fab(ws, "continuity.report", "--html", str(tmp_path)), "it is a directory")
    assert_user_error(project.fab(ws, "continuity.report"), "give its file with --html PATH")
    assert not (tmp_path / "nowhere").exists()


def test_the_page_is_replaced_whole_and_keeps_its_mode(project, tmp_path):
    ws = project.workspace()
    target = tmp_path / "page.html"
    target.write_text("old page")
    os.chmod(target, 0o644)

    proc = project.fab(ws, "continuity.report", "--html", "../page.html")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "continuity | wrote ../page.html (2 environment(s), 0 lock(s) held)\n"
    assert target.read_text().startswith("<!DOCTYPE html>") and target.read_text().endswith("</html>\n")
    assert os.stat(target).st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".page.html")) == []


def test_a_damaged_ledger_is_shown_on_the_page_and_fails_the_task(make_project, tmp_path):
    project = make_project(config=CONFIG)
    ws = project.workspace()
    blob = git(project.dev, "hash-object", "-w", "--stdin")
    git(project.dev, "push", "--quiet", "origin", "{}:refs/continuity/ledger/qa".format(blob))
    target = tmp_path / "page.html"

    proc = project.fab(ws, "continuity.report", "--html", str(target))

    assert_user_error(proc, "the ledger of qa on origin is damaged")
    root = Tree(target.read_text()).root
    assert "ledger damaged" in _card(root, "qa").text()
    assert "Nothing deployed yet" in _card(root, "staging").text()


def test_a_revision_no_check_ran_on_shows_untested_and_its_checks_not_run(make_project, tmp_path):
    """A fast-forward brings in an intermediate commit no check saw; deployed with --force, the page says so,
    and once one of its two checks ran on it, it is untested with the other one "not run"."""
    project = make_project(config=Project.config(checks=["true", "test -f app.txt"]))
    ws = project.workspace()
    middle = project.push_to("development", "middle", middle="1\n")
    tip = project.push_to("development", "tip", tip="2\n")
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    forced = project.fab(ws, "continuity.deploy", "staging", "--revision", middle, "--force")
    assert forced.returncode == 0, forced.stderr
    target = tmp_path / "page.html"

    assert project.fab(ws, "continuity.report", "--html", str(target)).returncode == 0
    root = Tree(target.read_text()).root
    assert _field(_card(root, "staging"), "Tested").find("span").text() == "unknown"  # nothing recorded for it
    rows = {row.find("code").attrs["title"]: row for row in
            root.find("table", class_="candidates").find("tbody").find_all("tr")}
    assert rows[tip].find("span").text() == "passed"
    assert rows[middle].find("span").text() == "no recorded results"

    one = project.fab(project.workspace(middle), "continuity.test", "--check", "true")
    assert one.returncode == 0, one.stderr
    assert project.fab(ws, "continuity.report", "--html", str(target)).returncode == 0

    root = Tree(target.read_text()).root
    assert _field(_card(root, "staging"), "Tested").find("span").text() == "untested"
    middle_row = {row.find("code").attrs["title"]: row for row in
                  root.find("table", class_="candidates").find("tbody").find_all("tr")}[middle]
    assert [span.text() for span in middle_row.find_all("span")][:3] == ["untested", "passed", "not run"]
