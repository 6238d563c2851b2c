"""The single-page app in headless Chromium against the real web service and operator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from playwright.sync_api import Browser, Page, expect

from tests.support.demo import DemoSite
from tests.support.processes import OperatorProcess, WebProcess
from tests.support.searches import create_provider


@pytest.fixture
def page_web(
    crds: None,
    kubeconfig: Path,
    namespace: str,
    operator: OperatorProcess,
    tmp_path: Path,
    api_client: client.ApiClient,
    demo_site: DemoSite,
) -> Iterator[WebProcess]:
    for name, url in [
        ("wiki", demo_site.url("page-wiki")),
        ("evil", demo_site.url("page-evil", script=1)),
        ("gone", demo_site.url("page-gone", status=404)),
    ]:
        create_provider(api_client, namespace, name, url)
    process = WebProcess(kubeconfig, tmp_path / "web.log", namespace).start()
    try:
        yield process
    finally:
        process.stop()


def test_a_search_from_the_page_shows_sandboxed_results(
    browser: Browser, page_web: WebProcess, artifacts: Path
) -> None:
    page: Page = browser.new_page(viewport={"width": 1100, "height": 1300})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    response = page.goto(f"{page_web.base}/")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    expect(page.locator("#provider-list label")).to_have_count(3)

    page.fill("#query", "café & <crème>")
    page.click("#start-button")
    expect(page.locator("#search-phase")).to_have_text("Completed", timeout=30000)
    expect(page.locator("#search-query")).to_have_text("café & <crème>")
    expect(page.locator("#progress-rows tr")).to_have_count(3)
    expect(page.locator("#chart .bar")).to_have_count(3)
    expect(page.locator("#watcher")).to_contain_text("answered 200", timeout=15000)

    frames = page.locator("iframe")
    expect(frames).to_have_count(3)
    for index in range(3):
        assert frames.nth(index).get_attribute("sandbox") == ""
    wiki = page.frame_locator("iframe[title='Results from wiki']")
    expect(wiki.locator("p")).to_contain_text("Results for café & <crème>")
    gone = page.frame_locator("iframe[title='Results from gone']")
    expect(gone.locator("h1")).to_have_text("No Results")
    evil = page.frame_locator("iframe[title='Results from evil']")
    expect(evil.locator("p")).to_contain_text("Results for")
    # The provider's page carries <script>window.__leaked = true; document.title = 'pwned'</script>:
    # in an empty sandbox it never runs, neither in the frame nor on our page.
    evil_frame = next(f for f in page.frames if f.url.endswith("/results/evil"))
    assert evil_frame.title() != "pwned"
    assert page.evaluate("typeof window.__leaked") == "undefined"
    assert page.title() == "Durable Search"
    assert dialogs == []

    expect(page.locator("#recent-list li").first).to_contain_text("café & <crème>")
    assert all(url.startswith(page_web.base) or url.startswith("data:") for url in requested), [
        u for u in requested if not u.startswith(page_web.base)
    ]
    page.screenshot(path=str(artifacts / "search-page.png"), full_page=True)
    page.close()


def test_errors_and_terminate_are_shown_clearly(
    browser: Browser,
    page_web: WebProcess,
    demo_site: DemoSite,
    api_client: client.ApiClient,
    namespace: str,
) -> None:
    create_provider(api_client, namespace, "stuck", demo_site.url("page-stuck", hang=1))
    page = browser.new_page()
    page.goto(f"{page_web.base}/#/s/s-000000000000")
    expect(page.locator("#search-error")).to_contain_text("no search 's-000000000000'")
    page.goto(f"{page_web.base}/")
    page.fill("#query", "   ")
    page.click("#start-button")
    expect(page.locator("#form-error")).to_contain_text("Type something")
    page.fill("#query", "never ending")
    page.check("input[value=stuck]")
    page.click("#start-button")
    expect(page.locator("#search-phase")).to_have_text("Running", timeout=15000)
    page.click("#terminate-button")
    expect(page.locator("#search-phase")).to_have_text("Terminated", timeout=15000)
    expect(page.locator("#progress-rows td.Terminated")).to_have_count(1)
    page.close()
