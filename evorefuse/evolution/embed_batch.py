"""One embedding call for the candidates of every lineage that asks at the same moment.

Why: all lineages of a generation run concurrently, and each asks for the embeddings of its own
four or five candidates, and embedding is most of the orchestrator's CPU at scale
(benchmarks/scale.py). Small batches cost more per text than one large batch: about a third more
for MiniLM on torch (9.9 against 7.4 ms per text), about a tenth more for the int8 ONNX model
(7.5 against 6.8 ms on a shared machine, batches as a 1,000-lineage run makes them). Requests made
in the same turn of the event loop are merged into one `embeddings.embed` call in a worker thread
(which hands the batch to the embedder's own model thread); each caller gets its own rows back.
Texts already embedded in this process come from the embedding cache and cost nothing either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from evorefuse.scoring import embeddings


class EmbedBatcher:
    def __init__(self) -> None:
        self._pending: list[tuple[list[str], asyncio.Future[np.ndarray]]] = []
        self._task: asyncio.Task[None] | None = None  # held: the loop keeps only weak references

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[np.ndarray] = loop.create_future()
        if not self._pending:
            self._task = loop.create_task(self._flush())
        self._pending.append((list(texts), fut))
        return await fut

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # one more turn: callers woken in this turn join the batch too
        batch, self._pending = self._pending, []
        texts = [t for ts, _ in batch for t in ts]
        try:
            rows = await asyncio.to_thread(embeddings.embed, texts)
        except BaseException as exc:  # every caller sees the failure, none waits forever
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        start = 0
        for ts, fut in batch:
            if not fut.done():
                fut.set_result(rows[start: start + len(ts)])
            start += len(ts)
