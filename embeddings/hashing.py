"""A deterministic bag-of-words encoder: texts that share words get similar vectors.

Fast and dependency-free, it stands in for the real model at a clear seam (ranking tests).
Each lower-cased word maps to a fixed pseudo-random unit vector seeded by its hash; a text
is the normalised sum of its words' vectors.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from embeddings.encoder import Vectors, normalise

_WORD = re.compile(r"[a-z0-9]+")
# Words too common to say anything about an item.
_STOP = frozenset(
    (
        "a an and are as at be by for from has in is it its of on or that the this to was "
        "with about into over after before their they them his her who what where when "
        # the labels item_text() puts before fields
        "category tags"
    ).split()
)


class HashingEncoder:
    def __init__(self, dimension: int = 64) -> None:
        if not 8 <= dimension <= 4096:
            raise ValueError("dimension must be between 8 and 4096")
        self._dimension = dimension

    @property
    def name(self) -> str:
        return f"hashing-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def encode(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                if word not in _STOP:
                    out[row] += _word_vector(word, self._dimension)
        return normalise(out)


@lru_cache(maxsize=65_536)
def _word_vector(word: str, dimension: int) -> Vectors:
    seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).standard_normal(dimension).astype(np.float32)
