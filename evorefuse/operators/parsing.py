"""Getting one instruction out of whatever a mutator wrote, or saying clearly that we could not.

The reference code turned unparseable output into garbage candidates. Here every step is explicit:
strict JSON first, then a JSON-ish field, then a labelled line, then the first line that reads like
a request; and a candidate that is empty, copies its parent, reads like an answer or is too long is
rejected with a reason that the run log counts.
"""

from __future__ import annotations

import json
import re

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
    if re.search(r'[{}]|":|\\"', candidate):
        return "parse_failure"  # JSON debris left in the text: not a clean instruction
    norm = " ".join(words)
    for p in parents:
        pw = _WORD.findall(p.lower())
        if norm == " ".join(pw):
            return "copy"
        a, b = set(words), set(pw)
        if a and b and len(a & b) / len(a | b) > 0.9:
            return "copy"
    return None
