"""The comparison page in a real browser: Playwright drives Debian's Chromium (headless) against
the real server on loopback with the tiny model, the page mounted at /ui behind its sign-in.

Each test saves screenshots of the states it reaches to tests/artifacts/ui/. The tiny model has
random weights: the tests check that the page shows a winner, the dimension table, the
rationale, the ranking and readable errors, not that the verdicts are good.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.slow
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(
        "Chromium is not installed (apt-get install chromium); the browser tests need it",
        allow_module_level=True,
    )

SHOTS = ARTIFACTS / "ui"
TIMEOUT_MS = 300_000  # a judgement on a busy 2-core machine; the tiny model is quick otherwise
expect = playwright_api.expect


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


def open_page(browser, url: str, api_key: str | None = None):
    """A fresh page at `url`, signed in with the API key when the page asks for one."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(url)
    if api_key:
        page.get_by_label("username").fill("marketing")
        page.get_by_label("password").fill(api_key)
        page.get_by_role("button", name="Login").click()
    expect(page.locator("#c4u-compare")).to_be_visible()
    return page


@pytest.fixture
def ui(browser, ui_server: str, ui_api_key: str):
    page = open_page(browser, f"{ui_server}/ui/", ui_api_key)
    yield page
    page.close()


def shot(page, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def expect_loaded(page, selector: str) -> None:
    """Every image under `selector` has arrived and decoded (a broken link has no width)."""
    images = page.locator(f"{selector} img")
    expect(images.first).to_be_visible()
    for handle in images.element_handles():
        page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=handle)


def upload_pair(page, a: Path, b: Path, query: str, title: str) -> None:
    page.locator("#c4u-input-a input[type=file]").set_input_files(str(a))
    page.locator("#c4u-input-b input[type=file]").set_input_files(str(b))
    expect_loaded(page, "#c4u-input-a")
    expect_loaded(page, "#c4u-input-b")
    page.locator("#c4u-query textarea").fill(query)
    page.locator("#c4u-title textarea").fill(title)


def expect_verdict(page) -> None:
    """Winner, dimension table and rationale are all on the page."""
    verdict = page.locator("#c4u-verdict")
    expect(verdict).to_contain_text("WINNER", timeout=TIMEOUT_MS)
    expect(verdict).to_contain_text("Confidence")
    winner = verdict.locator(".c4u-banner").get_attribute("data-winner")
    assert winner in ("A", "B")
    expect(verdict.locator(".c4u-winner")).to_contain_text(f"Creative {winner}")
    expect(page.locator(f"#c4u-view-{winner.lower()}")).to_contain_text(f"{winner} — winner")
    expect_loaded(page, "#c4u-view-a")
    expect_loaded(page, "#c4u-view-b")
    table = page.locator("#c4u-dimensions")
    for words in ("Question", "Verdict", "Reason", "Q3 query match", "Q9 background"):
        expect(table).to_contain_text(words)
    expect(page.locator("#c4u-rationale textarea")).not_to_have_value("")
    expect(page.locator("#c4u-status")).to_contain_text("Done")


def test_compare_two_uploads(ui, ui_images: dict[str, Path]) -> None:
    upload_pair(ui, ui_images["red"], ui_images["blue"], "red dress", "Nova red dress")
    shot(ui, "compare-1-inputs")
    ui.locator("#c4u-compare").click()
    expect_verdict(ui)
    shot(ui, "compare-2-result")
    ui.get_by_role("tab", name="Swipe between them").click()
    expect_loaded(ui, "#c4u-slider")
    shot(ui, "compare-3-slider")


def test_example_runs_with_one_click(ui) -> None:
    """A first-time visitor clicks a CreativeSim example and sees a verdict."""
    ui.get_by_text("true CTR A").first.click()
    expect_verdict(ui)
    expect(ui.locator("#c4u-query textarea")).not_to_have_value("")
    expect_loaded(ui, "#c4u-input-a")  # the example's creatives, served under /ui
    expect_loaded(ui, "#c4u-input-b")
    shot(ui, "compare-example")


def test_rank_four(ui, ui_images: dict[str, Path]) -> None:
    ui.get_by_role("tab", name="Rank several").click()
    names = ["red", "blue", "green", "gold"]
    ui.locator("#c4u-rank-files input[type=file]").set_input_files(
        [str(ui_images[n]) for n in names]
    )
    for n in names:
        expect(ui.locator("#c4u-rank-files")).to_contain_text(n)  # the name, then ".png"
    ui.locator("#c4u-r-query textarea").fill("red dress")
    ui.locator("#c4u-r-title textarea").fill("Nova red dress")
    shot(ui, "rank-1-inputs")
    ui.locator("#c4u-rank").click()
    expect(ui.locator("#c4u-rank-summary")).to_contain_text("BEST", timeout=TIMEOUT_MS)
    expect(ui.locator("#c4u-ranked img")).to_have_count(4)
    expect_loaded(ui, "#c4u-ranked")
    table = ui.locator("#c4u-rank-table")
    for words in ("Rank", "Score", "Why here", *(f"{n}.png" for n in names)):
        expect(table).to_contain_text(words)
    csv_link = ui.locator("#c4u-rank-downloads a[href$='ranking.csv']")
    expect(csv_link).to_have_count(1)
    expect(ui.locator("#c4u-rank-downloads a[href$='ranking.json']")).to_have_count(1)
    lines = ui.request.get(csv_link.get_attribute("href")).text().splitlines()
    assert lines[0].startswith("rank,creative,score") and len(lines) == 5
    shot(ui, "rank-2-result")


def test_corrupt_upload_shows_a_readable_error(ui, ui_images: dict[str, Path]) -> None:
    ui.locator("#c4u-input-a input[type=file]").set_input_files(str(ui_images["corrupt"]))
    error = ui.locator("#c4u-error-a")
    expect(error).to_contain_text("Creative A is not a usable image", timeout=60_000)
    expect(error).to_contain_text("corrupt or truncated")
    expect(ui.locator("#c4u-error-b")).to_be_hidden()
    shot(ui, "error-1-corrupt-upload")
    ui.locator("#c4u-input-b input[type=file]").set_input_files(str(ui_images["blue"]))
    ui.locator("#c4u-query textarea").fill("red dress")
    ui.locator("#c4u-compare").click()
    expect(ui.locator("#c4u-status")).to_contain_text("Fix the marked input")
    expect(error).to_contain_text("not a usable image")
    assert "Traceback" not in ui.content()
    shot(ui, "error-2-compare-refused")


def test_server_down_shows_a_readable_error(
    browser, ui_standalone, ui_images: dict[str, Path]
) -> None:
    """`creative4u ui` pointed at a port where no server listens."""
    from serve.launch import free_port

    page = open_page(browser, ui_standalone(f"http://127.0.0.1:{free_port()}"))
    try:
        upload_pair(page, ui_images["red"], ui_images["blue"], "red dress", "Nova red dress")
        page.locator("#c4u-compare").click()
        status = page.locator("#c4u-status")
        expect(status).to_contain_text("Cannot reach the selection API", timeout=60_000)
        expect(status).to_contain_text("Is the server running?")
        assert "Traceback" not in page.content()
        shot(page, "error-3-server-down")
    finally:
        page.close()
