"""The code's layers, checked from its imports: storage/ alone talks to the databases,
indexing/ and embeddings/ stay pure, and no module imports itself back through others."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "common",
    "embeddings",
    "experiments",
    "indexing",
    "storage",
    "service",
    "workers",
    "devstack",
)
DRIVERS = ("asyncpg", "redis", "minio", "urllib3", "confluent_kafka")


def _imports(path: Path, *, deferred: bool, typed: bool = False) -> set[str]:
    """Modules imported at run time: imports under `if TYPE_CHECKING:` are left out unless
    `typed`, and so are those inside functions unless `deferred` (they run on call, not at
    import)."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if (not typed and isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test))
        or (not deferred and isinstance(block, ast.FunctionDef | ast.AsyncFunctionDef))
        for stmt in block.body
        for node in ast.walk(stmt)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _modules(*, deferred: bool, typed: bool = False) -> dict[str, set[str]]:
    """Each module of the project, and the project modules and drivers it imports."""
    paths = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }
    return {
        name: {
            m
            for m in _imports(path, deferred=deferred, typed=typed)
            if m in paths or m.split(".")[0] in DRIVERS
        }
        for name, path in paths.items()
    }


GRAPH = _modules(deferred=True)


def _importers(of: tuple[str, ...], within: str) -> list[str]:
    return sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if name.split(".")[0] == within
        for target in targets
        if target.split(".")[0] in of
    )


def test_only_storage_and_the_entrypoints_reach_the_drivers() -> None:
    # service/ and workers/ create the clients and pass them on; queries live in storage/.
    assert _importers(DRIVERS, "indexing") == []
    assert _importers(DRIVERS, "embeddings") == []
    assert _importers(DRIVERS, "common") == []


def test_storage_imports_no_layer_above_it() -> None:
    assert (
        _importers(("indexing", "service", "workers", "embeddings", "experiments"), "storage") == []
    )


def test_experiments_design_and_statistics_are_plain_logic() -> None:
    # results.py reads storage for the API and the worker alike; the rest touches nothing.
    assert _importers(("service", "workers"), "experiments") == []
    found = _importers(("storage",), "experiments")
    assert found and all(line.startswith("experiments.results ") for line in found)
    assert _importers(DRIVERS, "experiments") == []


def test_indexing_and_embeddings_know_nothing_of_storage_or_transport() -> None:
    above = ("storage", "service", "workers")
    # The object store's Protocol is the one seam indexing/ publishes through.
    found = [line for line in _importers(above, "indexing") if not line.endswith("storage.blob")]
    assert found == []
    assert _importers((*above, "indexing"), "embeddings") == []


def test_the_application_layer_knows_nothing_of_transports() -> None:
    """Use cases are what every door calls: none of them imports a door, or a web framework."""
    doors = ("service.api", "fastapi", "starlette", "grpc")
    found = sorted(
        f"{name} imports {target}"
        for name, path in _paths().items()
        if name.startswith("service.usecases")
        for target in _imports(path, deferred=True, typed=True)
        if target.startswith(doors)
    )
    assert found == []


def test_routes_reach_storage_only_through_the_use_cases() -> None:
    """A route parses, calls its use case and shapes the answer; it never queries a store."""
    found = [
        line
        for line in _importers(("storage",), "service")
        if line.startswith(("service.api.routes", "service.api.lookups"))
    ]
    assert found == []


def _paths() -> dict[str, Path]:
    return {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }


def test_no_import_cycles() -> None:
    """Among imports that run when a module is first imported (a factory's import inside a
    function runs later, once both modules exist), and those made for type checking only: a
    cycle there is still two modules that cannot be read apart."""
    graph = _modules(deferred=False, typed=True)

    def module_of(target: str) -> str:
        return target if target in graph else target.rsplit(".", 1)[0]

    edges = {
        name: {module_of(t) for t in targets if module_of(t) in graph} - {name}
        for name, targets in graph.items()
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert cycles == []
