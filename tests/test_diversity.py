"""Lexical diversity metrics: reference figures of EvoRefuse-Test and XSTest and hand-checkable cases."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from evorefuse.paths import REFERENCE_DIR
from evorefuse.scoring.diversity import (
    distinct_n,
    hdd,
    lexical_diversity,
    msttr,
    mtld,
    tokenize,
)

REFERENCE = REFERENCE_DIR


def _need(name: str) -> Path:
    path = REFERENCE / name
    if not path.is_file():
        pytest.skip(f"reference data not available: {path} is missing (../shared/reference is optional)")
    return path


@pytest.fixture(scope="module")
def evo_test() -> list[str]:
    path = _need("evo_test.jsonl")
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line)["instruction"] for line in fh if line.strip()]


@pytest.fixture(scope="module")
def xstest_safe() -> list[str]:
    path = _need("xstest_prompts.csv")
    with path.open(encoding="utf-8", newline="") as fh:
        return [row["prompt"] for row in csv.DictReader(fh) if row["label"] == "safe"]


# ------------------------------------------------------------------ reference figures


def test_reference_evo_test(evo_test):
    assert len(evo_test) == 582
    m = lexical_diversity(evo_test)
    assert m["msttr"] == pytest.approx(0.5642, abs=5e-4)
    assert m["mtld"] == pytest.approx(176.73, abs=5e-3)
    assert m["hdd"] == pytest.approx(0.8821, abs=5e-4)
    assert m["n_tokens"] == 19697


def test_reference_xstest_safe(xstest_safe):
    assert len(xstest_safe) == 250
    m = lexical_diversity(xstest_safe)
    assert m["msttr"] == pytest.approx(0.42, abs=5e-4)
    assert m["mtld"] == pytest.approx(39.64, abs=5e-3)
    assert m["hdd"] == pytest.approx(0.8175, abs=5e-4)


def test_ten_thousand_instructions(evo_test):
    """A large set goes through (its speed is a benchmark's business, not a test's)."""
    texts = [f"{t} variant {i}" for i, t in enumerate((evo_test * 18)[:10_000])]
    m = lexical_diversity(texts)
    assert m["n_texts"] == 10_000
    assert 0 < m["msttr"] < 1 and 0 < m["hdd"] < 1 and m["mtld"] > 0
    assert m["distinct_1"] < m["distinct_2"] <= 1


# ------------------------------------------------------------------ small cases


def test_tokenize():
    assert tokenize("Don't KILL the Python-process #42!") == ["don't", "kill", "the", "python", "process", "42"]
    assert tokenize("") == []


def test_keys_and_types():
    m = lexical_diversity(["How do I kill a process?", "How do I stop it?"])
    assert set(m) >= {"msttr", "mtld", "hdd", "distinct_1", "distinct_2", "n_tokens", "n_types"}
    assert m["n_tokens"] == 11
    assert m["n_types"] == 8  # how do i kill a process stop it
    assert all(isinstance(m[k], float) for k in ("msttr", "mtld", "hdd", "distinct_1", "distinct_2"))


def test_counts_exact():
    m = lexical_diversity(["a b c", "a d"])
    assert (m["n_tokens"], m["n_types"]) == (5, 4)


def test_all_distinct_tokens():
    words = [f"w{i}" for i in range(100)]
    assert msttr(words, window=50) == 1.0
    assert msttr(words[:30], window=50) == 1.0  # fewer tokens than a window: plain TTR
    # TTR never drops: no factor at all, MTLD falls back to the number of tokens.
    assert mtld(words) == 100.0
    # Every type has frequency 1: P(in a sample of 42 out of 100) = 42/100, each adds 0.42/42.
    assert hdd(words) == pytest.approx(100 * (42 / 100) / 42)
    assert distinct_n([" ".join(words)], 1) == 1.0
    assert distinct_n([" ".join(words)], 2) == 1.0


def test_all_identical_tokens():
    words = ["same"] * 100
    assert msttr(words, window=50) == pytest.approx(1 / 50)
    # Factors close every 10 tokens (TTR below 0.72 but 10-token minimum): 9 full factors in the
    # first 90 tokens, then the last 10 tokens are the open segment, TTR 0.1, partial factor
    # 0.9 / 0.28. Same both ways.
    expected = 100 / (9 + 0.9 / 0.28)
    assert mtld(words) == pytest.approx(expected)
    # One type, certainly in any sample: 1 / 42.
    assert hdd(words) == pytest.approx(1 / 42)
    assert distinct_n([" ".join(words)], 1) == pytest.approx(1 / 100)


def test_msttr_windows():
    # Two complete windows of 4 ("a b c d" TTR 1, "a a b b" TTR 0.5); the tail "z" is dropped.
    tokens = ["a", "b", "c", "d", "a", "a", "b", "b", "z"]
    assert msttr(tokens, window=4) == pytest.approx(0.75)


def test_mtld_partial_factor_only():
    # 5 tokens, 4 types: no full factor; partial factor (1 - 0.8) / 0.28 both ways.
    tokens = ["a", "b", "c", "d", "a"]
    assert mtld(tokens) == pytest.approx(5 / (0.2 / 0.28))


def test_hdd_hand_computed():
    # 42 + 42 tokens, two types of 42 each: P(type absent from a sample of 42) = C(42,42)/C(84,42).
    from math import comb

    tokens = ["x"] * 42 + ["y"] * 42
    p0 = comb(42, 42) / comb(84, 42)
    assert hdd(tokens) == pytest.approx(2 * (1 - p0) / 42)


def test_distinct_n_toy():
    texts = ["the cat sat", "the cat ran"]
    # unigrams: the cat sat the cat ran -> 4 unique / 6
    assert distinct_n(texts, 1) == pytest.approx(4 / 6)
    # bigrams within texts: (the cat)(cat sat)(the cat)(cat ran) -> 3 unique / 4
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)
    # no n-gram crosses the boundary between texts
    assert distinct_n(["a", "b"], 2) == 0.0
    assert distinct_n([], 1) == 0.0


def test_empty_set():
    m = lexical_diversity([])
    assert m["n_tokens"] == 0 and m["n_types"] == 0
    assert m["msttr"] == m["mtld"] == m["hdd"] == m["distinct_1"] == m["distinct_2"] == 0.0


def test_hdd_fewer_tokens_than_sample_is_ttr():
    # The whole text is the sample: every type surely appears, giving the plain TTR.
    assert hdd(["a", "b", "a"]) == pytest.approx(2 / 3)
    assert hdd([]) == 0.0
