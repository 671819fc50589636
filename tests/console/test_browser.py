"""The console in a real browser: Debian's Chromium driven by Playwright, against an API
process and a Celery worker of their own on the test servers.

One test walks what an operator does, in one signed-in context and on small data (so that
`make test` stays quick): sign in, every page, a build started and followed to its end
without a reload, a rollback confirmed in the page, an experiment's chart, a filter checked
as it is typed, a key created; then a CSRF attempt from the page's own script, and a `read`
key's refusals in a second context. No page may raise a script error. Screenshots of each
page go to CONSOLE_SCREENSHOTS where it is set."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import async_playwright, expect

from common.settings import Settings
from tests.client.test_cli import service  # noqa: F401  (the API process fixture)
from tests.conftest import ADMIN_KEY
from tests.service.test_auth import make_key
from tests.service.test_experiments import experiment, fans, simulate, start
from tests.workers.test_pipeline import worker

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Chromium is missing: `make test` installs it (apt-get install chromium)",
    ),
]
FLAGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGES = ("Overview", "Versions", "Builds", "Experiments", "Trending", "Items", "Users",
         "Scenarios", "Keys")  # fmt: skip
BUILD_SECONDS = 180


@pytest.fixture
def a_worker(settings: Settings, tmp_path: Path) -> Iterator[object]:
    with worker(settings, tmp_path) as process:
        yield process


async def test_an_operator_walks_the_console_in_chromium(
    service: str,  # noqa: F811
    a_worker: object,
    app: FastAPI,
    client: httpx.AsyncClient,
) -> None:
    first = await fans(client, app, 40)
    await start(client, experiment())
    await simulate(client, 40, seed=3)
    reader = await make_key(client, "read")
    shots = Path(os.environ["CONSOLE_SCREENSHOTS"]) if "CONSOLE_SCREENSHOTS" in os.environ else None
    errors: list[str] = []

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = await browser.new_context(base_url=service)
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
        page.on(
            "console",
            lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None,
        )

        async def snap(name: str) -> None:
            if shots is not None:
                shots.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

        # Sign in: the key goes into a password field and nowhere else.
        await page.goto("/console")
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        await page.get_by_label("API key").fill(ADMIN_KEY)
        await snap("sign-in")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        assert ADMIN_KEY not in page.url and ADMIN_KEY not in await page.content()

        for name in PAGES:
            await page.get_by_role("link", name=name, exact=True).click()
            await expect(page.get_by_role("heading", level=1)).to_contain_text(
                name.rstrip("s") if name != "Trending" else name
            )
            await snap(name.lower())

        # A build, started and followed to its end on the same page.
        await page.get_by_role("link", name="Builds", exact=True).click()
        await page.get_by_label("Force").check()
        await page.get_by_role("button", name="Build").click()
        await page.evaluate("window.stillThisPage = true")
        row = page.locator("tr[data-build]").first
        await expect(row.locator(".state")).to_have_text("succeeded", timeout=BUILD_SECONDS * 1000)
        assert await page.evaluate("window.stillThisPage === true"), "the page was reloaded"
        await expect(row.locator(".percent")).to_have_text("100%")
        await snap("build-done")
        second = int(await row.locator(".version").inner_text())
        assert second > first

        # Rollback: Activate opens an in-page confirmation; Confirm serves the old version.
        await page.get_by_role("link", name="Versions", exact=True).click()
        await (
            page.get_by_role("row")
            .filter(has_text=f"{first}")
            .get_by_role("button", name="Activate")
            .first.click()
        )
        confirm = page.get_by_role("button", name="Confirm")
        await expect(confirm).to_be_visible()
        await snap("versions-confirm")
        await confirm.click()
        await expect(page.get_by_text(f"Version {first} is active.")).to_be_visible()
        active = (await client.get("/api/v1/index/versions")).json()["active"]
        assert active == first

        # The experiment's chart: a picture, with a line or point per variant.
        await page.get_by_role("link", name="Experiments", exact=True).click()
        await page.get_by_role("link", name="exp", exact=True).click()
        chart = page.get_by_role("img", name="Conversion rate by variant over time")
        await expect(chart).to_be_visible()
        assert await chart.locator("circle").count() >= 2
        await snap("experiment")

        # The scenario editor checks the filter as it is typed.
        await page.get_by_role("link", name="Scenarios", exact=True).click()
        await page.get_by_label("Scenario id").fill("home")
        await page.get_by_role("button", name="Edit").click()
        field = page.get_by_label("Filter", exact=True)
        await field.fill("attributes.price <")
        await expect(page.locator("#filter-check")).to_contain_text("✗")
        await field.fill("attributes.price < 50")
        await expect(page.locator("#filter-check")).to_contain_text("✓")
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_text("Saved")).to_be_visible()
        await snap("scenario")

        # A user's list with its reasons, and history; an item's similar items.
        await page.get_by_role("link", name="Users", exact=True).click()
        await page.get_by_label("User id").fill("fan-1")
        await page.get_by_role("button", name="Show").click()
        await expect(page.get_by_role("table").filter(has_text="Their list")).to_be_visible()
        await expect(page.get_by_text("History, newest first")).to_be_visible()
        await snap("user")
        await page.get_by_role("link", name="Items", exact=True).click()
        await page.get_by_label("Item id").fill("horror-1")
        await page.get_by_role("button", name="Similar items").click()
        await expect(page.get_by_text("Similar items", exact=True)).to_be_visible()
        await snap("item")
        # An item in a list links to that item's own page.
        first_alike = page.get_by_role("table").get_by_role("link").first
        name = await first_alike.inner_text()
        await first_alike.click()
        await expect(page.get_by_role("heading", name=f"Item {name}")).to_be_visible()

        # A key, its token shown once.
        await page.get_by_role("link", name="Keys", exact=True).click()
        await page.get_by_label("Name").fill("console-made")
        await page.get_by_role("button", name="Create").click()
        token = await page.get_by_label("Token").input_value()
        assert len(token) >= 16
        await snap("keys-created")

        # A script of this very page posting without the CSRF token is refused (the
        # browser logs that refusal, which is no error of the page's).
        before = len(errors)
        status = await page.evaluate(
            """async () => (await fetch('/console/keys', {method: 'POST',
                 headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                 body: 'name=sneaky&role=admin'})).status"""
        )
        assert status == 403
        assert all("403" in e for e in errors[before:])
        del errors[before:]
        names = [k["name"] for k in (await client.get("/api/v1/keys")).json()["keys"]]
        assert "sneaky" not in names and "console-made" in names

        # A read key, in a context of its own: three pages, and refusals for the rest.
        readers = await browser.new_context(base_url=service)
        other = await readers.new_page()
        other.on("pageerror", lambda exc: errors.append(f"{other.url}: {exc}"))
        await other.goto("/console/sign-in")
        await other.get_by_label("API key").fill(reader)
        await other.get_by_role("button", name="Sign in").click()
        await expect(other.get_by_role("heading", name="Trending")).to_be_visible()
        nav = other.get_by_role("navigation", name="Pages")
        assert await nav.get_by_role("link").all_inner_texts() == ["Trending", "Items", "Users"]
        await other.goto("/console/builds")
        await expect(other.get_by_role("heading", name="Not for this key")).to_be_visible()
        assert await other.get_by_role("button", name="Build").count() == 0
        await other.goto("/console/users/fan-1")
        await expect(other.get_by_role("table").filter(has_text="Their list")).to_be_visible()
        assert await other.get_by_text("History, newest first").count() == 0
        if shots is not None:
            await other.screenshot(path=str(shots / "read-key-user.png"), full_page=True)
        await browser.close()

    assert errors == []
