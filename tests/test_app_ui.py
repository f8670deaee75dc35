"""The app in a real browser: served on 127.0.0.1, driven with Playwright in Debian's Chromium.

The demo is served with a profiles CSV (tests/data/app/demo_profiles.csv) so no TVM runs here.
Every wait is on a condition in the page, never a sleep.
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.ui

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[1]
DEMO_PROFILES = ROOT / "tests" / "data" / "app" / "demo_profiles.csv"
TIMEOUT_MS = 90_000  # CI's two cores serve and render slowly

if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (/usr/bin/chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

# Text of a Panel pane lives in shadow roots; this collects it (style sheets left out).
DEEP_TEXT = """el => { const deep = n => { let t = '';
  if (n.shadowRoot) t += deep(n.shadowRoot);
  for (const c of n.childNodes) { if (c.nodeName === 'STYLE') continue;
    t += c.nodeType === 3 ? c.textContent : deep(c); }
  return t; }; return deep(el); }"""
# Screen positions of the frontier's points, from Bokeh's own views (the renderer the app names,
# or the one whose data has the frontier's `placement` column).
FRONTIER_POINTS = """() => { const out = [];
  const has = d => d instanceof Map ? d.has('placement') : d && 'placement' in d;
  for (const v of Bokeh.index.query(v => v.model && (v.model.name === 'frontier-points'
                                        || (v.model.data_source && has(v.model.data_source.data))))) {
    const c = v.parent.canvas_view.el.getBoundingClientRect();
    for (let i = 0; i < v.glyph.sx.length; i++) out.push([c.left + v.glyph.sx[i], c.top + v.glyph.sy[i]]);
  }
  return out; }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_answers(url: str, timeout_s: float = 60.0) -> None:
    """Until the server answers HTTP at all (a 404 from a path that is not the app: probing the
    app itself would open a session and plan for nobody)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # a server socket not yet listening: nothing in a page to wait on


@pytest.fixture(scope="module")
def server():
    import panel as pn

    from placement.app_layout import create_app

    port = free_port()
    thread = pn.serve({"app": lambda: create_app(profiles_csv=DEMO_PROFILES).template()}, port=port,
                      address="127.0.0.1", threaded=True, show=False, start=True)
    url = f"http://127.0.0.1:{port}/app"
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/not-the-app")
        yield url
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="placement-chromium-")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=ARGS,
                                                       headless=True, viewport={"width": 1600, "height": 1000},
                                                       accept_downloads=True)
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def console_errors():
    return []


@pytest.fixture(scope="module")
def page(browser, server, console_errors):
    """One page on the demo, the plan shown; tests that move inputs share it in file order."""
    page = browser.new_page()
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(f"{e} at {getattr(e, 'stack', '')}"))
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server)
    page.locator(".headline").get_by_text("/month").wait_for()
    return page


def headline(page) -> str:
    return page.locator(".headline").evaluate(DEEP_TEXT).strip()


def table_rows(page) -> list[str]:
    return page.locator(".placement-table .tabulator-row").all_inner_texts()


def wait_for(page, predicate, what: str) -> None:
    """Poll a condition on the page (Playwright's own timeout clock); fail naming it."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; the headline: {headline(page)!r}, "
                                 f"the table: {table_rows(page)!r}, frontier: {page.evaluate(FRONTIER_POINTS)}")
        page.wait_for_timeout(100)


def test_demo_plan_appears(page):
    text = headline(page)
    assert text.startswith("optimal") and "/month" in text and "SLO 300 ms" in text
    wait_for(page, lambda: len(table_rows(page)) == 2, "the placement table")
    assert {r.split("\n")[0] for r in table_rows(page)} == {"screener", "classifier"}
    page.locator(".frontier").locator("canvas").first.wait_for()


def test_slo_change_replans_and_the_headline_changes(page):
    before = headline(page)
    box = page.locator(".slo-input input")
    box.fill("120")
    box.press("Enter")
    wait_for(page, lambda: "SLO 120 ms" in headline(page), "the headline at SLO 120 ms")
    assert headline(page) != before


def test_clicking_a_frontier_point_changes_the_placement_table(page):
    page.locator(".frontier").scroll_into_view_if_needed()
    wait_for(page, lambda: len(page.evaluate(FRONTIER_POINTS)) >= 2, "the frontier's points")
    before = table_rows(page)
    points = page.evaluate(FRONTIER_POINTS)
    # the point furthest from the plan shown: the cheapest (slowest) one
    x, y = max(points, key=lambda p: p[1])
    page.mouse.click(x, y)
    wait_for(page, lambda: table_rows(page) and table_rows(page) != before, "the table to show the clicked plan")


def test_downloaded_plan_json_validates_against_the_schema(page, tmp_path):
    import jsonschema

    with page.expect_download() as info:
        page.locator(".download-plan button, .download-plan a").first.click()
    path = tmp_path / "plan.json"
    info.value.save_as(path)
    plan = json.loads(path.read_text())
    jsonschema.validate(plan, json.loads((ROOT / "docs" / "plan.schema.json").read_text()))
    assert plan["application"] == "shelf-camera-demo"


def test_downloaded_bundle_is_a_zip_with_the_manifest_of_the_plan_shown(page, tmp_path):
    """The deployer bundle, exported when clicked (off the page's event loop), as `placement
    export` writes it: the demo's is ~120 MB of ONNX files, so this one takes a while."""
    import zipfile

    import jsonschema

    # the plan shown is the frontier point clicked above (slower than the SLO: no bundle); the
    # solved plan at the spec's SLO has one
    box = page.locator(".slo-input input")
    box.fill("300")
    box.press("Enter")
    wait_for(page, lambda: "≤ SLO 300 ms" in headline(page), "the headline at SLO 300 ms")
    with page.expect_download(timeout=4 * TIMEOUT_MS) as info:
        page.locator(".download-bundle button, .download-bundle a").first.click()
    path = tmp_path / "bundle.zip"
    info.value.save_as(path)
    with zipfile.ZipFile(path) as z:
        manifest = json.loads(z.read("bundle/manifest.json"))
        plan = json.loads(z.read("bundle/plan.json"))
        names = set(z.namelist())
    jsonschema.validate(manifest, json.loads((ROOT / "docs" / "manifest.schema.json").read_text()))
    assert {f"bundle/{f['path']}" for f in manifest["files"]} <= names
    assert manifest["plan"]["application"] == plan["application"] == "shelf-camera-demo"
    assert f"${plan['costs']['monthly_usd']:,.2f}/month" in headline(page)  # the plan shown


def _upload(page, files: list[dict]) -> str:
    """Upload; the error message the page shows for it (the one before it is cleared first)."""
    error = page.locator(".app-error")
    page.locator("input[type=file]").set_input_files(files)
    name = files[0]["name"]
    wait_for(page, lambda: error.is_visible() and error.evaluate(DEEP_TEXT).strip().startswith(name),
             f"the error message about {name}")
    return error.evaluate(DEEP_TEXT).strip()


def test_broken_spec_upload_shows_its_error(page):
    spec = (ROOT / "placement" / "data" / "demo.yaml").read_text().replace("latency_ms: 300", "latency_ms: -5")
    message = _upload(page, [{"name": "broken.yaml", "mimeType": "application/x-yaml", "buffer": spec.encode()}])
    assert message.startswith("broken.yaml: slo.latency_ms: ")


def test_upload_naming_a_file_outside_itself_is_refused(page):
    spec = (ROOT / "placement" / "data" / "demo.yaml").read_text().replace(
        "onnx: zoo:resnet18", "onnx: ../../etc/model.onnx\n    inputs: {x: [1, 3, 224, 224]}")
    message = _upload(page, [{"name": "outside.yaml", "mimeType": "application/x-yaml", "buffer": spec.encode()}])
    assert "models[1].onnx" in message and "outside the upload" in message
    # the session is alive: the plan shown is still the demo's
    assert "/month" in headline(page)


def test_browser_console_shows_no_errors(page, console_errors):
    assert console_errors == []


def test_placement_app_serves_and_tabs_closed_mid_update_print_no_traceback(browser):
    """`placement app` as a user starts it: the page plans; tabs closed while the server is
    sending them a re-plan leave no traceback in its terminal (Tornado's failed write to a closed
    socket is caught on the server's loop); Ctrl-C stops it with exit 0."""
    import signal
    import subprocess
    import sys

    port = free_port()
    command = [str(Path(sys.executable).parent / "placement"), "app", "--port", str(port),
               "--profiles", str(DEMO_PROFILES)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/not-the-app")
        for slo in ("120", "150", "200"):
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator(".headline").get_by_text("/month").wait_for()
            box = page.locator(".slo-input input")
            box.fill(slo)
            box.press("Enter")
            page.close()  # at once: the re-plan's patches go to a closed socket
        time.sleep(3)  # the re-plans finish and are sent to nobody (nothing in a page to wait on)
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    assert f"placement app: http://127.0.0.1:{port}/" in output
    assert "Traceback" not in output and "never retrieved" not in output, output
