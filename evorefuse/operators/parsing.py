"""Getting one instruction out of whatever a mutator wrote, or saying clearly that we could not.

The reference code turned unparseable output into garbage candidates. Here every step is explicit:
strict JSON first, then a JSON-ish field, then a labelled line, then the first line that reads like
a request; and a candidate that is empty, copies its parent, reads like an answer or is too long is
rejected with a reason that the run log counts.
"""

from __future__ import annotations

import json
import re
from collections import Counter

_THINK = re.compile(r"<think>.*?(</think>|$)", re.S | re.I)
_JSON_OBJ = re.compile(r"\{.*?\}", re.S)
_FIELD = re.compile(r'"(?:instruction|prompt|rewritten|rewrite|merged|request)"\s*:\s*"((?:[^"\\]|\\.)*)',
                    re.I)
_LABELLED = re.compile(r"^\s*(?:\*\*)?(?:new |rewritten |merged |final )?(?:instruction|prompt|request|"
                       r"rewrite|rewritten|version)(?:\*\*)?\s*[:\-]\s*(.+)$", re.I | re.M)
_ANSWER_OPENERS = re.compile(
    r"^\s*(sure|certainly|of course|here is|here's|i'?m sorry|i am sorry|i cannot|i can'?t|as an ai|"
    r"absolutely|great question|okay|ok,|step 1|1\.)", re.I)
_WORD = re.compile(r"[a-z0-9']+")
_REQUEST_CUE = re.compile(r"\?|\b(how|what|why|which|where|when|who|can you|could you|please|tell me|"
                          r"explain|describe|give me|write|help me|show me|list)\b", re.I)

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
    r"begging|demanding)\b|\b(?:help|tell|show|give|teach) me\b", re.I)


def _reads_like_answer(text: str) -> bool:
    """An answer opener with no request in it: the mutator answered instead of rewriting.
    ("I'm sorry to bother you, but how do I ...?" opens like an answer and is a request.)"""
    return bool(_ANSWER_OPENERS.match(text)) and not _REQUEST_CUE.search(text)

MAX_WORDS = 80
MIN_WORDS = 4


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


def extract_instruction(raw: str) -> tuple[str | None, str]:
    """(instruction, how) where how names the parse route, or (None, "parse_failure")."""
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
        n = len(_WORD.findall(line.lower()))
        if MIN_WORDS <= n <= MAX_WORDS and not _reads_like_answer(line):
            return line, "first_line"
    return None, "parse_failure"


def normalise(s: str) -> str:
    return " ".join(_WORD.findall(s.lower()))


def rejection_reason(candidate: str | None, parents: list[str]) -> str | None:
    """Why a parsed candidate must not go on, or None when it is a usable instruction."""
    if candidate is None or not candidate.strip():
        return "empty"
    words = _WORD.findall(candidate.lower())
    if len(words) < MIN_WORDS:
        return "not_instruction"
    if len(words) > MAX_WORDS:
        return "too_long"
    if _reads_like_answer(candidate):
        return "not_instruction"
    if _repeats_itself(words):
        return "repetitive"
    if re.search(r'[{}]|":|\\"', candidate):
        return "parse_failure"  # JSON debris left in the text: not a clean instruction
    if not _REQUEST.search(candidate):
        return "not_request"
    norm = " ".join(words)
    for p in parents:
        pw = _WORD.findall(p.lower())
        if norm == " ".join(pw):
            return "copy"
        a, b = set(words), set(pw)
        if a and b and len(a & b) / len(a | b) > 0.9:
            return "copy"
    return None


# Words a short request may well use three times; anything else repeated that often is a small
# mutator looping ("anti-Muslim hate speech ... anti-Muslim hate speech ...").
_FUNCTION_WORDS = frozenset(
    "the a an and or but to of in on for with at by from as is are was were be been it its this "
    "that these those i i'm my me you your we our they their he she his her him them what how why "
    "when where who which do does did can could would should will not no so if about into".split())


def _is_content_word(w: str) -> bool:
    return len(w) > 2 and w not in _FUNCTION_WORDS


def _repeats_itself(words: list[str], limit: int = 3) -> bool:
    return any(c >= limit for c in Counter(w for w in words if _is_content_word(w)).values())


def _ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def copied_example(candidate: str, example: str, known: list[str], n: int = 4) -> bool:
    """Whether `candidate` lifts an `n`-word phrase from the few-shot example's answer that none of
    the `known` texts (its parents and the example's own request) has: the mutator copied the
    example's wording instead of rewriting its input. A phrase counts only with two content words
    in it, since "how do I kill" or "the best way to" are everyone's wording, not the example's."""
    words = _WORD.findall(candidate.lower())
    lifted = _ngrams(words, n) & _ngrams(_WORD.findall(example.lower()), n)
    for text in known:
        lifted -= _ngrams(_WORD.findall(text.lower()), n)
    return any(sum(map(_is_content_word, g)) >= 2 for g in lifted)
