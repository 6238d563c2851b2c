"""The page shows each provider's CEL outputs as text, and No Results for an unmet condition."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from playwright.sync_api import Browser, Page, expect

from tests.support.demo import DemoSite
from tests.support.processes import OperatorProcess, WebProcess
from tests.support.searches import create_provider

MARKUP = "<img src=x onerror=alert(1)>"


@pytest.fixture
def outputs_web(
    crds: None,
    kubeconfig: Path,
    namespace: str,
    operator: OperatorProcess,
    tmp_path: Path,
    api_client: client.ApiClient,
    demo_site: DemoSite,
) -> Iterator[WebProcess]:
    create_provider(
        api_client,
        namespace,
        "counted",
        demo_site.url("outputs-counted"),
        successCondition="response.body.contains('Results for')",
        outputs=[
            {"name": "code", "expression": "response.statusCode"},
            {"name": "markup", "expression": f"'{MARKUP}'"},
        ],
    )
    create_provider(
        api_client,
        namespace,
        "picky",
        demo_site.url("outputs-picky"),
        successCondition="response.body.contains('nothing like this')",
    )
    process = WebProcess(kubeconfig, tmp_path / "web.log", namespace).start()
    try:
        yield process
    finally:
        process.stop()


def test_outputs_are_shown_as_text_and_an_unmet_condition_as_no_results(
    browser: Browser, outputs_web: WebProcess, artifacts: Path
) -> None:
    page: Page = browser.new_page(viewport={"width": 1100, "height": 1000})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{outputs_web.base}/")
    expect(page.locator("#provider-list label")).to_have_count(2)
    page.fill("#query", "outputs")
    page.click("#start-button")
    expect(page.locator("#search-phase")).to_have_text("Completed", timeout=30000)
    outputs = page.locator("#progress-rows td.outputs")
    expect(outputs.filter(has_text="code 200")).to_have_count(1)
    expect(outputs.filter(has_text=MARKUP)).to_have_count(1)
    expect(page.locator("#progress-rows img")).to_have_count(0)
    expect(page.locator("#progress-rows td.ConditionNotMet")).to_have_count(1)
    picky = page.frame_locator("iframe[title='Results from picky']")
    expect(picky.locator("h1")).to_have_text("No Results")
    counted = page.frame_locator("iframe[title='Results from counted']")
    expect(counted.locator("p")).to_contain_text("Results for outputs")
    assert dialogs == []
    page.screenshot(path=str(artifacts / "search-outputs.png"), full_page=True)
    page.close()
