"""Items whose text is nearest in meaning to a searcher's words."""

from __future__ import annotations

from collections.abc import Sequence

from common.errors import DependencyError
from common.models import SearchResults
from embeddings.encoder import place
from indexing import ranking
from indexing.artifacts import IndexVersion
from indexing.profiles import Floats
from service.application import Application
from service.usecases import item_fields, rules
from service.usecases.user_list import scored


async def search(
    app: Application,
    text: str,
    limit: int = 10,
    category: str | None = None,
    filter_text: str | None = None,
    fields: str | Sequence[str] | None = None,
    scenario: str | None = None,
) -> SearchResults:
    """The `limit` items nearest to `text`, within `category`, the filter and the scenario's
    rules if given (its boosters reorder them), with the item `fields` asked for."""
    kept_to = rules.rules_for(app, category, filter_text, scenario)
    names = item_fields.parse(fields)
    version = app.serving.current
    if version is None:
        return SearchResults(items=[], index_version=None)
    query = await query_vector(app, version, text)
    applied = await rules.resolve(app, kept_to, version)
    deleted = app.serving.deleted_rows(version)
    depth = rules.boosted_depth(app, kept_to, limit)
    ranked = await app.rank(
        lambda: ranking.similar_items(
            version, query, limit=depth, among=applied.subset, excluded=deleted, text=True
        )
    )
    ids = version.item_ids
    found = [(ids[r], float(s)) for r, s in zip(ranked.rows, ranked.scores, strict=True)]
    found, _ = await rules.boosted(app, applied, found)
    answer = SearchResults(
        items=[scored(i, s) for i, s in found[:limit]], index_version=version.version
    )
    await item_fields.add(app, answer.items, names)
    return answer


async def query_vector(
    app: Application, version: IndexVersion, text: str, labels: str | None = None
) -> Floats:
    """One text as a query vector, by the encoder the served version was built with: an
    item's (with its `labels`) as the workers embed items, or else a searcher's words."""
    built_with = version.manifest["encoder"]["name"]
    if built_with != app.settings.embedding.model:
        raise DependencyError(
            f"the served index was built with {built_with!r}, this process encodes with "
            f"{app.settings.embedding.model!r}: set EMBEDDING_MODEL alike everywhere"
        )
    vectors = await (app.encode([text]) if labels is None else app.embed_item(text, labels))
    query: Floats = place(vectors, version.embedding_mean)[0]
    return query
