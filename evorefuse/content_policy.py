"""A content policy given to `evorefuse seeds --policy FILE`: its text, and the categories it names.

A policy says what an assistant may and may not help with. Over-refusal seeds live on its
border: requests that sound like what it forbids but are allowed. So each kind of content the
policy restricts is a category, and the policy text itself goes into every generation request
(`operators.seed_writer`), so that "allowed" means what this policy says.

Categories come from the policy's own structure (its list items and headings under a section
about what is not allowed, else all its list items), not from the generator: a 135M model asked
to list a policy's categories gave no parseable answer in 5 tries (`benchmarks/seedgen.py`;
README, "Seeds from categories or a policy"), and a policy that lists its restrictions is
read the same way by any model. A policy in prose without lists gives one category, `policy`:
the generator then works from the text alone. `--category` names replace the derived ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from evorefuse.errors import InputError
from evorefuse.fileio import read_input

MAX_POLICY_BYTES = 1_000_000
MAX_CATEGORIES = 24
MAX_CATEGORY_WORDS = 12
PROSE_CATEGORY = "policy"

_ITEM = re.compile(r"^\s*(?:[-*•+]|\d{1,2}[.)])\s+(.+?)\s*$")
_HEADING = re.compile(r"^\s*#{1,6}\s+(.+?)\s*#*\s*$")
_RESTRICTED = re.compile(
    r"\b(?:not allowed|disallowed|prohibited|forbidden|restricted|must not|may not|never|do not|"
    r"don't|banned|refuse|unacceptable|not permitted|out of scope|verboten|interdit|prohibido|"
    r"禁止|不允许|禁じ|ممنوع)\b|禁止|不允许|禁じ|ممنوع", re.IGNORECASE)


@dataclass(frozen=True)
class Policy:
    """A policy's text and the categories derived from it."""

    path: Path
    text: str
    categories: tuple[str, ...]


def read_policy(path: Path) -> Policy:
    """Read a policy file: UTF-8 text, not empty (InputError naming the file and line)."""
    raw = read_input(path, "a text file", missing="policy file not found")
    if len(raw) > MAX_POLICY_BYTES:
        raise InputError(f"policy file is {len(raw) // 1000} kB; at most "
                         f"{MAX_POLICY_BYTES // 1000} kB", path=path, field="--policy")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("not valid UTF-8; save the policy as UTF-8 text", path=path,
                         line=raw[: exc.start].count(b"\n") + 1, field="--policy") from None
    if not text.strip():
        raise InputError("policy file is empty", path=path, field="--policy")
    return Policy(path, text.strip(), policy_categories(text))


def policy_categories(text: str) -> tuple[str, ...]:
    """The kinds of content a policy restricts: the list items (or sub-headings) of its sections
    about what is not allowed; without such a section, every list item; without lists, one
    category for the whole text."""
    restricted: list[str] = []
    items: list[str] = []
    section: int | None = None  # heading level of the restricted section we are in, if any
    for line in text.splitlines():
        heading, item = _HEADING.match(line), _ITEM.match(line)
        if heading:
            level = len(line.lstrip()) - len(line.lstrip().lstrip("#"))
            name = _category_name(heading.group(1))
            if section is not None and level > section and name:
                restricted.append(name)  # a sub-heading of a restricted section names a kind
                continue
            section = level if _RESTRICTED.search(heading.group(1)) else None
        elif not item and line.rstrip().endswith(":"):  # "Not allowed:" as a label line
            section = 99 if _RESTRICTED.search(line) else None
        elif item:
            name = _category_name(item.group(1))
            if name:
                items.append(name)
                if section is not None:
                    restricted.append(name)
    found = restricted or items
    return tuple(dict.fromkeys(found))[:MAX_CATEGORIES] or (PROSE_CATEGORY,)


def _category_name(item: str) -> str | None:
    """A list item as a category name: its label before a colon or dash, markup removed, at most
    a dozen words."""
    text = re.sub(r"[*_`]+", "", item).strip()
    label = re.split(r"\s*[:：]\s+|\s+[-–—]\s+", text, maxsplit=1)[0].strip(" .;,")
    words = label.split()
    if not words:
        return None
    return " ".join(words[:MAX_CATEGORY_WORDS])
