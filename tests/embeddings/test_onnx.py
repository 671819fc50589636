"""The int8 ONNX encoder: exported from the packaged weights, close to the fp32 model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common.text import item_text
from embeddings.encoder import Encoder, make_encoder
from tests.embeddings.test_encoders import TEXTS

MODEL = "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def int8(tmp_path_factory: pytest.TempPathFactory) -> Encoder:
    return make_encoder(MODEL, 32, "onnx-int8", tmp_path_factory.mktemp("models"))


def catalog_texts() -> list[str]:
    genres = ["horror", "comedy", "space opera", "western", "romance", "documentary"]
    return (
        [
            item_text(f"{word.title()} story {n}", f"A {genre} about {word}", genre, [genre, word])
            for n, (genre, word) in enumerate(
                (g, w)
                for g in genres
                for w in ("ghosts", "weddings", "starships", "outlaws", "bees")
            )
        ]
        + TEXTS[:3]
        + ["Ein längerer deutscher Satz über Filme, Musik und Bücher. " * 6]
    )


def test_vectors_are_unit_float32_of_the_model_dimension(int8: Encoder) -> None:
    vectors = int8.encode(TEXTS)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[:3], axis=1), 1, atol=1e-5)
    assert int8.name == MODEL and int8.dimension == 384


def test_vectors_stay_close_to_the_fp32_model(int8: Encoder) -> None:
    texts = catalog_texts()
    cosine = (int8.encode(texts) * make_encoder(MODEL).encode(texts)).sum(axis=1)
    assert cosine.mean() >= 0.99, cosine.mean()
    assert cosine.min() >= 0.985, cosine.min()
    a, b, c = int8.encode(TEXTS[:3])
    assert a @ b > a @ c + 0.1


def test_the_export_is_kept_and_found_again(int8: Encoder, tmp_path: Path) -> None:
    cache = tmp_path / "models"
    first = make_encoder(MODEL, 32, "onnx-int8", cache)
    vectors = first.encode(TEXTS[:2])
    exported = list(cache.rglob("model-int8-r*.onnx"))
    assert len(exported) == 1 and not list(cache.rglob("*fp32*"))
    stamp = exported[0].stat().st_mtime_ns
    again = make_encoder(MODEL, 32, "onnx-int8", cache).encode(TEXTS[:2])
    assert exported[0].stat().st_mtime_ns == stamp  # loaded, not exported again
    assert np.allclose(vectors, again, atol=1e-6)


def test_threads_are_a_setting_and_change_no_vector(int8: Encoder) -> None:
    cache = int8._cache.parent  # type: ignore[attr-defined]  # the export made above
    single = make_encoder(MODEL, 32, "onnx-int8", cache, threads=1)
    assert np.allclose(single.encode(TEXTS), int8.encode(TEXTS), atol=1e-5)
    session = single._load()[0]  # type: ignore[attr-defined]
    assert session.get_session_options().intra_op_num_threads == 1
