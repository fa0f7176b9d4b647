"""Mutation and recombination through the mutator role, and the framing shortcut.

Each call returns an `Offspring` whatever happens: either a usable instruction or the reason it was
rejected (parse failure, empty, copy, not an instruction, not a request, repetitive, copied from
the few-shot example, too long), so the engine can count and log rejections instead of passing
garbage on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from evorefuse.models.base import SamplingParams
from evorefuse.models.endpoint import Endpoint
from evorefuse.operators import prompts
from evorefuse.operators.parsing import copied_example, extract_instruction, rejection_reason
from evorefuse.operators.strategies import Strategy


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


def _mutate_messages(instruction: str, strategy: Strategy,
                     example: tuple[str, str, str]) -> list[dict[str, str]]:
    ex_strategy, ex_in, ex_out = example
    return [
        {"role": "system", "content": prompts.MUTATOR_SYSTEM},
        {"role": "user", "content": prompts.MUTATE_USER.format(strategy=ex_strategy,
                                                                instruction=ex_in)},
        {"role": "assistant", "content": json.dumps({"instruction": ex_out})},
        {"role": "user", "content": prompts.MUTATE_USER.format(strategy=strategy.instruction,
                                                                instruction=instruction)},
    ]


def _vet(cand: str | None, route: str, parents: list[str], example_requests: list[str],
         example_answer: str) -> str | None:
    """Why the parsed candidate is unusable (None when usable), given the few-shot example the
    call showed (its request or requests, and its answer)."""
    if cand is None:
        return route
    reason = rejection_reason(cand, parents)
    if reason is None and copied_example(cand, example_answer, parents + example_requests):
        return "copied_example"
    return reason


async def mutate(endpoint: Endpoint, instruction: str, parent_id: str, strategy: Strategy, *,
                 seed: int, temperature: float, max_tokens: int) -> Offspring:
    params = SamplingParams(temperature=temperature, top_p=0.95, max_tokens=max_tokens, seed=seed)
    example = _mutate_example(strategy, seed)
    result = await endpoint.chat(_mutate_messages(instruction, strategy, example), params,
                                 role="mutator")
    raw = result.choices[0].text if result.choices else ""
    cand, route = extract_instruction(raw)
    reason = _vet(cand, route, [instruction], [example[1]], example[2])
    return Offspring(cand if reason is None else None, strategy.name, [parent_id], reason, route,
                     raw)


def frame(instruction: str, parent_id: str, strategy: Strategy, variant: int) -> Offspring:
    """Apply one of the strategy's framings: no model call, always well-formed."""
    if not strategy.framings:
        return Offspring(None, f"framing:{strategy.name}", [parent_id], "no_framing")
    template = strategy.framings[variant % len(strategy.framings)]
    x = instruction.strip()
    x = x[0].lower() + x[1:] if template.index("{x}") > 0 and x[:2] != "I " else x
    cand = template.format(x=x)
    reason = rejection_reason(cand, [instruction])
    return Offspring(cand if reason is None else None, f"framing:{strategy.name}", [parent_id],
                     reason, "framing")


def least_used_framing(strategy: Strategy, share: Callable[[str], float], seed: int) -> int:
    """The index of the strategy's template that the fewest incumbents carry, by `share`. Ties go
    to a rotation that starts at `seed`, so lineages framing in the same generation spread over
    the tied templates: one template opening many items makes a test set repetitive."""
    n = len(strategy.framings)
    if n == 0:
        return 0
    return min(((seed + i) % n for i in range(n)), key=lambda v: share(strategy.framings[v]))


async def recombine(endpoint: Endpoint, a: tuple[str, str], b: tuple[str, str], *, seed: int,
                    temperature: float, max_tokens: int) -> Offspring:
    """Merge two candidates ((id, prompt) each) into one short instruction."""
    ex_a, ex_b, ex_out = prompts.RECOMBINE_EXAMPLES[seed % len(prompts.RECOMBINE_EXAMPLES)]
    messages = [
        {"role": "system", "content": prompts.MUTATOR_SYSTEM},
        {"role": "user", "content": prompts.RECOMBINE_USER.format(a=ex_a, b=ex_b)},
        {"role": "assistant", "content": json.dumps({"instruction": ex_out})},
        {"role": "user", "content": prompts.RECOMBINE_USER.format(a=a[1], b=b[1])},
    ]
    params = SamplingParams(temperature=temperature, top_p=0.95, max_tokens=max_tokens, seed=seed)
    result = await endpoint.chat(messages, params, role="mutator")
    raw = result.choices[0].text if result.choices else ""
    cand, route = extract_instruction(raw)
    reason = _vet(cand, route, [a[1], b[1]], [ex_a, ex_b], ex_out)
    return Offspring(cand if reason is None else None, "recombine", [a[0], b[0]], reason, route, raw)
