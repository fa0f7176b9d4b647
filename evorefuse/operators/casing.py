"""Letter case when an instruction runs on after a framing's opener ("..., but {x}").

The framing used to lower-case the instruction's first letter, which turned "I'm photographing"
into "i'm photographing" and "PostgreSQL" into "postgreSQL", and it did so even after an opener
that ends its own sentence. Only a common word that merely opens the sentence changes case: "I"
and its contractions, acronyms and words with capitals inside (SQL, iPhone), and words English
dictionaries do not list (Goebbels, Ubuntu: names) are kept as written.
"""

from __future__ import annotations

import functools
import re

_FIRST_WORD = re.compile(r"[A-Za-z][\w’'-]*")
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)]*\s*$")

# Closed-class words the lemma dictionary does not list (it knows nouns, verbs, adjectives and
# adverbs): these open sentences and are never names.
_FUNCTION_WORDS = frozenset(
    ["a", "an", "the", "for", "from", "to", "of", "in", "on", "at", "by", "with", "without", "about", "against", "between", "into", "through", "during", "before", "after", "above", "below", "under", "over", "and", "or", "but", "nor", "so", "yet", "if", "because", "although", "though", "while", "whereas", "unless", "since", "until", "as", "than", "that", "this", "these", "those", "there", "here", "it", "its", "we", "you", "they", "he", "she", "me", "us", "them", "his", "her", "their", "our", "your", "my", "mine", "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "whether", "any", "each", "every", "either", "neither", "both", "all", "some", "no", "not", "do", "does", "did", "is", "are", "was", "were", "be", "been", "am", "has", "have", "had", "can", "could", "should", "would", "will", "shall", "may", "might", "must", "let"])


@functools.lru_cache(maxsize=4096)
def is_common_word(word: str) -> bool:
    """Whether `word` (any case) is an ordinary English word rather than a name."""
    from lemminflect import getAllLemmas

    low = re.split(r"['’]", word.lower())[0]  # what's -> what, we're -> we
    return low in _FUNCTION_WORDS or bool(getAllLemmas(low))


def keeps_capital(word: str) -> bool:
    """Whether `word` keeps its capital letter in the middle of a sentence."""
    if re.split(r"['’]", word)[0] == "I":
        return True
    if any(ch.isupper() for ch in word[1:]):
        return True  # SQL, THC, iPhone, PostgreSQL
    return not is_common_word(word)


def continue_sentence(opener: str, text: str) -> str:
    """`text` as it reads after `opener`: its first word lower-cased when the opener runs on into
    it (ends with a comma, a colon or a word) and the word is an ordinary one."""
    if not opener.strip() or _SENTENCE_END.search(opener):
        return text
    m = _FIRST_WORD.match(text)
    if m is None or keeps_capital(m.group(0)):
        return text
    return text[0].lower() + text[1:]


def match_case(replacement: str, original: str) -> str:
    """`replacement` capitalised like `original` (a sentence-initial word stays initial)."""
    if original[:1].isupper() and not original.isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement
