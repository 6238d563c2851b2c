"""The page's management view in headless Chromium: deep links, the timeline, Rerun and Purge."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kubernetes import client
from playwright.sync_api import Browser, Page, expect

from tests.support.demo import DemoSite
from tests.support.processes import OperatorProcess, WebProcess
from tests.support.searches import create_provider


@pytest.fixture
def manage_web(
    crds: None,
    kubeconfig: Path,
    namespace: str,
    operator: OperatorProcess,
    tmp_path: Path,
    api_client: client.ApiClient,
    demo_site: DemoSite,
) -> Iterator[WebProcess]:
    # One provider retried after a 503 with Retry-After: 1, one polled twice after a 202.
    create_provider(
        api_client, namespace, "flaky", demo_site.url(f"mp-flaky-{namespace}", fail=1, retryafter=1)
    )
    create_provider(
        api_client, namespace, "async", demo_site.url("mp-async", **{"async": 3, "retryafter": 1})
    )
    process = WebProcess(kubeconfig, tmp_path / "web.log", namespace).start()
    try:
        yield process
    finally:
        process.stop()


def start(web: WebProcess, query: str) -> str:
    with httpx.Client(base_url=web.base, trust_env=False, timeout=30) as http:
        response = http.post("/api/searches", json={"query": query})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def kinds(page: Page, lane: str) -> list[str | None]:
    rects = page.locator(f"#timeline g.lane[data-name='{lane}'] rect")
    return [rects.nth(i).get_attribute("data-kind") for i in range(rects.count())]


def test_a_deep_link_opens_the_search_and_its_timeline_shows_retries_and_polls_in_order(
    browser: Browser, manage_web: WebProcess, artifacts: Path
) -> None:
    search_id = start(manage_web, "timeline")
    page = browser.new_page(viewport={"width": 1000, "height": 1000})
    page.goto(f"{manage_web.base}/#/searches/{search_id}")
    expect(page.locator("#search-phase")).to_have_text("Completed", timeout=30000)
    expect(page.locator("#search-query")).to_have_text("timeline")
    expect(page.locator("#watcher")).to_contain_text("answered 200", timeout=15000)
    expect(page.locator("#timeline g.lane.watcher")).to_have_count(1)
    flaky = page.locator("#timeline g.lane[data-name='flaky'] rect")
    expect(flaky).to_have_count(3)
    assert kinds(page, "flaky") == ["attempt", "wait", "attempt"]
    assert flaky.first.get_attribute("data-status") == "503"
    assert "failed" in (flaky.first.get_attribute("class") or "")
    assert kinds(page, "async") == ["attempt", "wait", "poll", "wait", "poll", "wait", "poll"]
    # In order along the axis: each segment starts where (or after) the one before it.
    for lane in ("flaky", "async"):
        rects = page.locator(f"#timeline g.lane[data-name='{lane}'] rect")
        xs = [float(rects.nth(i).get_attribute("x") or 0) for i in range(rects.count())]
        assert xs == sorted(xs), (lane, xs)
    assert "attempt 1, answered 503" in page.locator("#timeline-text").inner_text()
    page.locator("#search").screenshot(path=str(artifacts / "search-management.png"))
    page.locator("#timeline").screenshot(path=str(artifacts / "timeline.png"))  # docs/'s
    # The older link form is an alias.
    page.goto(f"{manage_web.base}/#/s/{search_id}")
    expect(page.locator("#search-phase")).to_have_text("Completed")
    page.close()


def test_rerun_purge_and_the_status_filter_work_from_the_keyboard(
    browser: Browser, manage_web: WebProcess
) -> None:
    first = start(manage_web, "again and again")
    page = browser.new_page()
    page.goto(f"{manage_web.base}/#/searches/{first}")
    expect(page.locator("#search-phase")).to_have_text("Completed", timeout=30000)
    page.focus("#rerun-button")
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "#/searches/" in url and first not in url, timeout=10000)
    second = page.url.rsplit("/", 1)[1]
    expect(page.locator("#search-phase")).to_have_text("Completed", timeout=30000)
    expect(page.locator("#recent-list li")).to_have_count(2)
    # The list filters by status.
    page.select_option("#recent-status", "Running")
    expect(page.locator("#recent-error")).to_have_text("No Running searches.")
    expect(page.locator("#recent-list li")).to_have_count(0)
    page.select_option("#recent-status", "Completed")
    expect(page.locator("#recent-list li")).to_have_count(2)
    # Purge this one: gone from the API and from the page.
    page.focus("#purge-button")
    page.keyboard.press("Enter")
    expect(page.locator("#recent-message")).to_have_text(f"Purged {second}.")
    expect(page.locator("#search")).to_be_hidden()
    expect(page.locator("#recent-list li")).to_have_count(1)
    with httpx.Client(base_url=manage_web.base, trust_env=False, timeout=30) as http:
        assert http.get(f"/api/searches/{second}").status_code == 404
        # Purge the finished ones the filter shows.
        page.click("#purge-recent-button")
        expect(page.locator("#recent-message")).to_have_text("Purged 1 finished search(es).")
        expect(page.locator("#recent-list li")).to_have_count(0)
        assert http.get(f"/api/searches/{first}").status_code == 404
    page.close()
