"""The console through HTTP in-process: sign-in and its cookie, CSRF, roles, and what each
page shows. The browser tests (tests/console/) drive the same pages in Chromium."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from storage import cursors
from tests.conftest import ADMIN_KEY
from tests.service.test_auth import make_key
from tests.service.test_experiments import experiment, fans, results_of, simulate, start

PAGES = (
    "overview",
    "versions",
    "builds",
    "experiments",
    "trending",
    "items",
    "users",
    "scenarios",
    "keys",
)


def stranger(app: FastAPI) -> httpx.AsyncClient:
    """A browser-like client: no Authorization header, no session yet."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://recs.test")


@asynccontextmanager
async def signed_in(app: FastAPI, token: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client signed in with `token`."""
    async with stranger(app) as browser:
        answer = await browser.post("/console/sign-in", data={"token": token})
        assert answer.status_code == 303, answer.text
        yield browser


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found[1]


async def test_signing_in_sets_a_signed_httponly_strict_cookie_that_holds_no_key(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async with stranger(app) as browser:
        assert (await browser.get("/console/overview")).headers["location"] == "/console/sign-in"
        form = await browser.get("/console/sign-in")
        assert 'type="password"' in form.text and "Sign in" in form.text
        wrong = await browser.post("/console/sign-in", data={"token": "not-a-key-at-all-123"})
        assert wrong.status_code == 401 and "not valid" in wrong.text
        answer = await browser.post("/console/sign-in", data={"token": ADMIN_KEY})
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
        assert "Max-Age=" in cookie
        assert ADMIN_KEY not in cookie
        for page in PAGES:
            shown = await browser.get(f"/console/{page}")
            assert shown.status_code == 200, (page, shown.text[:800])
            assert ADMIN_KEY not in shown.text
            assert shown.headers["cache-control"] == "no-store"
            for label in ("Overview", "Versions", "Builds", "Keys"):
                assert f">{label}</a>" in shown.text
        # A cookie altered by a byte is no session.
        value = browser.cookies["recs_console"]
        browser.cookies.set(
            "recs_console",
            value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1],
            path="/console",
        )
        assert (await browser.get("/console/keys")).status_code == 303


async def test_a_post_without_its_csrf_token_or_from_another_origin_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async with signed_in(app, ADMIN_KEY) as browser:
        token = csrf_of(await browser.get("/console/builds"))
        refused = await browser.post("/console/keys", data={"name": "sneaky", "role": "admin"})
        assert refused.status_code == 403 and "CSRF" in refused.text
        wrong = await browser.post(
            "/console/keys", data={"name": "sneaky", "role": "admin", "csrf": token + "x"}
        )
        assert wrong.status_code == 403
        elsewhere = await browser.post(
            "/console/keys",
            data={"name": "sneaky", "role": "admin", "csrf": token},
            headers={"Origin": "https://evil.example"},
        )
        assert elsewhere.status_code == 403
        assert (await client.get("/api/v1/keys")).json()["keys"] == []
        made = await browser.post(
            "/console/keys", data={"name": "kept", "role": "read", "csrf": token}
        )
        assert made.status_code == 201
        new_token = re.search(r'id="new-token" readonly value="([^"]+)"', made.text)
        assert new_token is not None
        listed = (await client.get("/api/v1/keys")).json()["keys"]
        assert [k["name"] for k in listed] == ["kept"]
        # The token works as a read key, and is on no page after this one.
        ok = await client.get(
            "/api/v1/trending", headers={"Authorization": f"Bearer {new_token[1]}"}
        )
        assert ok.status_code == 200
        assert new_token[1] not in (await browser.get("/console/keys")).text


async def test_a_read_key_sees_trending_similar_items_and_try_it_but_no_history(
    app: FastAPI, client: httpx.AsyncClient, shop: dict[str, dict[str, Any]]
) -> None:
    await client.post(
        "/api/v1/interactions",
        json={"user_id": "horror-fan-0", "item_id": "space-3", "type": "view"},
    )
    token = await make_key(client, "read")
    async with signed_in(app, token) as browser:
        home = await browser.get("/console/")
        assert home.headers["location"] == "/console/trending"
        trending = await browser.get("/console/trending")
        assert trending.status_code == 200
        nav = re.findall(r'<li><a href="/console/(\w+)"', trending.text)
        assert nav == ["trending", "items", "users"]
        for page in ("overview", "versions", "builds", "experiments", "scenarios", "keys"):
            refused = await browser.get(f"/console/{page}")
            assert refused.status_code == 403, page
            assert "admin" in refused.text
        user = await browser.get("/console/users/horror-fan-0")
        assert user.status_code == 200
        assert "Their list" in user.text and "History" not in user.text
        assert "space-3" not in user.text.split("Their list")[0]
        # Reasons such as "because you liked X" would name their history.
        assert "because you liked" not in user.text and "Why" not in user.text
        item = await browser.get("/console/items/horror-1")
        assert item.status_code == 200 and "Similar items" in item.text
        assert "Attributes" not in item.text  # the item's record needs write
        csrf = csrf_of(trending)
        build = await browser.post("/console/builds", data={"csrf": csrf})
        assert build.status_code == 403
    listed = await client.get("/api/v1/index/builds")
    assert listed.json()["builds"] == []  # the shop's version was built directly


async def test_a_revoked_keys_session_ends(app: FastAPI, client: httpx.AsyncClient) -> None:
    token = await make_key(client, "write")
    async with signed_in(app, token) as browser:
        assert (await browser.get("/console/users")).status_code == 200
        key_id = (await client.get("/api/v1/keys")).json()["keys"][0]["key_id"]
        assert (await client.delete(f"/api/v1/keys/{key_id}")).status_code == 204
        assert (await browser.get("/console/users")).headers["location"] == "/console/sign-in"


async def test_the_scenario_editor_checks_the_filter_and_saves_through_the_api_rules(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async with signed_in(app, ADMIN_KEY) as browser:
        csrf = csrf_of(await browser.get("/console/scenarios/home"))
        good = await browser.post(
            "/console/filters/check",
            data={"filter": "attributes.price < 10"},
            headers={"X-CSRF-Token": csrf},
        )
        assert good.json()["ok"] is True
        bad = await browser.post(
            "/console/filters/check", data={"filter": "price <"}, headers={"X-CSRF-Token": csrf}
        )
        assert bad.json()["ok"] is False and bad.json()["message"]
        refused = await browser.post(
            "/console/scenarios/home", data={"csrf": csrf, "filter": "price <", "boosters": "[]"}
        )
        assert refused.status_code == 400 and "filter" in refused.text
        assert (await client.get("/api/v1/scenarios/home")).status_code == 404
        saved = await browser.post(
            "/console/scenarios/home",
            data={
                "csrf": csrf,
                "filter": "attributes.price < 10",
                "strategy": "popular",
                "boosters": "[]",
            },
        )
        assert saved.status_code == 303
        stored = (await client.get("/api/v1/scenarios/home")).json()
        assert stored["filter"] == "attributes.price < 10" and stored["strategy"] == "popular"


async def test_an_experiments_page_draws_its_conversion_over_time(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await fans(client, app, 40)
    await start(client, experiment())
    await simulate(client, 40, seed=3)
    results = await results_of(client, "exp")
    timeline = (await client.get("/api/v1/experiments/exp/timeline")).json()
    for variant in timeline["variants"]:
        last = variant["points"][-1]
        # The last point is the whole experiment: the results' own figures.
        assert last["users"] == results[variant["name"]]["users"]
        assert last["converted_users"] == results[variant["name"]]["converted_users"]
        assert [p["users"] for p in variant["points"]] == sorted(
            p["users"] for p in variant["points"]
        )
    async with signed_in(app, ADMIN_KEY) as browser:
        page = await browser.get("/console/experiments/exp")
        assert page.status_code == 200
        svg = re.search(r"<svg class=\"chart\".*?</svg>", page.text, re.S)
        assert svg is not None and "<circle" in svg[0]
        assert "control" in svg[0] and "popular" in svg[0]


@pytest.mark.parametrize(
    "page",
    [
        "/console/items/" + "x" * 200,
        "/console/versions?a=x",
        "/console/users/%00",
        "/console/builds?cursor=yesterday",
        "/console/items?cursor=%%%",
    ],
)
async def test_bad_input_in_a_console_url_is_a_400_page(
    app: FastAPI, client: httpx.AsyncClient, page: str
) -> None:
    async with signed_in(app, ADMIN_KEY) as browser:
        answer = await browser.get(page)
        assert answer.status_code in (400, 422), answer.text[:500]
        assert "Refused" in answer.text


async def test_an_experiment_is_started_and_stopped_from_the_console(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    variants = (
        '[{"name": "control", "weight": 1},'
        ' {"name": "pop", "weight": 1, "params": {"strategy": "popular"}}]'
    )
    async with signed_in(app, ADMIN_KEY) as browser:
        csrf = csrf_of(await browser.get("/console/experiments"))
        bad = await browser.post(
            "/console/experiments",
            data={
                "csrf": csrf,
                "experiment_id": "e1",
                "variants": '[{"name": "solo", "weight": 1}]',
            },
        )
        assert bad.status_code == 422 and "variants" in bad.text
        assert (await client.get("/api/v1/experiments")).json()["experiments"] == []
        made = await browser.post(
            "/console/experiments",
            data={
                "csrf": csrf,
                "experiment_id": "e1",
                "variants": variants,
                "description": "<b>x</b>",
            },
        )
        assert made.status_code == 303 and made.headers["location"] == "/console/experiments/e1"
        page = await browser.get("/console/experiments/e1")
        assert "&lt;b&gt;x&lt;/b&gt;" in page.text and "<b>x</b>" not in page.text
        assert 'data-confirm="stop-experiment"' in page.text
        stopped = await browser.post(
            "/console/experiments/e1/stop", data={"csrf": csrf, "reason": "done"}
        )
        assert stopped.status_code == 303
    found = (await client.get("/api/v1/experiments/e1")).json()
    assert found["active"] is False and found["stop_reason"] == "done"


async def test_odd_cookies_tokens_and_ids_get_no_server_error(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async with stranger(app) as nobody:
        odd = [(b"cookie", "recs_console=a.\u00e9".encode())]
        assert (await nobody.get("/console/keys", headers=odd)).status_code == 303
    async with signed_in(app, ADMIN_KEY) as browser:
        refused = await browser.post(
            "/console/keys", data={"name": "x", "role": "read", "csrf": "\u00e9"}
        )
        assert refused.status_code == 403
        # An id with ? and # in it is sent on whole, not cut at them.
        moved = await browser.get("/console/users", params={"user_id": "a?b#c"})
        assert moved.headers["location"] == "/console/users/a%3Fb%23c"
        shown = await browser.get(moved.headers["location"])
        assert shown.status_code == 200 and "User a?b#c" in shown.text
        assert "No record" in shown.text  # a new user: the list, no history to page
        # A cursor this service never issued, at a time PostgreSQL cannot hold: a 4xx.
        far = cursors.encode({"at": "0001-01-01T00:00:00+01:00", "id": "b_x"})
        assert (await browser.get("/console/builds", params={"cursor": far})).status_code == 422


async def test_signing_out_ends_the_session_for_every_copy_of_its_cookie(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async with signed_in(app, ADMIN_KEY) as browser:
        page = await browser.get("/console/keys")
        copy = browser.cookies["recs_console"]
        out = await browser.post("/console/sign-out", data={"csrf": csrf_of(page)})
        assert out.status_code == 303
    async with stranger(app) as replay:
        replay.cookies.set("recs_console", copy, path="/console")
        assert (await replay.get("/console/keys")).headers["location"] == "/console/sign-in"


def listed_ids(html: str) -> list[str]:
    """The item ids a page's first items table links to, in order."""
    table = html.split("<table", 1)[1].split("</table>", 1)[0]
    return re.findall(r'href="/console/items/([^"]+)"', table)


async def test_the_console_lists_what_the_api_answers(
    app: FastAPI, client: httpx.AsyncClient, shop: dict[str, dict[str, Any]]
) -> None:
    """Each page calls the route's use case: the same items, in the same order."""
    fresh = {"Cache-Control": "no-cache"}
    api = {
        "/console/trending": (await client.get("/api/v1/trending?limit=20")).json(),
        "/console/items/horror-1": (
            await client.get("/api/v1/items/horror-1/similar?limit=20")
        ).json(),
        "/console/users/horror-fan-0": (
            await client.get("/api/v1/recommendations/horror-fan-0?limit=20", headers=fresh)
        ).json(),
    }
    async with signed_in(app, ADMIN_KEY) as browser:
        for page, answer in api.items():
            shown = listed_ids((await browser.get(page)).text)
            assert shown == [i["item_id"] for i in answer["items"]], page
            assert shown, page
