"""Items whose text is nearest in meaning to a searcher's words."""

from __future__ import annotations

from common.errors import DependencyError
from common.models import SearchResults
from embeddings.encoder import place
from indexing import ranking
from indexing.artifacts import IndexVersion
from indexing.profiles import Floats
from service.application import Application
from service.usecases.user_list import scored


async def search(
    app: Application, text: str, limit: int = 10, category: str | None = None
) -> SearchResults:
    """The `limit` items nearest to `text`, in `category` if given."""
    version = app.serving.current
    if version is None:
        return SearchResults(items=[], index_version=None)
    query = await query_vector(app, version, text)
    deleted = app.serving.deleted_rows(version)
    ranked = await app.rank(
        lambda: ranking.similar_items(
            version, query, limit=limit, category=category, excluded=deleted, text=True
        )
    )
    ids = version.item_ids
    return SearchResults(
        items=[scored(ids[r], s) for r, s in zip(ranked.rows, ranked.scores, strict=True)],
        index_version=version.version,
    )


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
