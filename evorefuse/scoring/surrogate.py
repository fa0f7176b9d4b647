"""An online surrogate that predicts a target's refusal rate from the instruction alone.

Ridge regression on sentence embeddings, refitted in closed form (384x384 solve, under a
millisecond) whenever new fully scored candidates arrive. It costs no target tokens, so the engine
uses it to decide which candidates deserve even a cheap screen once it has seen enough examples.
"""

from __future__ import annotations

import numpy as np


class RefusalSurrogate:
    def __init__(self, alpha: float = 1.0, min_examples: int = 12) -> None:
        self.alpha = alpha
        self.min_examples = min_examples
        self._x: list[np.ndarray] = []
        self._y: list[float] = []
        self._w: np.ndarray | None = None
        self._b = 0.0

    @property
    def ready(self) -> bool:
        return self._w is not None

    def add(self, emb: np.ndarray, refusal_rate: float) -> None:
        self._x.append(np.asarray(emb, dtype=np.float64))
        self._y.append(float(refusal_rate))
        self._w = None if len(self._y) < self.min_examples else self._fit()

    def _fit(self) -> np.ndarray:
        x = np.vstack(self._x)
        y = np.asarray(self._y)
        self._b = float(y.mean())
        a = x.T @ x + self.alpha * np.eye(x.shape[1])
        return np.linalg.solve(a, x.T @ (y - self._b))

    def predict(self, emb: np.ndarray) -> np.ndarray:
        emb = np.atleast_2d(np.asarray(emb, dtype=np.float64))
        if self._w is None:
            return np.full(emb.shape[0], np.mean(self._y) if self._y else 0.0)
        return np.clip(emb @ self._w + self._b, 0.0, 1.0)

    def __len__(self) -> int:
        return len(self._y)
