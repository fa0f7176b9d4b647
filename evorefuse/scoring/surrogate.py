"""An online surrogate that predicts a target's refusal rate from the instruction alone.

Ridge regression on sentence embeddings. The sufficient statistics (X'X and X'y, with a bias column)
are updated in O(d^2) per scored candidate and the weights are solved (a 385x385 system, about a
millisecond) only when a prediction is asked for after new data, so the cost does not grow with the
number of candidates scored. It costs no target tokens, so the engine uses it to decide which
candidates deserve even a cheap screen once it has seen enough examples.
"""

from __future__ import annotations

import numpy as np


class RefusalSurrogate:
    def __init__(self, alpha: float = 1.0, min_examples: int = 12) -> None:
        self.alpha = alpha
        self.min_examples = min_examples
        self._n = 0
        self._sum_y = 0.0
        self._xtx: np.ndarray | None = None
        self._xty: np.ndarray | None = None
        self._w: np.ndarray | None = None

    @property
    def ready(self) -> bool:
        return self._n >= self.min_examples

    def add(self, emb: np.ndarray, refusal_rate: float) -> None:
        x = np.append(np.asarray(emb, dtype=np.float64), 1.0)
        if self._xtx is None:
            self._xtx = np.zeros((x.size, x.size))
            self._xty = np.zeros(x.size)
        self._xtx += np.outer(x, x)
        self._xty += x * float(refusal_rate)
        self._n += 1
        self._sum_y += float(refusal_rate)
        self._w = None

    def _weights(self) -> np.ndarray:
        if self._w is None:
            assert self._xtx is not None and self._xty is not None
            reg = self.alpha * np.eye(self._xtx.shape[0])
            reg[-1, -1] = 0.0  # the bias is not shrunk
            self._w = np.linalg.solve(self._xtx + reg, self._xty)
        return self._w

    def predict(self, emb: np.ndarray) -> np.ndarray:
        emb = np.atleast_2d(np.asarray(emb, dtype=np.float64))
        if not self.ready:
            return np.full(emb.shape[0], self._sum_y / self._n if self._n else 0.0)
        x = np.hstack([emb, np.ones((emb.shape[0], 1))])
        return np.clip(x @ self._weights(), 0.0, 1.0)

    def __len__(self) -> int:
        return self._n
