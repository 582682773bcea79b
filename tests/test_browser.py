"""The leaderboard page in a real browser: headless Chromium renders index.html, its tables are there (the
dataset's, the efficiency one, a family's matrix of variants), the plots load, clicking a header sorts a
table, and the page fetches nothing from the network.

Needs Debian's ``chromium`` (``apt-get install -y chromium``; or HARNESS_CHROMIUM=/path/to/chrome) and the
PyPI package ``playwright`` (the ``test`` extra), which drives that binary: ``playwright install`` is never
needed. The test skips, saying so, only when no Chromium binary is found.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from _report_fakes import TOY, make_dense_variants, make_fake_runs

from harness.report.leaderboard import build_leaderboard
from harness.report.results import load_runs

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> "str | None":
    for candidate in (os.environ.get("HARNESS_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                      shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture()
def page(tmp_path):
    exe = chromium_path()
    if exe is None:
        pytest.skip("no Chromium binary: apt-get install -y chromium (or set HARNESS_CHROMIUM)")
    from playwright.sync_api import sync_playwright  # the test extra; a missing package is a failure

    profile = tmp_path / "chromium-profile"  # a fresh, empty --user-data-dir
    profile.mkdir()
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=exe, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 1000})
        try:
            yield context.new_page()
        finally:
            context.close()


def _column(page, index: int, section: str = "dataset") -> list[str]:
    return page.eval_on_selector_all(
        f"section.{section} table.harness-table tbody tr",
        f"rows => rows.map(r => (r.cells[{index}].getAttribute('data-sort') || ''))")


def test_leaderboard_page_renders_and_sorts(page, tmp_path):
    out = tmp_path / "leaderboards" / "toy"
    runs = make_fake_runs(tmp_path / "runs")
    make_dense_variants(runs)
    build_leaderboard(load_runs([runs]), "toy", out, datasets=[TOY])
    requests, errors = [], []
    page.on("request", lambda req: requests.append(req.url))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    page.goto((out / "index.html").as_uri())
    page.wait_for_load_state("load")
    shot = tmp_path / "leaderboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

    assert page.title() == "Leaderboard: toy"
    for section in ("dataset", "efficiency", "matrices"):
        table = page.locator(f"section.{section} table.harness-table")
        assert table.count() == 1 and table.is_visible(), section
    headers = [h.strip() for h in page.locator("section.dataset table.harness-table thead th").all_inner_texts()]
    assert headers == ["recipe", "nDCG@10", "R@100"]
    eff_headers = [h.strip() for h in page.locator("section.efficiency thead th").all_inner_texts()]
    assert eff_headers[0] == "recipe" and "latency p50 (ms)" in eff_headers and "nDCG@10" not in eff_headers
    runs_shown = ["bm25-toy", "colbert-toy", "dense-online", "dense-static", "dense-untrained", "splade-toy"]
    assert _column(page, 0) == runs_shown  # as generated: baseline first
    assert _column(page, 0, "matrices")[-1] == "untrained" and "†" in page.locator("section.matrices").inner_text()

    # the plots are there and decoded (SVG files next to the page)
    sizes = page.eval_on_selector_all("figure img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
    assert len(sizes) == 2 and all(done and width > 0 for done, width in sizes)

    ndcg = page.locator("section.dataset table.harness-table thead th", has_text="nDCG@10")
    ndcg.click()
    values = [float(v) for v in _column(page, 1)]
    assert values == sorted(values) and ndcg.get_attribute("aria-sort") == "ascending"
    ndcg.click()
    values = [float(v) for v in _column(page, 1)]
    assert values == sorted(values, reverse=True) and ndcg.get_attribute("aria-sort") == "descending"
    assert _column(page, 0)[:3] == ["dense-online", "dense-static", "splade-toy"]

    latency = eff_headers.index("latency p50 (ms)")
    page.locator("section.efficiency thead th", has_text="latency p50").click()
    assert _column(page, latency, "efficiency") == ["12.5", "95", "", "", "", ""]  # unmeasured sorts last
    page.locator("section.dataset thead th", has_text="recipe").click()
    assert _column(page, 0) == runs_shown
    page.screenshot(path=str(tmp_path / "leaderboard-sorted.png"), full_page=True)

    assert not errors, errors
    offline = [u for u in requests if not u.startswith(("file:", "data:", "about:"))]
    assert not offline, f"the page fetched from the network: {offline}"
