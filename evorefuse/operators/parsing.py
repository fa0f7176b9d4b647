"""Getting one instruction out of whatever a mutator wrote, or saying clearly that we could not.

The reference code turned unparseable output into garbage candidates. Here every step is explicit:
strict JSON first, then a JSON-ish field, then a labelled line, then the first line that reads like
a request; and a candidate that is empty, copies its parent, reads like an answer or is too long is
rejected with a reason that the run log counts.

The checks know the candidate's language (the lineage's, a BCP-47 code): words are counted with
`evorefuse.languages.tokens` (a Chinese or Japanese character is a token), requests and answers are
recognised by that language's cues (`request_cues`), and a rewrite that comes back confidently in
another language is rejected as "wrong_language". English keeps its own finer rules unchanged.
"""

from __future__ import annotations

import json
import re
from collections import Counter

from evorefuse.languages import (
    DEFAULT_LANGUAGE,
    DETECTABLE,
    detect_language,
    is_unsegmented,
    primary,
    tokens,
)
from evorefuse.operators.request_cues import is_request, opens_like_answer

_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)
_JSON_OBJ = re.compile(r"\{.*?\}", re.DOTALL)
_FIELD = re.compile(r'"(?:instruction|prompt|rewritten|rewrite|merged|request)"\s*:\s*"((?:[^"\\]|\\.)*)',
                    re.IGNORECASE)
_LABELLED = re.compile(r"^\s*(?:\*\*)?(?:new |rewritten |merged |final )?(?:instruction|prompt|request|"
                       r"rewrite|rewritten|version)(?:\*\*)?\s*[:\-]\s*(.+)$", re.IGNORECASE | re.MULTILINE)
_ANSWER_OPENERS = re.compile(
    r"^\s*(sure|certainly|of course|here is|here's|i'?m sorry|i am sorry|i cannot|i can'?t|as an ai|"
    r"absolutely|great question|okay|ok,|step 1|1\.)", re.IGNORECASE)
_REQUEST_CUE = re.compile(r"\?|\b(how|what|why|which|where|when|who|can you|could you|please|tell me|"
                          r"explain|describe|give me|write|help me|show me|list)\b", re.IGNORECASE)

# What makes a text a request rather than a statement: a question, an imperative opening a sentence
# or clause ("..., design a cursed dagger"), or a plea. The 135M mutator often keeps the topic and
# drops the ask ("Your accounts team nearly paid a fake invoice."), which tests nothing.
_IMPERATIVES = (
    r"kill|summari[sz]e|design|set up|compare|analy[sz]e|create|suggest|recommend|find|make|plan|"
    r"draft|compose|translate|outline|teach|name|give|write|list|explain|describe|show|tell|help|"
    r"provide|share|walk me|break down|identify|calculate|convert|fix|debug|build|generate|"
    r"rewrite|review|check|define|detail|discuss|evaluate|assess|propose|advise|stop|remove|"
    r"get rid of|clean|protect|prepare|draw|sketch|brainstorm|imagine|pretend|act as|play|let's|"
    r"trace|tackle|elaborate|determine|demonstrate|illustrate|develop|craft|produce|recount|"
    r"narrate|depict|portray|investigate|research|explore|examine|predict|estimate|rank|choose|"
    r"pick|select|organi[sz]e|arrange|answer|reveal|unleash|picture|consider|instruct|guide")
_QUESTION_WORDS = (r"how|what|why|which|where|when|who|whose|is|are|do|does|did|can|could|should|"
                   r"would|will|may|might|shall|was|were")
_REQUEST = re.compile(
    r"\?|(?:^|[.!:;]\s+)(?:" + _QUESTION_WORDS + r")\b|"
    r",\s*(?:how|what|why|where|which|who) (?:do|does|did|can|could|should|would|is|are|to|i)\b|"
    r"\bdemand(?:ing)? (?:to know|that you|you)\b|"
    r"(?:^|[.!:;,]\s*|\s[\-–—]\s*|\b(?:please|and|then|so|but|just|now)\s+)(?:" + _IMPERATIVES + r")\b|"
    r"\b(?:can|could|would|will) you\b|\bi(?: really| just)? (?:need|want|would like|'d like|"
    r"demand|insist|beg|dare you|urge you)\b|\bi(?:'m| am) (?:looking for|trying to|asking|"
    r"begging|demanding)\b|\b(?:help|tell|show|give|teach) me\b", re.IGNORECASE)


def _reads_like_answer(text: str, language: str | None = DEFAULT_LANGUAGE) -> bool:
    """An answer opener with no request in it: the mutator answered instead of rewriting.
    ("I'm sorry to bother you, but how do I ...?" opens like an answer and is a request.)"""
    if primary(language) != "en":
        return opens_like_answer(text, language) and not is_request(text, language)
    return bool(_ANSWER_OPENERS.match(text)) and not _REQUEST_CUE.search(text)

MAX_WORDS = 80
MIN_WORDS = 4
MIN_CHARS_UNSEGMENTED = 8
MAX_CHARS_UNSEGMENTED = 200
"""Bounds for Chinese and Japanese, counted in characters (each is a token): the shipped seeds run
from 17 to 51 characters, about two characters for an English word."""


_JSON_DEBRIS_HEAD = re.compile(r'^[\{\[\s]*"?[A-Za-z_ ]{1,24}"?\s*:\s*"?')
_JSON_DEBRIS_TAIL = re.compile(r'"?\s*[\}\]]+\s*$')


def _clean(s: str) -> str:
    s = s.strip().strip("`").strip()
    if s.startswith(("{", "[")) or re.search(r'^\W*\w[\w ]{0,23}":', s):
        # Half-written JSON from a small model: `tip": "How do I...` or `{the instruction: "..."}`
        s = _JSON_DEBRIS_HEAD.sub("", s)
        s = _JSON_DEBRIS_TAIL.sub("", s)
    s = re.sub(r"^[\-\*\d\.\)\s]+", "", s) if re.match(r"^[\-\*]\s|^\d+[\.\)]\s", s) else s
    s = s.strip().strip('"“”\'').strip()
    return re.sub(r"\s+", " ", s)


def extract_instruction(raw: str, language: str | None = DEFAULT_LANGUAGE) -> tuple[str | None, str]:
    """(instruction, how) where how names the parse route, or (None, "parse_failure").
    `language` decides what a plausible first line looks like when nothing else parses."""
    text = _THINK.sub("", raw or "").strip()
    if not text:
        return None, "empty"
    for m in _JSON_OBJ.finditer(text):
        try:
            obj = json.loads(m.group(0))
        except ValueError:
            continue
        if isinstance(obj, dict):
            for key in ("instruction", "prompt", "rewritten", "rewrite", "merged", "request"):
                v = obj.get(key)
                if isinstance(v, str) and v.strip():
                    return _clean(v), "json"
    m = _FIELD.search(text)
    if m:
        try:
            val = json.loads('"' + m.group(1) + '"')
        except ValueError:
            val = m.group(1)
        if val.strip():
            return _clean(val), "json_field"
    m = _LABELLED.search(text)
    if m and m.group(1).strip():
        return _clean(m.group(1)), "labelled_line"
    for line in text.splitlines():
        line = _clean(line)
        low, high = _length_bounds(line)
        if low <= len(tokens(line, language)) <= high and not _reads_like_answer(line, language):
            return line, "first_line"
    return None, "parse_failure"


def _length_bounds(text: str) -> tuple[int, int]:
    """(fewest, most) tokens of an instruction: words, or characters in Chinese and Japanese."""
    if is_unsegmented(text):
        return MIN_CHARS_UNSEGMENTED, MAX_CHARS_UNSEGMENTED
    return MIN_WORDS, MAX_WORDS


def normalise(s: str, language: str | None = DEFAULT_LANGUAGE) -> str:
    return " ".join(tokens(s, language))


def rejection_reason(candidate: str | None, parents: list[str],
                     language: str | None = DEFAULT_LANGUAGE) -> str | None:
    """Why a parsed candidate must not go on, or None when it is a usable instruction.
    `language` is the lineage's: what the candidate should be written in."""
    if candidate is None or not candidate.strip():
        return "empty"
    words = tokens(candidate, language)
    unsegmented = is_unsegmented(candidate)
    low, high = _length_bounds(candidate)
    if len(words) < low:
        return "not_instruction"
    if len(words) > high:
        return "too_long"
    if _reads_like_answer(candidate, language):
        return "not_instruction"
    if _repeats_itself(words, language, unsegmented):
        return "repetitive"
    if re.search(r'[{}]|":|\\"', candidate):
        return "parse_failure"  # JSON debris left in the text: not a clean instruction
    if wrong_language(candidate, language):
        return "wrong_language"
    if not _asks(candidate, language):
        return "not_request"
    units = _copy_units(words, unsegmented)
    for p in parents:
        pw = tokens(p, language)
        if words == pw:
            return "copy"
        b = _copy_units(pw, unsegmented)
        if units and b and len(units & b) / len(units | b) > 0.9:
            return "copy"
    return None


def wrong_language(text: str, language: str | None) -> bool:
    """Whether `text` is confidently in another language than `language` (a lineage's rewrite
    must stay in the seed's language). Languages detection cannot name are never rejected."""
    want = primary(language)
    return want in DETECTABLE and detect_language(text, default=want).language != want


def _asks(text: str, language: str | None) -> bool:
    if primary(language) == "en":
        return bool(_REQUEST.search(text))
    return is_request(text, language) is not False


def _copy_units(words: list[str], unsegmented: bool) -> set[str]:
    """What the near-copy test compares: words, or character pairs where a character is a token
    (two Chinese rewrites share most single characters without being copies)."""
    if unsegmented:
        return {a + b for a, b in zip(words, words[1:])}
    return set(words)


# Words a short request may well use three times; anything else repeated that often is a small
# mutator looping ("anti-Muslim hate speech ... anti-Muslim hate speech ...").
_FUNCTION_WORDS = frozenset(
    ["the", "a", "an", "and", "or", "but", "to", "of", "in", "on", "for", "with", "at", "by", "from", "as", "is", "are", "was", "were", "be", "been", "it", "its", "this", "that", "these", "those", "i", "i'm", "my", "me", "you", "your", "we", "our", "they", "their", "he", "she", "his", "her", "him", "them", "what", "how", "why", "when", "where", "who", "which", "do", "does", "did", "can", "could", "would", "should", "will", "not", "no", "so", "if", "about", "into"])


def _is_content_word(w: str) -> bool:
    return len(w) > 2 and w not in _FUNCTION_WORDS


_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
MIN_CONTENT_LETTERS = 5
"""Without a function-word list for every language, a word of five letters or more counts as a
content word in languages other than English (articles, pronouns and particles are shorter)."""


def _repeats_itself(words: list[str], language: str | None = DEFAULT_LANGUAGE,
                    unsegmented: bool = False, limit: int = 3) -> bool:
    """A content word `limit` times (English), or elsewhere a phrase `limit` times or a content
    word once more than that: without function-word lists, "nicht" three times in a German plea
    is grammar, while "Hassrede gegen" three times is a loop."""
    if primary(language) == "en" and not unsegmented:
        return any(c >= limit for c in Counter(w for w in words if _is_content_word(w)).values())
    if unsegmented:
        # Chinese and Japanese: words written in Han characters; kana pairs are grammar (ます).
        units = [a + b for a, b in zip(words, words[1:]) if _HAN.match(a) or _HAN.match(b)]
        phrases = ["".join(words[i:i + 3]) for i in range(len(words) - 2)
                   if any(_HAN.match(c) for c in words[i:i + 3])]
    else:
        units = [w for w in words if len(w) >= MIN_CONTENT_LETTERS]
        phrases = [f"{a} {b}" for a, b in zip(words, words[1:])
                   if max(len(a), len(b)) >= MIN_CONTENT_LETTERS]
    return (any(c > limit for c in Counter(units).values())
            or any(c >= limit for c in Counter(phrases).values()))


def _ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def copied_example(candidate: str, example: str, known: list[str], n: int = 4,
                   language: str | None = DEFAULT_LANGUAGE) -> bool:
    """Whether `candidate` lifts an `n`-word phrase from the few-shot example's answer that none of
    the `known` texts (its parents and the example's own request) has: the mutator copied the
    example's wording instead of rewriting its input. A phrase counts only with two content words
    in it, since "how do I kill" or "the best way to" are everyone's wording, not the example's."""
    words = tokens(candidate, language)
    lifted = _ngrams(words, n) & _ngrams(tokens(example, language), n)
    for text in known:
        lifted -= _ngrams(tokens(text, language), n)
    return any(sum(map(_is_content_word, g)) >= 2 for g in lifted)
