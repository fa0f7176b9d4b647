"""The lexicon operator: swap words for sensitive-sounding ones in their harmless sense.

"How do I stop this zombie process?" becomes "How do I kill this zombie process?", "What
propaganda techniques did Goebbels use?" becomes "What propaganda weapons did Goebbels use?".
Over-refusal fuzzers work this way because a request keeps its meaning, and stays fluent, while
its words start to sound alarming; a 135M mutator asked to do the same garbles it. The operator
calls no model: it is a zero-cost bandit arm like the framings (README, "Fluent offline
operators").

The lexicon (`lexicon.json`, written for this project) lists harmless senses, each with the
sensitive words that carry it (`to`), the neutral words they may replace (`from`), and the
context words that make the sense certain ("kill" a *process*, "shoot" a *wedding*). A word of
either list is replaced by another `to` word, inflected as the original was (lemminflect), so the
operator both puts sensitive words into plain requests and swaps one alarming word for another.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from evorefuse.languages import DEFAULT_LANGUAGE, primary
from evorefuse.operators.casing import match_case
from evorefuse.operators.mutation import Offspring
from evorefuse.operators.parsing import rejection_reason

_LEXICON_FILE = Path(__file__).with_name("lexicon.json")
LEXICON_OPERATOR = "lexicon"
"""The operator's name: its bandit arm and the `strategy` of its offspring."""
DEFAULT_WINDOW = 8
MAX_SWAPS = 2
"""Swaps per offspring: one swap in a long request is often a near-duplicate of its parent."""

_VERB_TAGS = ("VB", "VBZ", "VBG", "VBD", "VBN")
_NOUN_TAGS = ("NN", "NNS")
_WORD = re.compile(r"[A-Za-z][\w'’-]*")
_BOUNDARY_CHARS = r"[\w'’-]"
_RUN = re.compile(_BOUNDARY_CHARS + "+", re.IGNORECASE)
"""A maximal run of the characters the sense patterns' look-arounds treat as part of a word."""
_DETERMINERS = frozenset(["the", "a", "an", "my", "your", "his", "her", "its", "our", "their", "this", "that", "these", "those"])
_SUBJECTS = frozenset(["to", "i", "you", "we", "they", "he", "she", "it", "can", "could", "should", "would", "will", "do", "does", "did", "don't", "doesn't"])
_PERFECT = frozenset(["have", "has", "had", "having", "been", "be", "is", "are", "was", "were", "get", "got", "gets"])


@dataclass(frozen=True)
class Sense:
    """One harmless sense of a set of sensitive words (an entry of `lexicon.json`)."""

    category: str
    sense: str
    pos: str                      # "verb", "noun" or "fixed" (used as written)
    neutral: tuple[str, ...]      # words that may be replaced
    sensitive: tuple[str, ...]    # the sensitive words that carry the sense
    context: tuple[str, ...] = ()
    near: str = "around"          # context "around" the word or only "after" it
    window: int = DEFAULT_WINDOW


@dataclass(frozen=True)
class Swap:
    """One place in a text where a sense's word can be replaced."""

    start: int
    end: int
    sense: Sense
    phrase: str                   # the lexicon phrase found (its base form)
    tag: str                      # its inflection there ("" for fixed words)


@functools.lru_cache(maxsize=1)
def senses() -> tuple[Sense, ...]:
    data = json.loads(_LEXICON_FILE.read_text(encoding="utf-8"))
    return tuple(Sense(e["category"], e["sense"], e["pos"], tuple(e["from"]), tuple(e["to"]),
                       tuple(e.get("context", ())), e.get("near", "around"),
                       e.get("window", DEFAULT_WINDOW)) for e in data["entries"])


def _tags(pos: str) -> tuple[str, ...]:
    return _VERB_TAGS if pos == "verb" else _NOUN_TAGS if pos == "noun" else ()


def inflect(phrase: str, pos: str, tag: str) -> str:
    """`phrase` with its first word in the inflection `tag` ("take over", VBD -> "took over")."""
    if not tag:
        return phrase
    from lemminflect import getInflection

    head, _, rest = phrase.partition(" ")
    forms = getInflection(head, tag=tag)
    word = forms[0] if forms else head
    return f"{word} {rest}" if rest else word


@functools.cache
def _surface_forms(sense: Sense) -> dict[str, list[tuple[str, str]]]:
    """Every written form of the sense's phrases -> [(base phrase, tag)], tags in preference order."""
    forms: dict[str, list[tuple[str, str]]] = {}
    for phrase in (*sense.neutral, *sense.sensitive):
        for tag in _tags(sense.pos) or ("",):
            forms.setdefault(inflect(phrase, sense.pos, tag).lower(), []).append((phrase, tag))
    return forms


def _whole_words(words: Iterable[str]) -> re.Pattern[str]:
    """Any of `words` (longest first) where no word character touches it on either side: how
    both a sense's forms and its context words are found."""
    alternatives = sorted(words, key=len, reverse=True)
    return re.compile(f"(?<!{_BOUNDARY_CHARS})(" + "|".join(map(re.escape, alternatives))
                      + f")(?!{_BOUNDARY_CHARS})", re.IGNORECASE)


@functools.cache
def _pattern(sense: Sense) -> re.Pattern[str]:
    return _whole_words(_surface_forms(sense))


@functools.cache
def _context_pattern(sense: Sense) -> re.Pattern[str] | None:
    if not sense.context:
        return None
    words = {w for c in sense.context for w in (c, inflect(c, "noun", "NNS"))}
    return _whole_words(words)


def _words_before(text: str, start: int, n: int) -> list[str]:
    return [w.lower() for w in _WORD.findall(text[:start])][-n:] if n else []


def _in_context(text: str, start: int, end: int, sense: Sense) -> bool:
    pattern = _context_pattern(sense)
    if pattern is None:
        return True
    after = " ".join(_WORD.findall(text[end:])[: sense.window])
    if pattern.search(after):
        return True
    if sense.near == "after":
        return False
    before = " ".join(_WORD.findall(text[:start])[-sense.window:])
    return bool(pattern.search(before))


def _plausible(text: str, start: int, sense: Sense) -> bool:
    """A cheap guard against the other part of speech: "the end of the process" is no verb,
    "to tip" no noun."""
    prev = _words_before(text, start, 1)
    if sense.pos == "verb":
        return not prev or prev[0] not in _DETERMINERS
    if sense.pos == "noun":
        return not prev or prev[0] not in _SUBJECTS
    return True


def _pick_tag(text: str, start: int, options: list[tuple[str, str]]) -> tuple[str, str]:
    """"shot" is VBD or VBN: the participle after have/be, else the first reading."""
    tags = [t for _, t in options]
    if "VBN" in tags and "VBD" in tags:
        prev = _words_before(text, start, 2)
        want = "VBN" if any(w in _PERFECT for w in prev) else "VBD"
        return options[tags.index(want)]
    return options[0]


_AMBIGUOUS = "\0"
"""`_ascii_fold` of a character that matches several ASCII letters: every sense is then tried."""


@functools.cache
def _ascii_fold(char: str) -> str | None:
    """The lower-case ASCII character that `char` matches case-insensitively in a pattern
    ("ſ" -> "s", "K" (Kelvin) -> "k"), None when it matches none, `_AMBIGUOUS` when several (no
    such character is known). Asked of the regex engine itself, so the index below agrees with the
    patterns by construction."""
    if char.isascii():
        return char.lower()
    found = {a.lower() for a in map(chr, range(128))
             if re.fullmatch(re.escape(a), char, re.IGNORECASE)}
    return found.pop() if len(found) == 1 else _AMBIGUOUS if found else None


def _fold_run(run: str) -> str | None:
    """The lower-case ASCII spelling a run of `text` matches case-insensitively, None when it
    matches no ASCII spelling, or `_AMBIGUOUS`."""
    if run.isascii():
        return run.lower()
    folded = [_ascii_fold(c) for c in run]
    if None in folded:
        return None
    return _AMBIGUOUS if _AMBIGUOUS in folded else "".join(folded)  # type: ignore[arg-type]


def _first_run(form: str) -> str | None:
    """The leading word run of a surface form ("take" of "take over"), None when it has none."""
    m = _RUN.match(form)
    return m.group(0) if m and form.isascii() else None


@functools.cache
def _sense_index() -> tuple[dict[str, tuple[int, ...]], tuple[int, ...]]:
    """Leading word run of a surface form -> the senses (by position) that have such a form, and
    the senses that must always be tried (a form not ASCII or not starting with a word run).

    Why this is exact: a sense's pattern matches only where a run of `text` starts (its
    look-behind), and the matched form's leading run then covers that whole run of `text` (its
    look-ahead, or the non-word character that ends the run in the form). So a sense none of whose
    leading runs occurs among the runs of `text` cannot match, and is skipped unasked."""
    index: dict[str, list[int]] = {}
    always: list[int] = []
    for i, sense in enumerate(senses()):
        runs = {_first_run(form) for form in _surface_forms(sense)}
        if None in runs:
            always.append(i)
            continue
        for run in runs:
            index.setdefault(run, []).append(i)  # type: ignore[arg-type]
    return {k: tuple(v) for k, v in index.items()}, tuple(always)


def _candidate_senses(text: str) -> list[Sense]:
    """The senses whose pattern can match somewhere in `text`, in lexicon order."""
    index, always = _sense_index()
    every = senses()
    runs = {_fold_run(r) for r in _RUN.findall(text)}
    if _AMBIGUOUS in runs:
        return list(every)
    picked = set(always)
    for run in runs:
        picked.update(index.get(run, ()) if run is not None else ())
    return [every[i] for i in sorted(picked)]


def surface_options(forms: dict[str, list[tuple[str, str]]], matched: str
                    ) -> list[tuple[str, str]] | None:
    """The (phrase, tag) readings of a form a sense's pattern matched. Why not only
    `forms[matched.lower()]`: the pattern matches case-insensitively as the regex engine folds
    letters, so "ſhoot" (long s) or a Kelvin-sign "Kill" match forms whose lower case they are not;
    those are looked up by their ASCII spelling (a KeyError that stopped the run, before)."""
    options = forms.get(matched.lower())
    if options is None:
        folded = "".join(_ascii_fold(c) or c for c in matched)
        options = forms.get(folded) if _AMBIGUOUS not in folded else None
    return options


def swaps(text: str, protected: Iterable[tuple[int, int]] = ()) -> list[Swap]:
    """Every place in `text` where a sense's word can be replaced, outside `protected` spans.

    Senses are tried in lexicon order (`substitute` shuffles this list with a seeded RNG, so the
    order is part of the result); only those with a word of `text` among their phrases' leading
    words are tried at all, which saves most of the 74 pattern scans per call."""
    guarded = list(protected)
    found: list[Swap] = []
    for sense in _candidate_senses(text):
        forms = _surface_forms(sense)
        for m in _pattern(sense).finditer(text):
            s, e = m.span()
            if any(s < pe and ps < e for ps, pe in guarded):
                continue
            options = surface_options(forms, m.group(0))
            if options is None:
                continue
            phrase, tag = _pick_tag(text, s, options)
            if len(sense.sensitive) < 2 and phrase in sense.sensitive:
                continue  # already the only sensitive word of this sense
            if _plausible(text, s, sense) and _in_context(text, s, e, sense):
                found.append(Swap(s, e, sense, phrase, tag))
    return found


def _fix_article(text: str, start: int, replacement: str) -> tuple[int, str]:
    """"an excellent idea" -> "a killer idea": the article before a replaced word agrees."""
    m = re.search(r"\b(an?)\s+$", text[:start], re.IGNORECASE)
    if m is None:
        return start, replacement
    article = "an" if replacement[:1].lower() in "aeiou" else "a"
    return m.start(1), match_case(article, m.group(1)) + " " + replacement


def substitute(text: str, seed: int, protected: Iterable[tuple[int, int]] = (),
               max_swaps: int = MAX_SWAPS) -> str | None:
    """`text` with up to `max_swaps` lexicon swaps chosen by `seed`, or None when none applies."""
    rng = random.Random(seed)
    options = swaps(text, protected)
    rng.shuffle(options)
    chosen: list[Swap] = []
    for sw in options:
        if len(chosen) < max_swaps and all(sw.end <= c.start or c.end <= sw.start for c in chosen):
            chosen.append(sw)
    if not chosen:
        return None
    out = text
    for sw in sorted(chosen, key=lambda c: c.start, reverse=True):
        words = [w for w in sw.sense.sensitive if w != sw.phrase]
        word = inflect(rng.choice(words), sw.sense.pos, sw.tag)
        start, replacement = _fix_article(out, sw.start, match_case(word, out[sw.start:sw.end]))
        out = out[:start] + replacement + out[sw.end:]
    return out


def applies(text: str, language: str | None = DEFAULT_LANGUAGE,
            protected: Iterable[tuple[int, int]] = ()) -> bool:
    """Whether the operator can change `text` (the lexicon is English)."""
    return primary(language) == "en" and bool(swaps(text, protected))


def swap_words(instruction: str, parent_id: str, seed: int,
               protected: Iterable[tuple[int, int]] = (),
               language: str | None = DEFAULT_LANGUAGE) -> Offspring:
    """The lexicon operator's offspring of `instruction`: no model call, always well-formed."""
    if primary(language) != "en":
        return Offspring(None, LEXICON_OPERATOR, [parent_id], "no_substitution")
    cand = substitute(instruction, seed, protected)
    if cand is None:
        return Offspring(None, LEXICON_OPERATOR, [parent_id], "no_substitution")
    # No copy test against the parent: a swap changes few words by design (the gate's
    # near-duplicate test still applies).
    reason = rejection_reason(cand, [], language)
    return Offspring(cand if reason is None else None, LEXICON_OPERATOR, [parent_id], reason,
                     "lexicon")
