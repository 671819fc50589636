"""One suite for the Encoder contract, run on the fake and on the real model."""

from __future__ import annotations

import numpy as np
import pytest

from common.text import content_hash, item_text
from embeddings.encoder import Encoder, make_encoder, normalise

TEXTS = [
    "A haunted house where ghosts terrify a family at night",
    "Ghosts haunt an old house and terrify the family inside",
    "A romantic comedy about a wedding in Paris",
    "",
]


@pytest.fixture(scope="module", params=["hashing-64", "all-MiniLM-L6-v2"])
def encoder(request: pytest.FixtureRequest) -> Encoder:
    return make_encoder(request.param)


def test_rows_are_unit_float32(encoder: Encoder) -> None:
    vectors = encoder.encode(TEXTS[:3])
    assert vectors.shape == (3, encoder.dimension)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_similar_texts_are_closer_than_unrelated_ones(encoder: Encoder) -> None:
    a, b, c = encoder.encode(TEXTS[:3])
    assert a @ b > a @ c + 0.1


def test_encoding_is_deterministic_and_batch_independent(encoder: Encoder) -> None:
    together = encoder.encode(TEXTS[:3])
    alone = np.vstack([encoder.encode([t]) for t in TEXTS[:3]])
    assert np.allclose(together, alone, atol=1e-5)


def test_the_real_model_has_its_known_dimension() -> None:
    assert make_encoder("all-MiniLM-L6-v2").dimension == 384


def test_an_unknown_model_name_is_refused_clearly() -> None:
    with pytest.raises(FileNotFoundError, match="EMBEDDING_MODEL"):
        make_encoder("no-such-model")


def test_normalise_keeps_zero_rows_zero() -> None:
    out = normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(out, [[0.6, 0.8], [0, 0]])


def test_item_text_and_hash_change_with_any_field() -> None:
    base = item_text("Alien", "Space horror", "Horror", ["space"])
    assert "Alien" in base and "Horror" in base and "space" in base and "Space horror" in base
    variants = [
        item_text("Aliens", "Space horror", "Horror", ["space"]),
        item_text("Alien", "Space horror!", "Horror", ["space"]),
        item_text("Alien", "Space horror", "Sci-Fi", ["space"]),
        item_text("Alien", "Space horror", "Horror", ["space", "monster"]),
    ]
    assert len({content_hash(t) for t in [base, *variants]}) == 5


def test_centring_takes_the_common_direction_off_and_places_queries_alike() -> None:
    from embeddings.encoder import centre, place

    rng = np.random.default_rng(3)
    common = rng.standard_normal(32)
    raw = normalise(rng.standard_normal((400, 32)) * 0.5 + common)
    centred, mean = centre(raw)
    pairwise = (raw @ raw.T).mean()
    assert pairwise > 0.5  # every vector near every other
    assert abs((centred @ centred.T).mean()) < 0.1 * pairwise
    np.testing.assert_allclose(np.linalg.norm(centred, axis=1), 1.0, rtol=1e-5)
    # A query of the catalog's own text lands on its item.
    np.testing.assert_allclose(place(raw[:3], mean), centred[:3], rtol=1e-5, atol=1e-6)
    # A few items' mean is mostly their own: taken off in part.
    _, few_mean = centre(raw[:5])
    assert np.linalg.norm(few_mean) < np.linalg.norm(raw[:5].mean(axis=0))
    assert place(raw[:2], None).tolist() == normalise(raw[:2]).tolist()


def test_an_item_is_its_text_and_its_labels_each_embedded() -> None:
    from common.text import item_labels
    from embeddings.encoder import embed_items

    encoder = make_encoder("hashing-32")
    texts = ["Dracula (1995)", "Heat (1995)", "product 17"]
    labels = [item_labels("Comedy", ["Horror"]), item_labels("Action", ["Crime"]), ""]
    assert labels == ["Category: Comedy. Tags: Horror.", "Category: Action. Tags: Crime.", ""]
    vectors = embed_items(encoder, texts, labels)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    alone, of_labels = encoder.encode(texts), encoder.encode(labels[:2])
    np.testing.assert_allclose(vectors[:2], normalise(alone[:2] + of_labels), rtol=1e-5)
    # No labels: the text alone.
    np.testing.assert_allclose(vectors[2], alone[2], rtol=1e-5, atol=1e-6)
