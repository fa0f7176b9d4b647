"""Languages of seeds and candidates: validating BCP-47 codes, naming them, detecting them.

A seed's language decides what the mutator is asked to write and which request cues the free checks
look for, so a wrong language costs a lineage (a Japanese seed rewritten "in English" drifts off
its set). Codes are BCP-47 tags checked with `langcodes` (the IANA subtag registry, not a list of
our own); names come from its CLDR data, so a prompt can say "German" to the mutator.

Detection is for seed files that do not say their language (XSTest's CSV, a text file typed by
hand). `py3langid` is restricted to the languages this package has refusal patterns for and must be
confident, else the text counts as English: on the 1,169 English prompts of the shipped seeds,
XSTest and EvoRefuse-Test that rule is right on all of them (unrestricted, 4 short questions such as
"When was Angela Merkel born?" come out Dutch or Nigerian Pidgin). See README, "Languages".
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import langcodes

from evorefuse.errors import InputError

DEFAULT_LANGUAGE = "en"

DETECTABLE = ("en", "de", "fr", "es", "it", "pt", "nl", "pl", "ru", "zh", "ja", "ko", "ar", "hi",
              "tr", "vi", "id")
"""Languages detection may answer: those with refusal patterns in `scoring/refusal/packs/`."""

DETECT_MIN_CONFIDENCE = 0.8
"""Normalised probability below which a detected language is not trusted (measured: see module)."""

_UNSEGMENTED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u31f0-\u31ff]")
"""Hiragana, katakana and Han: scripts written without spaces between words."""

_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u31f0-\u31ff]|"
                    r"[^\W_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u31f0-\u31ff]+"
                    r"(?:['’][^\W_]+)*")
_ENGLISH_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class Detected:
    """A detection: the language code and how sure the detector was (0 when it fell back)."""

    language: str
    confidence: float


def validate_language(code: object, *, field: str = "--language", path: str | Path | None = None,
                      line: int | None = None) -> str:
    """The standard form of a BCP-47 tag (`EN_us` -> `en-US`), or InputError naming where it came
    from. Only registered subtags pass: `xx` or `english` are typos, not languages."""
    if not isinstance(code, str) or not code.strip():
        raise InputError("expected a BCP-47 language code such as en, de or zh-Hans", path=path,
                         line=line, field=field)
    text = code.strip()
    try:
        valid = langcodes.tag_is_valid(text)
    except ValueError:
        valid = False
    if not valid or langcodes.Language.get(text).language in (None, "und"):
        raise InputError(f"unknown language code {text!r} (a BCP-47 code such as en, de, fr, es, "
                         "zh, ja or ar)", path=path, line=line, field=field)
    return langcodes.standardize_tag(text)


def primary(code: str | None) -> str:
    """The language subtag alone, lower case: `zh-Hans` -> `zh`, None -> the default."""
    if not code:
        return DEFAULT_LANGUAGE
    return code.replace("_", "-").split("-", 1)[0].lower()


@functools.lru_cache(maxsize=256)
def language_name(code: str) -> str:
    """English name of the language ("German", "Chinese (Simplified)"), for prompts and reports."""
    return langcodes.Language.get(code).display_name()


@functools.lru_cache(maxsize=256)
def autonym(code: str) -> str:
    """The language's name in itself ("Deutsch", "日本語"): small mutators follow it better."""
    return langcodes.Language.get(code).autonym()


def is_unsegmented(text: str) -> bool:
    """Whether most letters of `text` are in a script written without spaces (Chinese, Japanese).

    Called on every candidate, so ASCII text (no such letter) is answered without a scan, and the
    script's characters are found by one regex search instead of a test per letter."""
    if text.isascii():
        return False
    letters = _count_letters(text)
    unsegmented = sum(1 for c in _UNSEGMENTED.findall(text) if c.isalpha())
    return bool(letters) and unsegmented * 2 > letters


def _count_letters(text: str) -> int:
    """How many characters of `text` are letters (`str.isalpha`)."""
    return sum(1 for c in text if c.isalpha())


def tokens(text: str, language: str | None = DEFAULT_LANGUAGE) -> list[str]:
    """Lower-cased words; each Han or kana character is a token of its own.

    English keeps the project's historical tokeniser (`[a-z0-9']+`), so the measured behaviour of
    the free checks and diversity metrics on English text does not move.
    """
    if primary(language) == "en":
        return _ENGLISH_WORD.findall(text.lower())
    return neutral_tokens(text)


def mostly_latin(text: str) -> bool:
    """Whether most letters of `text` are Latin script. all-MiniLM-L6-v2 is an English model: on
    German, French or Spanish it still tells texts apart, but unrelated Arabic requests average a
    cosine similarity of 0.73 (Chinese and Japanese 0.55, English 0.07), so similarity means
    something only between texts for which this is true.

    The gate asks this of every text it compares, several times each: ASCII text is answered by
    whether it has a letter (every ASCII letter is Latin); for other text the answer is remembered
    (the most recent texts), and each letter's Unicode name is looked up once per character."""
    if text.isascii():
        return _ASCII_LETTER.search(text) is not None
    return _mostly_latin(text)


_ASCII_LETTER = re.compile(r"[A-Za-z]")


@functools.lru_cache(maxsize=16384)
def _mostly_latin(text: str) -> bool:
    """`mostly_latin` of a text that is not all ASCII."""
    letters = [c for c in text if c.isalpha()]
    latin = sum(1 for c in letters if c.isascii() or _is_latin_letter(c))
    return bool(letters) and latin * 2 > len(letters)


@functools.cache
def _is_latin_letter(char: str) -> bool:
    """Whether the character's Unicode name says Latin script (the set of letters is bounded)."""
    return "LATIN" in unicodedata.name(char, "")


def neutral_tokens(text: str) -> list[str]:
    """Lower-cased words of any script, cut the same way whatever the language (each Han or kana
    character a token): for comparing texts of unknown or different languages."""
    return _TOKEN.findall(text.lower())


_identifier_lock = threading.Lock()
_identifier: Any = None


def _get_identifier() -> Any:
    global _identifier
    with _identifier_lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            ident.set_languages(list(DETECTABLE))
            _identifier = ident
        return _identifier


def detect_language(text: str, *, default: str = DEFAULT_LANGUAGE) -> Detected:
    """The language of `text` among `DETECTABLE`, or `default` with confidence 0 when unsure."""
    if not text.strip():
        return Detected(default, 0.0)
    code, confidence = _get_identifier().classify(text)
    if confidence < DETECT_MIN_CONFIDENCE:
        return Detected(default, 0.0)
    return Detected(str(code), float(confidence))
