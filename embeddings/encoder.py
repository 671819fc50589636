"""What turns texts into vectors, and the factory that picks one by name."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from common.settings import EmbeddingSettings

Vectors = npt.NDArray[np.float32]
# Texts per encode call: large enough to keep the model busy, small enough to report progress.
CHUNK = 512


class Encoder(Protocol):
    """Encodes texts as L2-normalised float32 rows, so inner products are cosines."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Shape (len(texts), dimension), dtype float32, each row of unit length."""


def normalise(vectors: npt.NDArray[np.floating]) -> Vectors:
    """L2-normalise rows in float32; all-zero rows stay zero rather than becoming NaN."""
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    normalised: Vectors = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
    return normalised


# Item vectors are stored under the encoder's name with this mark: the vector of an item's
# text and of its labels together (`embed_items`), not of its text alone (as the vectors of
# an older release were: those are made again, not mixed with these).
LABELLED = "+labels"


def item_vectors_key(encoder: Encoder) -> str:
    """The name an item's stored vectors are kept under, for this encoder."""
    return encoder.name + LABELLED


def embed_items(encoder: Encoder, texts: Sequence[str], labels: Sequence[str]) -> Vectors:
    """Each item's vector: its whole text's embedding and, where it has any, its labels'
    (common/text.py, `item_labels`), summed and normalised, so that what kind of item it
    is weighs as much as its title's words. A catalog of "product N" titles with no labels
    is embedded by its text alone."""
    vectors = np.asarray(encoder.encode(list(texts)), dtype=np.float32)
    labelled = [n for n, label in enumerate(labels) if label]
    if labelled:
        vectors = vectors.copy()
        vectors[labelled] += encoder.encode([labels[n] for n in labelled])
    return normalise(vectors)


# A catalog's mean vector is taken off in proportion n / (n + CENTRE_ITEMS): the mean of a
# handful of items says more of them than of the space they lie in.
CENTRE_ITEMS = 50.0


def centre(vectors: Vectors) -> tuple[Vectors, Vectors]:
    """Unit vectors with the catalog's common direction taken off, and what was taken off
    (shape (dimension,)); a query is placed the same way by `place`.

    Sentence embeddings share a large common component: every film title lies near every
    other (cosine 0.4 between random titles of one catalog), so a taste of five horror films
    ranked 1995 thrillers as close as horror ones. Taking the mean off leaves the directions
    that tell items apart (Mu and Viswanath, "All-but-the-Top", ICLR 2018)."""
    n = len(vectors)
    if n == 0:
        return vectors, np.zeros(vectors.shape[1], dtype=np.float32)
    mean = (vectors.mean(axis=0) * (n / (n + CENTRE_ITEMS))).astype(np.float32)
    return normalise(vectors - mean), mean


def place(vectors: npt.NDArray[np.floating], mean: Vectors | None) -> Vectors:
    """Vectors placed in a catalog's centred space (`centre`): its mean taken off, unit
    length again. No mean (an index built before it was kept): as they are, normalised."""
    if mean is None:
        return normalise(vectors)
    return normalise(np.asarray(vectors, dtype=np.float32) - mean)


def chunks_by_length(texts: Sequence[str], size: int = CHUNK) -> Iterator[list[int]]:
    """Positions of `texts` in chunks of `size`, shortest texts first: a chunk of texts of
    similar length pads less, and the model's cost follows the longest text of each chunk."""
    order = sorted(range(len(texts)), key=lambda n: len(texts[n]))
    for start in range(0, len(order), size):
        yield order[start : start + size]


def make_encoder(
    name: str,
    batch_size: int = 128,
    runtime: str = "torch",
    cache_dir: Path = Path("model_cache"),
    threads: int = 0,
) -> Encoder:
    """`hashing-<dim>` is the deterministic fake (tests, tiny demos); anything else is a
    sentence-transformers model, loaded from disk only: run by ONNX Runtime in int8 with
    `runtime` "onnx-int8" (on `threads` threads, 0 for one per core), by sentence-transformers
    in fp32 with "torch"."""
    if name.startswith("hashing-"):
        from embeddings.hashing import HashingEncoder

        return HashingEncoder(int(name.removeprefix("hashing-")))
    if runtime == "onnx-int8":
        from embeddings.onnx import OnnxEncoder

        return OnnxEncoder(name, cache_dir, batch_size=batch_size, threads=threads)
    from embeddings.sentence import SentenceEncoder

    return SentenceEncoder(name, batch_size=batch_size)


def configured(settings: EmbeddingSettings) -> Encoder:
    """The encoder the settings name, with their batch size and runtime."""
    return make_encoder(
        settings.model, settings.batch_size, settings.runtime, settings.cache_dir, settings.threads
    )
