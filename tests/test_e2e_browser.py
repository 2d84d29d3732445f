"""End to end in a real browser: Debian's Chromium driven by Playwright against `streamlit run`.

A new user's path on the simulated atlas: open every page, train a small run from the Train
page, click a point of the UMAP to select its cluster (named and highlighted), colour by
cluster and reopen the page's address elsewhere, run enrichment, open the co-expression
view, and download the report and open it offline. Screenshots of each step, and of
Embedding, Clusters, Co-expression and the report at 1280x720 (a projector), go to
``$MUSEGNN_TEST_ARTIFACTS`` (default ``test-artifacts/e2e`` in the project). `.ci/run`
installs Chromium when it is missing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from musegnn_core.paths import PROJECT_ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("MUSEGNN_TEST_ARTIFACTS", PROJECT_ROOT / "test-artifacts" / "e2e"))
PAGES = ("Data", "Train", "Embedding", "Clusters", "Enrichment", "Coexpression", "Benchmark")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian chromium not installed (apt-get install chromium)"
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app_url(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "MUSEGNN_WORKSPACE": str(tmp_path / "ws"),
        "MUSEGNN_DEMO_DATA": "",  # the simulated atlas: small, and its modules are known
        "MUSEGNN_SHARED_DATA": "",
    }
    log = (tmp_path / "streamlit.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless=true",
            f"--server.port={port}",
            "--browser.gatherUsageStats=false",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "streamlit.log").read_text()
            assert time.monotonic() < deadline, "streamlit did not start in 60 s"
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def settle(page, timeout: float = 120_000) -> None:
    """Wait until Streamlit has finished running the script."""
    page.wait_for_load_state("networkidle")
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout
    )


def no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.content()[:2000]
    assert "Traceback" not in page.inner_text("body")


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def select_cluster_by_click(page, attempts: int = 3) -> None:
    """Click the UMAP's first point until the page says a cluster is selected.

    A click on the WebGL chart is sometimes lost: the page stays unselected, no error (two
    of three runs on the loaded 2-core machine; the cause is not found). A user clicks
    again, and so does the test, at most ``attempts`` times; the attempts are printed.
    """
    message = page.get_by_text("Selected cluster", exact=False).first
    for attempt in range(1, attempts + 1):
        click_first_umap_point(page)
        settle(page)
        try:
            message.wait_for(state="visible", timeout=15_000)
            print(f"cluster selected after {attempt} click(s)")
            return
        except Exception:
            page.wait_for_timeout(2_000)
    raise AssertionError(f"No cluster selected after {attempts} clicks on the UMAP")


def click_first_umap_point(page) -> None:
    """Click the first point of the UMAP (WebGL) at its pixel position."""
    chart = page.locator(".js-plotly-plot").first
    chart.wait_for(timeout=180_000)
    x, y = chart.evaluate(
        """gd => {
            const trace = gd._fullData.find(t => t.x && t.x.length);
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            const box = gd.getBoundingClientRect();
            return [box.left + xa._offset + xa.l2p(trace.x[0]),
                    box.top + ya._offset + ya.l2p(trace.y[0])];
        }"""
    )
    page.mouse.move(x - 3, y - 3)
    page.mouse.move(x, y)
    page.wait_for_timeout(300)
    page.mouse.click(x, y)


def test_new_user_path_in_chromium(app_url):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(180_000)
        try:
            walk_through(page, app_url, expect)
        except Exception:
            shot(page, "failure")  # what the page showed when a step failed
            raise
        finally:
            browser.close()


def walk_through(page, app_url: str, expect) -> None:
    """Home, every page, training, a cluster on the UMAP, enrichment, co-expression."""
    page.goto(app_url)
    expect(page.get_by_text("Simulated data.", exact=False).first).to_be_visible(timeout=120_000)
    settle(page)
    no_exception(page)
    shot(page, "01-home")

    for name in PAGES:  # every page opens by its URL before there is a run
        page.goto(f"{app_url}/{name}")
        settle(page)
        no_exception(page)
    shot(page, "02-benchmark-without-run")

    page.goto(f"{app_url}/Train")
    settle(page)
    page.get_by_text("Advanced settings", exact=False).first.click()
    for label, value in (("Epochs", "15"), ("Genes per graph", "150")):
        box = page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Enter")
        settle(page)
    box = page.get_by_label("Strongest edges per gene", exact=True)
    box.fill("30")
    box.press("Enter")
    settle(page)
    shot(page, "03-train-settings")
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text("Explore it on the", exact=False).first).to_be_visible(timeout=600_000)
    no_exception(page)
    shot(page, "04-train-completed")

    page.get_by_role("link", name="Embedding").first.click()
    settle(page)
    select_cluster_by_click(page)
    expect(page.get_by_text("at resolution", exact=False).first).to_be_visible()
    # The clicked point's cluster is named and highlighted: its label in the message and
    # the selection box, the cluster in colour and every other point grey.
    message = page.get_by_text("Selected cluster", exact=False).first
    expect(message).to_be_visible()
    selected = message.inner_text()
    assert " · " in selected and "genes" in selected, selected
    cluster_title = selected.removeprefix("Selected cluster ").split(" (you clicked")[0]
    expect(page.get_by_text(f"Cluster {cluster_title}", exact=False).first).to_be_visible()
    traces = umap_traces(page)
    assert traces[0] == ["other clusters", "#C4CAD0"], traces[:2]
    assert len(traces) >= 2
    no_exception(page)
    shot(page, "05-embedding-cluster-selected")
    projector_shots(page, app_url)

    # Colour by cluster, then reopen the page's address in a fresh browser context.
    page.get_by_label("Colour by").first.click()
    page.get_by_role("option", name="Cluster", exact=True).click()
    settle(page)
    page.wait_for_function("() => window.location.search.includes('color=cluster')")
    shared = page.url
    fresh = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
    other = fresh.new_page()
    other.goto(shared)
    settle(other)
    no_exception(other)
    expect(other.get_by_text("Cluster", exact=True).first).to_be_visible()
    assert "color=cluster" in other.url
    legend = umap_traces(other)
    # Still the selected cluster on grey, now named by its cluster (coloured by cluster).
    assert legend[0][0] == "other clusters"
    assert legend[1][0].replace("<br>", " ").startswith(cluster_title.split(" · ")[0] + " · ")
    fresh.close()

    page.get_by_role("link", name="Enrichment").first.click()
    settle(page)
    page.get_by_role("button", name="Run enrichment").click()
    settle(page)
    expect(page.get_by_text("Results", exact=True).first).to_be_visible()
    expect(page.get_by_text("M0", exact=False).first).to_be_visible()
    no_exception(page)
    shot(page, "06-enrichment")

    page.get_by_role("link", name="Co-expression").first.click()
    settle(page)
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    no_exception(page)
    shot(page, "07-coexpression")

    for name in ("Clusters", "Benchmark"):
        page.get_by_role("link", name=name).first.click()
        settle(page)
        no_exception(page)
        shot(page, f"08-{name.lower()}")

    # The lab-meeting report: downloaded, then opened with the network cut off.
    page.get_by_role("link", name="Clusters").first.click()
    settle(page)
    with page.expect_download(timeout=180_000) as download:
        page.get_by_role("button", name="Download the lab-meeting report (HTML)").click()
    report = ARTIFACTS / "report.html"
    download.value.save_as(report)
    open_report_offline(page.context.browser, report)


def umap_traces(page) -> list[list[str]]:
    """[name, colour] of each trace of the UMAP (the first plot of the page)."""
    chart = page.locator(".js-plotly-plot").first
    chart.wait_for()
    return chart.evaluate("gd => gd.data.map(t => [t.name, t.marker && t.marker.color])")


def projector_shots(page, app_url: str) -> None:
    """Embedding, Clusters and Co-expression as a projector at 1280x720 shows them."""
    context = page.context.browser.new_context(viewport={"width": 1280, "height": 720})
    small = context.new_page()
    query = page.url.split("?", 1)[1] if "?" in page.url else ""
    for name in ("Embedding", "Clusters", "Coexpression"):
        small.goto(f"{app_url}/{name}?{query}")
        settle(small)
        no_exception(small)
        # The figure, below the title and controls, as a presenter scrolls to it.
        small.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
        small.wait_for_timeout(500)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        small.screenshot(path=str(ARTIFACTS / f"projector-{name.lower()}.png"))
    context.close()


def open_report_offline(browser, report: Path) -> None:
    """Open the report as a file with no network: no request, no script error, figures drawn."""
    context = browser.new_context(viewport={"width": 1280, "height": 720}, offline=True)
    page = context.new_page()
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(report.resolve().as_uri())
    page.wait_for_load_state("load")
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .main-svg').length")
    outside = [u for u in requests if not u.startswith(("file:", "data:", "blob:"))]
    assert outside == [], outside
    assert errors == [], errors
    # The UMAP's points are drawn (SVG markers), and so are its cluster labels.
    points = page.locator("#umap .scatterlayer .point").count()
    assert points > 100, points
    assert page.locator("#umap .annotation").count() >= 2
    assert page.get_by_text("Top enriched terms per cluster").count() == 1
    page.screenshot(path=str(ARTIFACTS / "projector-report.png"))
    page.locator("h2", has_text="Clusters").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "projector-report-clusters.png"))
    context.close()
