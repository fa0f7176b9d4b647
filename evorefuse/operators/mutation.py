"""Mutation and recombination through the mutator role, and the framing shortcut.

Each call returns an `Offspring` whatever happens: either a usable instruction or the reason it was
rejected (parse failure, empty, copy, not an instruction, not a request, repetitive, copied from
the few-shot example, too long, wrong language), so the engine can count and log rejections instead
of passing garbage on.

Every operator takes the lineage's `language` (a BCP-47 code, English by default): the mutator is
asked to write in it, the free checks judge the offspring by its rules, and framings use templates
written in it. For English the messages are exactly what they were, so cached calls still replay.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evorefuse.languages import DEFAULT_LANGUAGE, autonym, language_name, primary
from evorefuse.models.base import SamplingParams
from evorefuse.models.endpoint import Endpoint
from evorefuse.operators import prompts
from evorefuse.operators.casing import continue_sentence
from evorefuse.operators.parsing import (
    copied_example,
    extract_instruction,
    rejection_reason,
)
from evorefuse.operators.strategies import Strategy, all_framings, framings_for


@dataclass
class Offspring:
    prompt: str | None
    operator: str          # strategy name, "framing:<strategy>", or "recombine"
    parents: list[str]     # parent candidate ids
    rejected: str | None   # None when usable
    parse_route: str = ""
    raw: str = ""


def _mutate_example(strategy: Strategy, seed: int) -> tuple[str, str, str]:
    examples = prompts.MUTATE_EXAMPLES.get(strategy.family, prompts.MUTATE_EXAMPLES["extreme_emotion"])
    return examples[seed % len(examples)]


def in_language(system: str, user: str, language: str | None) -> tuple[str, str]:
    """The system prompt and the final request, asking for output in `language` unless English."""
    if primary(language) == "en":
        return system, user
    names = {"name": language_name(language), "autonym": autonym(language)}
    return (system + prompts.LANGUAGE_SYSTEM.format(**names),
            user + prompts.LANGUAGE_USER.format(**names))


def mutate_messages(instruction: str, strategy: Strategy, example: tuple[str, str, str],
                    language: str | None = DEFAULT_LANGUAGE) -> list[dict[str, str]]:
    """The chat a mutation sends: system prompt, one worked example, the request to rewrite."""
    ex_strategy, ex_in, ex_out = example
    system, user = in_language(
        prompts.MUTATOR_SYSTEM,
        prompts.MUTATE_USER.format(strategy=strategy.instruction, instruction=instruction), language)
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": prompts.MUTATE_USER.format(strategy=ex_strategy,
                                                                instruction=ex_in)},
        {"role": "assistant", "content": json.dumps({"instruction": ex_out})},
        {"role": "user", "content": user},
    ]


def recombine_messages(a: str, b: str, example: tuple[str, str, str],
                       language: str | None = DEFAULT_LANGUAGE) -> list[dict[str, str]]:
    """The chat a recombination sends: system prompt, one worked merge, the two requests."""
    ex_a, ex_b, ex_out = example
    system, user = in_language(prompts.MUTATOR_SYSTEM, prompts.RECOMBINE_USER.format(a=a, b=b),
                                language)
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": prompts.RECOMBINE_USER.format(a=ex_a, b=ex_b)},
        {"role": "assistant", "content": json.dumps({"instruction": ex_out})},
        {"role": "user", "content": user},
    ]


def _vet(cand: str | None, route: str, parents: list[str], example_requests: list[str],
         example_answer: str, language: str | None = DEFAULT_LANGUAGE) -> str | None:
    """Why the parsed candidate is unusable (None when usable), given the few-shot example the
    call showed (its request or requests, and its answer)."""
    if cand is None:
        return route
    reason = rejection_reason(cand, parents, language)
    if reason is None and copied_example(cand, example_answer, parents + example_requests,
                                         language=language):
        return "copied_example"
    return reason


async def mutate(endpoint: Endpoint, instruction: str, parent_id: str, strategy: Strategy, *,
                 seed: int, temperature: float, max_tokens: int,
                 language: str | None = DEFAULT_LANGUAGE) -> Offspring:
    params = SamplingParams(temperature=temperature, top_p=0.95, max_tokens=max_tokens, seed=seed)
    example = _mutate_example(strategy, seed)
    result = await endpoint.chat(mutate_messages(instruction, strategy, example, language), params,
                                 role="mutator")
    raw = result.choices[0].text if result.choices else ""
    cand, route = extract_instruction(raw, language)
    reason = _vet(cand, route, [instruction], [example[1]], example[2], language)
    return Offspring(cand if reason is None else None, strategy.name, [parent_id], reason, route,
                     raw)


def frame(instruction: str, parent_id: str, strategy: Strategy, variant: int,
          language: str | None = DEFAULT_LANGUAGE) -> Offspring:
    """Apply one of the strategy's framings in `language`: no model call, always well-formed."""
    templates = framings_for(strategy, language)
    if not templates:
        return Offspring(None, f"framing:{strategy.name}", [parent_id], "no_framing")
    template = templates[variant % len(templates)]
    x = instruction.strip()
    # Some English templates run on into the request ("..., but {x}"); the others end their
    # sentence before it, and lower-casing would break German nouns.
    if primary(language) == "en":
        x = continue_sentence(template[: template.index("{x}")], x)
    cand = template.format(x=x)
    reason = rejection_reason(cand, [instruction], language)
    return Offspring(cand if reason is None else None, f"framing:{strategy.name}", [parent_id],
                     reason, "framing")


@dataclass(frozen=True)
class Unframed:
    """A framed text taken apart: the instruction inside and the template around it (None: the
    text wears no framing)."""

    instruction: str
    template: str | None


@functools.cache
def _template_patterns(strategies: tuple[Strategy, ...]
                       ) -> tuple[tuple[str, str, re.Pattern[str]], ...]:
    """Each template of every language, its opener, and a pattern that captures its `{x}`."""
    out = []
    for s in strategies:
        for template in all_framings(s):
            before, _, after = template.partition("{x}")
            out.append((template, before, re.compile(
                re.escape(before) + r"(?P<x>.+?)" + re.escape(after), re.DOTALL)))
    return tuple(out)


def unframe(text: str, strategies: Sequence[Strategy]) -> Unframed | None:
    """The instruction a framing wraps in `text`, or None when `text` is not exactly one
    template around an instruction (unframed, or a rewrite that broke the template apart).

    Why: evolution re-frames a framed incumbent (swaps its framing for another) instead of
    stacking a second framing on it. The instruction gets back the capital letter the framing
    took (`continue_sentence` lowers an ordinary first word after an opener that runs on), and
    only that one: "iPhone" stays as written."""
    stripped = text.strip()
    for template, before, pattern in _template_patterns(tuple(strategies)):
        m = pattern.fullmatch(stripped)
        if m is None or not m.group("x").strip():
            continue
        x = m.group("x").strip()
        capital = x[0].upper() + x[1:]
        if capital != x and continue_sentence(before, capital) == x:
            x = capital
        return Unframed(x, template)
    return None


def least_used_framing(strategy: Strategy, share: Callable[[str], float], seed: int,
                       language: str | None = DEFAULT_LANGUAGE) -> int:
    """The index of the strategy's template in `language` that the fewest incumbents carry, by
    `share`. Ties go to a rotation that starts at `seed`, so lineages framing in the same
    generation spread over the tied templates: one template opening many items makes a test set
    repetitive."""
    templates = framings_for(strategy, language)
    n = len(templates)
    if n == 0:
        return 0
    return min(((seed + i) % n for i in range(n)), key=lambda v: share(templates[v]))


async def recombine(endpoint: Endpoint, a: tuple[str, str], b: tuple[str, str], *, seed: int,
                    temperature: float, max_tokens: int,
                    language: str | None = DEFAULT_LANGUAGE) -> Offspring:
    """Merge two candidates ((id, prompt) each) into one short instruction in `language`."""
    example = prompts.RECOMBINE_EXAMPLES[seed % len(prompts.RECOMBINE_EXAMPLES)]
    params = SamplingParams(temperature=temperature, top_p=0.95, max_tokens=max_tokens, seed=seed)
    result = await endpoint.chat(recombine_messages(a[1], b[1], example, language), params,
                                 role="mutator")
    raw = result.choices[0].text if result.choices else ""
    cand, route = extract_instruction(raw, language)
    reason = _vet(cand, route, [a[1], b[1]], [example[0], example[1]], example[2], language)
    return Offspring(cand if reason is None else None, "recombine", [a[0], b[0]], reason, route, raw)
