"""`recs`: the service from a shell, built on the client library.

Settings come from RECS_URL and RECS_API_KEY, or --url and --api-key. Exit codes follow
sysexits(3): 0 done; 1 the service refused the request, or a build or export failed; 2 a
command line that does not parse; 66 an input file that cannot be read; 69 the service
unreachable or unavailable (503); 77 a missing, wrong or too weak key (401, 403).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import httpx
import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from recs_client.client import AsyncClient, Client
from recs_client.errors import Forbidden, RecsError, Unauthorized, Unavailable
from recs_client.importer import Loader

EXIT_REFUSED = 1
EXIT_NO_INPUT = 66
EXIT_UNAVAILABLE = 69
EXIT_NO_PERMISSION = 77

T = TypeVar("T")
app = typer.Typer(
    name="recs", help="The recommendation service from a shell.", no_args_is_help=True
)
keys_app = typer.Typer(help="API keys (admin).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
events_app = typer.Typer(help="Events: dead letters (admin).", no_args_is_help=True)
app.add_typer(events_app, name="events")
out = Console()
err = Console(stderr=True)


class Settings:
    url: str | None = None
    api_key: str | None = None
    json: bool = False


settings = Settings()


@app.callback()
def main_options(
    url: Annotated[
        str | None, typer.Option(envvar="RECS_URL", help="The service's base URL.")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="RECS_API_KEY", help="An API key (Bearer token).")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print answers as JSON.")] = False,
) -> None:
    settings.url, settings.api_key, settings.json = url, api_key, json


@contextmanager
def client() -> Iterator[Client]:
    """A client of the configured service; the service's refusals become exit codes."""
    with Client(settings.url, settings.api_key) as recs, refusals():
        yield recs


@contextmanager
def refusals() -> Iterator[None]:
    try:
        yield
    except (Unauthorized, Forbidden) as exc:
        err.print(f"[red]{exc.code}[/red]: {exc.message}")
        raise typer.Exit(EXIT_NO_PERMISSION) from exc
    except Unavailable as exc:
        err.print(f"[red]unavailable[/red]: {exc.message}")
        raise typer.Exit(EXIT_UNAVAILABLE) from exc
    except RecsError as exc:
        err.print(f"[red]{exc.code}[/red]: {exc.message}")
        for detail in exc.details[:10]:
            err.print(f"  {detail}")
        raise typer.Exit(EXIT_REFUSED) from exc
    except httpx.TransportError as exc:
        err.print(f"[red]unreachable[/red]: {exc}")
        raise typer.Exit(EXIT_UNAVAILABLE) from exc


def show(answer: Any, table: Callable[[], Table] | None = None) -> None:
    if settings.json or table is None:
        out.print_json(orjson.dumps(answer).decode())
    else:
        out.print(table())


def bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


@app.command("import")
def import_file(
    kind: Annotated[Literal["items", "interactions"], typer.Argument(help="What the file holds.")],
    path: Annotated[Path, typer.Argument(help="A .csv file with a header, or JSON lines.")],
    batch: Annotated[int, typer.Option(help="Rows per request (at most 10,000).")] = 5_000,
    parallel: Annotated[int, typer.Option(help="Requests in flight.")] = 4,
) -> None:
    """Load items or interactions from a file in batches. Rows the service refuses are
    written beside the file (FILE.rejected.jsonl) with the reason; the rest are stored."""
    if not path.is_file():
        err.print(f"[red]no such file[/red]: {path}")
        raise typer.Exit(EXIT_NO_INPUT)
    size = path.stat().st_size
    lines = _count_lines(path)

    async def run() -> Any:
        async with AsyncClient(settings.url, settings.api_key) as recs:
            with bar() as progress:
                task = progress.add_task(f"{kind} from {path.name}", total=lines or None)
                loader = Loader(
                    recs,
                    kind,
                    batch=batch,
                    parallel=parallel,
                    progress=lambda n: progress.advance(task, n),
                )
                return await loader.load(path)

    started = time.monotonic()
    with refusals():
        summary = asyncio.run(run())
    seconds = time.monotonic() - started
    rate = summary.read / seconds if seconds > 0 else 0.0
    out.print(
        f"{summary.read:,} rows read ({size / 1e6:.1f} MB) in {seconds:.1f}s ({rate:,.0f}/s): "
        f"{summary.stored:,} stored, {summary.duplicates:,} duplicates, "
        f"{summary.rejected:,} rejected"
    )
    if summary.rejected_path is not None:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary.errors.items()))
        out.print(f"rejected rows ({reasons}) are in {summary.rejected_path}")
        raise typer.Exit(EXIT_REFUSED)


def _count_lines(path: Path) -> int:
    """Rows in the file, for the progress bar (a header line is not one)."""
    count = 0
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            count += chunk.count(b"\n")
    return max(0, count - 1) if path.suffix.lower() == ".csv" else count


@app.command()
def build(
    wait: Annotated[bool, typer.Option("--wait", help="Follow it to the end.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why, for the record.")] = None,
    force: Annotated[bool, typer.Option(help="Build even if nothing changed.")] = False,
) -> None:
    """Start an index build (or join the one running); with --wait, follow its progress."""
    with client() as recs:
        started = recs.request_build(reason=reason, force=force)
        build_id = started["build_id"]
        out.print(f"build {build_id}: {started['state']}")
        if not wait:
            return
        with bar() as progress:
            task = progress.add_task("queued", total=1.0)
            while (found := recs.get_build(build_id))["state"] not in ("succeeded", "failed"):
                progress.update(task, completed=found["progress"], description=found["stage"])
                time.sleep(0.5)
            progress.update(task, completed=found["progress"], description=found["stage"])
    if found["state"] == "failed":
        err.print(f"[red]build failed[/red]: {found.get('error')}")
        raise typer.Exit(EXIT_REFUSED)
    gate = found.get("gate") or {}
    if gate and not gate.get("passed", True):
        out.print(f"version {found.get('version')} kept back by the quality gate: {gate['reason']}")
        raise typer.Exit(EXIT_REFUSED)
    out.print(f"version {found.get('version')} is live")


@app.command()
def versions() -> None:
    """Kept index versions, newest first."""
    with client() as recs:
        found = recs.versions()

    def table() -> Table:
        shown = Table("version", "state", "created", "items", "users", "ndcg@10")
        for v in found["versions"]:
            mark = " (active)" if v["version"] == found["active"] else ""
            ndcg = v["metrics"].get("ndcg_at_10")
            shown.add_row(
                f"{v['version']}{mark}",
                v["state"],
                v["created_at"][:19],
                str(v["items"]),
                str(v["users"]),
                f"{ndcg:.4f}" if isinstance(ndcg, float) else "",
            )
        return shown

    show(found, table)


@app.command()
def activate(version: int) -> None:
    """Serve VERSION everywhere (a rollback where it is older)."""
    with client() as recs:
        recs.activate(version)
    out.print(f"version {version} is active")


@app.command()
def recommend(
    user_id: str,
    limit: int = 10,
    filter: Annotated[str | None, typer.Option(help="A filter expression.")] = None,
    scenario: str | None = None,
    explain: bool = False,
) -> None:
    """USER's recommendations."""
    with client() as recs:
        found = recs.recommend(
            user_id, limit=limit, filter=filter, scenario=scenario, explain=explain
        )
    show(
        found,
        lambda: _items_table(found["items"], f"{found['strategy']}, v{found['index_version']}"),
    )


@app.command()
def similar(
    item_id: str,
    limit: int = 10,
    filter: Annotated[str | None, typer.Option(help="A filter expression.")] = None,
) -> None:
    """Items similar to ITEM."""
    with client() as recs:
        found = recs.similar_items(item_id, limit=limit, filter=filter)
    show(found, lambda: _items_table(found["items"], f"like {item_id}"))


def _items_table(items: list[Any], title: str) -> Table:
    shown = Table("#", "item", "score", "why", title=title)
    for n, item in enumerate(items, start=1):
        shown.add_row(
            str(n), item["item_id"], f"{item['score']:.4f}", "; ".join(item.get("reasons", []))
        )
    return shown


@app.command()
def export(
    kind: Annotated[Literal["recommendations", "similar_items"], typer.Argument()],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where the JSON lines go.")],
    ids: Annotated[
        Path | None, typer.Option(help="A file of ids, one per line (default: all).")
    ] = None,
    limit: int = 10,
    filter: Annotated[str | None, typer.Option(help="A filter expression.")] = None,
    scenario: str | None = None,
) -> None:
    """Export lists for every user (or item), or those in --ids, and download them."""
    listed = None
    if ids is not None:
        if not ids.is_file():
            err.print(f"[red]no such file[/red]: {ids}")
            raise typer.Exit(EXIT_NO_INPUT)
        listed = [line.strip() for line in ids.read_text().splitlines() if line.strip()]
    with client() as recs:
        queued = recs.create_export(kind, ids=listed, limit=limit, filter=filter, scenario=scenario)
        export_id = queued["export_id"]
        with bar() as progress:
            task = progress.add_task(f"export {export_id}", total=1.0)
            while (found := recs.get_export(export_id))["state"] not in ("succeeded", "failed"):
                progress.update(task, completed=found["progress"])
                time.sleep(0.5)
            progress.update(task, completed=found["progress"])
        if found["state"] == "failed":
            err.print(f"[red]export failed[/red]: {found.get('error')}")
            raise typer.Exit(EXIT_REFUSED)
        written = 0
        with output.open("wb") as target:
            for line in recs.download_export(export_id):
                target.write(orjson.dumps(line) + b"\n")
                written += 1
    out.print(f"{written:,} lines written to {output}")


@keys_app.command("create")
def create_key(
    name: str, role: Annotated[Literal["read", "write", "admin"], typer.Option()] = "read"
) -> None:
    """Create a key; its token is shown this once."""
    with client() as recs:
        created = recs.create_key(name, role)
    show(created, None)


@keys_app.command("list")
def list_keys() -> None:
    with client() as recs:
        found = recs.keys()

    def table() -> Table:
        shown = Table("key_id", "name", "role", "revoked")
        for key in found["keys"]:
            record: dict[str, Any] = dict(key)
            shown.add_row(
                key["key_id"], key["name"], key["role"], str(record.get("revoked_at") or "")
            )
        return shown

    show(found, table)


@keys_app.command("revoke")
def revoke_key(key_id: str) -> None:
    with client() as recs:
        recs.revoke_key(key_id)
    out.print(f"key {key_id} revoked")


@events_app.command("dead")
def dead_letters(limit: int = 20) -> None:
    """The oldest dead letters, with why each was refused."""
    with client() as recs:
        found = recs.dead_letters(limit=limit)

    def table() -> Table:
        shown = Table("topic", "at", "error", "original")
        for letter in found["letters"]:
            error = letter.get("error") or {}
            shown.add_row(
                str(letter.get("topic")),
                str(letter.get("at"))[:19],
                f"{error.get('code')}: {error.get('message')}",
                str(letter.get("original"))[:60],
            )
        return shown

    show(found, table)


@events_app.command("replay-dead")
def replay_dead(limit: int = 10_000) -> None:
    """Publish the dead letters' originals to their topics again (once the cause is fixed)."""
    with client() as recs:
        done = recs.replay_dead(limit=limit)
    counts = ", ".join(f"{topic} {n}" for topic, n in sorted(done["by_topic"].items()))
    out.print(
        f"{done['replayed']:,} replayed ({counts or 'none'}); {done['unreadable']} unreadable"
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
