"""Lexical diversity metrics for instruction sets (numpy only).

Tokens are ``re.findall(r"[a-z0-9']+", text.lower())``; a set's metrics are computed over the
tokens of all its instructions concatenated in order (MSTTR, MTLD, HD-D) or per text (distinct-n).

Conventions (they reproduce the published figures of EvoRefuse-Test and XSTest; see tests/test_diversity.py):

- MSTTR: mean type-token ratio over complete, non-overlapping windows of ``window`` tokens
  (the incomplete tail is dropped); fewer tokens than one window gives the plain TTR.
- MTLD (McCarthy & Jarvis 2010, as in Kyle's ``lexical_diversity`` package): a factor is
  completed as soon as the running TTR of the current segment is strictly below the threshold
  and the segment is at least 10 tokens long, after which the segment restarts; the segment open
  at the last token adds the partial factor ``(1 - ttr) / (1 - threshold)``; MTLD = tokens /
  factors, averaged over a forward and a backward pass. (Without the 10-token minimum, XSTest's
  safe prompts give 39.35 instead of the reference 39.64.)
- HD-D: for each type, the probability that it appears at least once in a random sample (without
  replacement) of ``sample_size`` tokens, divided by ``sample_size``, summed over types.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "distinct_n",
    "hdd",
    "lexical_diversity",
    "msttr",
    "mtld",
    "tokenize",
    "ttr",
]

_TOKEN_RE = re.compile(r"[a-z0-9']+")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens of one text."""
    return _TOKEN_RE.findall(text.lower())


def ttr(tokens: Sequence[str]) -> float:
    """Plain type-token ratio (0.0 for no tokens)."""
    if not tokens:
        return 0.0
    return len(set(tokens)) / len(tokens)


def msttr(tokens: Sequence[str], window: int = 800) -> float:
    """Mean segmental TTR over complete, non-overlapping windows of ``window`` tokens."""
    if window < 1:
        raise ValueError("window must be >= 1")
    n = len(tokens)
    if n == 0:
        return 0.0
    n_windows = n // window
    if n_windows == 0:
        return ttr(tokens)
    total = 0.0
    for i in range(n_windows):
        seg = tokens[i * window:(i + 1) * window]
        total += len(set(seg)) / window
    return total / n_windows


def _mtld_factors(tokens: Sequence[str], threshold: float, min_factor_len: int) -> float:
    """Factor count (full factors plus the partial one) of one directional MTLD pass."""
    n = len(tokens)
    factors = 0.0
    seen: set[str] = set()
    count = 0
    last = n - 1
    for i, tok in enumerate(tokens):
        count += 1
        seen.add(tok)
        if i == last:
            # The segment still open at the end of the text is the partial factor.
            factors += (1.0 - len(seen) / count) / (1.0 - threshold)
        elif count >= min_factor_len and len(seen) / count < threshold:
            factors += 1.0
            seen = set()
            count = 0
    return factors


def mtld(tokens: Sequence[str], threshold: float = 0.72, min_factor_len: int = 10) -> float:
    """Measure of textual lexical diversity (McCarthy & Jarvis 2010), bidirectional.

    Each pass walks the tokens; a factor ends as soon as the running TTR of the current segment
    is strictly below ``threshold`` and the segment has at least ``min_factor_len`` tokens. The
    segment still open at the last token adds ``(1 - ttr) / (1 - threshold)``. A pass's value is
    ``len(tokens) / factors``; MTLD is the mean of the forward and backward passes.

    Returns 0.0 for no tokens. When every token is distinct no factor is ever counted (MTLD is
    unbounded); the number of tokens is returned then, so the value stays finite and monotone.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError("threshold must be in (0, 1)")
    tokens = list(tokens)
    n = len(tokens)
    if n == 0:
        return 0.0
    values = []
    for seq in (tokens, tokens[::-1]):
        f = _mtld_factors(seq, threshold, min_factor_len)
        values.append(n / f if f > 0 else float(n))
    return (values[0] + values[1]) / 2.0


def hdd(tokens: Sequence[str], sample_size: int = 42) -> float:
    """HD-D: sum over types of P(type appears in a random sample of ``sample_size``) / sample_size.

    P(0 occurrences) of a type with frequency f among N tokens, sample s drawn without
    replacement, is C(N - f, s) / C(N, s) (zero when N - f < s). With fewer tokens than the
    sample size the whole text is the sample, every type appears surely, and the result is the
    plain TTR ``n_types / n`` (the lexical_diversity package returns 0 there).
    """
    if sample_size < 1:
        raise ValueError("sample_size must be >= 1")
    n = len(tokens)
    if n == 0:
        return 0.0
    if n < sample_size:
        return len(set(tokens)) / n
    freqs = np.fromiter(Counter(tokens).values(), dtype=np.float64)
    s = float(sample_size)
    rest = n - freqs  # tokens that are not this type
    lg = np.vectorize(math.lgamma, otypes=[np.float64])
    p0 = np.zeros_like(freqs)
    ok = rest >= s
    if np.any(ok):
        r = rest[ok]
        # log C(r, s) - log C(n, s) = lgamma(r+1) - lgamma(r-s+1) - lgamma(n+1) + lgamma(n-s+1)
        log_p0 = (lg(r + 1.0) - lg(r - s + 1.0)) - (math.lgamma(n + 1.0) - math.lgamma(n - s + 1.0))
        p0[ok] = np.exp(log_p0)
    return float(np.sum((1.0 - p0) / s))


def _distinct_from_tokens(token_lists: Iterable[Sequence[str]], n: int) -> float:
    total = 0
    unique: set[tuple[str, ...]] = set()
    for toks in token_lists:
        if len(toks) < n:
            continue
        grams = list(zip(*(toks[i:] for i in range(n))))
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else 0.0


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique n-grams / total n-grams, n-grams taken within each text (0.0 when there are none)."""
    if n < 1:
        raise ValueError("n must be >= 1")
    if isinstance(texts, str):
        texts = [texts]
    return _distinct_from_tokens((tokenize(t) for t in texts), n)


def lexical_diversity(
    texts: Sequence[str],
    *,
    msttr_window: int = 800,
    mtld_threshold: float = 0.72,
    hdd_sample: int = 42,
) -> dict:
    """All lexical-diversity figures of a set of instructions.

    Keys: ``msttr``, ``mtld``, ``hdd``, ``distinct_1``, ``distinct_2`` (floats), ``n_tokens``,
    ``n_types``, ``n_texts`` (ints). MSTTR, MTLD and HD-D use the tokens of all texts
    concatenated in order; distinct-n uses n-grams within each text.
    """
    if isinstance(texts, str):
        texts = [texts]
    per_text = [tokenize(t) for t in texts]
    tokens = [tok for toks in per_text for tok in toks]
    return {
        "msttr": msttr(tokens, window=msttr_window),
        "mtld": mtld(tokens, threshold=mtld_threshold),
        "hdd": hdd(tokens, sample_size=hdd_sample),
        "distinct_1": _distinct_from_tokens(per_text, 1),
        "distinct_2": _distinct_from_tokens(per_text, 2),
        "n_tokens": len(tokens),
        "n_types": len(set(tokens)),
        "n_texts": len(per_text),
    }
