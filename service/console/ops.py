"""Overview, Versions and Builds: what serves, how the versions compare, rollback, and
builds followed live. Admin pages: the same role as /api/v1/index."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from common.errors import InvalidInput
from common.models import BuildIn, VersionSummary
from service.console import charts
from service.console.figures import RequestFigures
from service.console.web import PREFIX, Ctx, go, page
from service.usecases import versions
from service.usecases.overview import overview as overview_of

router = APIRouter(prefix=PREFIX, include_in_schema=False)
VERSIONS_PAGE = 20
BUILDS_PAGE = 20
# The held-out figures a version records per source (indexing/tuning.py), compared by name.
FIGURES = ("ndcg@10", "recall@10", "mrr", "coverage")


@router.get("/overview")
@page("admin", "GET", "/api/v1/index/versions")
async def overview(ctx: Ctx) -> Response:
    found = await overview_of(ctx.app)
    figures: RequestFigures = ctx.request.app.state.console_figures
    chart = None
    if found.active is not None:
        chart = charts.bar_chart(
            f"Version {found.active.version}: held-out NDCG@10 beside popularity's",
            _beside_popular(found.active, "ndcg@10"),
        )
    return ctx.render(
        "overview.html", found=found, requests=figures.read(), chart=chart, figures=FIGURES
    )


@router.get("/versions")
@page("admin", "GET", "/api/v1/index/versions")
async def versions_page(ctx: Ctx) -> Response:
    listed = await versions.list_versions(ctx.app)
    page_no = max(0, _int(ctx.query("page"), 0))
    shown = listed.versions[page_no * VERSIONS_PAGE : (page_no + 1) * VERSIONS_PAGE]
    numbers = [v.version for v in listed.versions]
    a, b = (_version(v) if v else None for v in (ctx.query("a"), ctx.query("b")))
    if a is None and b is None and len(numbers) >= 2:
        a = listed.active or numbers[0]  # the active version beside the newest other
        b = next(n for n in numbers if n != a)
    compared = [await versions.get_version(ctx.app, n) for n in (a, b) if n is not None]
    rejected = {
        v.version: (await versions.get_version(ctx.app, v.version)).manifest.get("gate") or {}
        for v in shown
        if v.state == "rejected"
    }
    chart = None
    if len(compared) == 2:
        chart = charts.bar_chart(
            "Held-out NDCG@10 of the two versions and of popularity",
            [(f"v{v.version}", _figure(v.metrics, "hybrid", "ndcg@10")) for v in compared]
            + [("popularity", _figure(compared[0].metrics, "popular", "ndcg@10"))],
        )
    return ctx.render(
        "versions.html",
        listed=listed,
        shown=shown,
        numbers=numbers,
        page_no=page_no,
        more=len(listed.versions) > (page_no + 1) * VERSIONS_PAGE,
        compared=compared,
        rejected=rejected,
        figures=FIGURES,
        sources=_sources(compared),
        chart=chart,
    )


@router.post("/versions/{version}/activate")
@page("admin", "POST", "/api/v1/index/versions/activate")
async def activate(ctx: Ctx) -> Response:
    version = _version(ctx.request.path_params["version"])
    await versions.activate(ctx.app, version)
    return go("versions", query=f"activated={version}")


@router.get("/builds")
@page("admin", "GET", "/api/v1/index/builds")
async def builds_page(ctx: Ctx) -> Response:
    listed = await versions.list_builds(ctx.app, BUILDS_PAGE, ctx.query("cursor"))
    return ctx.render("builds.html", listed=listed, started=ctx.query("started"))


@router.post("/builds")
@page("admin", "POST", "/api/v1/index/builds")
async def start_build(ctx: Ctx) -> Response:
    body = BuildIn(reason=ctx.form.get("reason") or None, force=ctx.form.get("force") == "on")
    build = await versions.request_build(ctx.app, body, None)
    return go("builds", query=f"started={build.build_id}")


@router.get("/builds/{build_id}/state")
@page("admin", "GET", "/api/v1/index/builds/state")
async def build_state(ctx: Ctx) -> Response:
    """What the Builds page's script polls: the build as /api/v1 shows it."""
    build_id = ctx.path_id("build_id")
    build = await versions.get_build(ctx.app, build_id)
    return JSONResponse(build.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


def _int(text: str | None, default: Any) -> Any:
    try:
        return int(text) if text is not None else default
    except ValueError:
        raise InvalidInput(f"{text!r} is not a whole number") from None


def _version(text: str) -> int:
    """A version number as /api/v1 takes one (PostgreSQL's bigint)."""
    number = _int(text, None)
    if number is None or not 1 <= number <= 2**63 - 1:
        raise InvalidInput(f"version: {text[:40]!r} is not a version number")
    return int(number)


def _figure(metrics: dict[str, Any], source: str, name: str) -> float:
    value = (metrics.get(source) or {}).get(name)
    return float(value) if isinstance(value, int | float) else 0.0


def _beside_popular(version: VersionSummary, name: str) -> list[tuple[str, float]]:
    return [
        ("this version", _figure(version.metrics, "hybrid", name)),
        ("popularity", _figure(version.metrics, "popular", name)),
    ]


def _sources(compared: list[Any]) -> list[str]:
    """The sources any of the compared versions has figures for, the blend first."""
    names = {k for v in compared for k, f in v.metrics.items() if isinstance(f, dict)}
    return sorted(names, key=lambda n: (n != "hybrid", n != "popular", n))
