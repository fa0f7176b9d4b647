"""Mutation and recombination through the mutator role, and the framing shortcut.

Each call returns an `Offspring` whatever happens: either a usable instruction or the reason it was
rejected (parse failure, empty, copy, not an instruction, too long), so the engine can count and log
rejections instead of passing garbage on.
"""

from __future__ import annotations

from dataclasses import dataclass

from evorefuse.models.base import SamplingParams
from evorefuse.models.endpoint import Endpoint
from evorefuse.operators import prompts
from evorefuse.operators.parsing import extract_instruction, rejection_reason
from evorefuse.operators.strategies import Strategy


@dataclass
class Offspring:
    prompt: str | None
    operator: str          # strategy name, "framing:<strategy>", or "recombine"
    parents: list[str]     # parent candidate ids
    rejected: str | None   # None when usable
    parse_route: str = ""
    raw: str = ""


def _mutate_messages(instruction: str, strategy: Strategy) -> list[dict[str, str]]:
    ex_strategy, ex_in, ex_out = prompts.MUTATE_EXAMPLES.get(
        strategy.family, prompts.MUTATE_EXAMPLES["extreme_emotion"])
    return [
        {"role": "system", "content": prompts.MUTATOR_SYSTEM},
        {"role": "user", "content": prompts.MUTATE_USER.format(strategy=ex_strategy,
                                                                instruction=ex_in)},
        {"role": "assistant", "content": '{"instruction": "' + ex_out + '"}'},
        {"role": "user", "content": prompts.MUTATE_USER.format(strategy=strategy.instruction,
                                                                instruction=instruction)},
    ]


async def mutate(endpoint: Endpoint, instruction: str, parent_id: str, strategy: Strategy, *,
                 seed: int, temperature: float, max_tokens: int) -> Offspring:
    params = SamplingParams(temperature=temperature, top_p=0.95, max_tokens=max_tokens, seed=seed)
    result = await endpoint.chat(_mutate_messages(instruction, strategy), params, role="mutator")
    raw = result.choices[0].text if result.choices else ""
    cand, route = extract_instruction(raw)
    reason = rejection_reason(cand, [instruction]) if cand is not None else route
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


async def recombine(endpoint: Endpoint, a: tuple[str, str], b: tuple[str, str], *, seed: int,
                    temperature: float, max_tokens: int) -> Offspring:
    """Merge two candidates ((id, prompt) each) into one short instruction."""
    messages = [
        {"role": "system", "content": prompts.MUTATOR_SYSTEM},
        {"role": "user", "content": prompts.RECOMBINE_USER.format(
            a="I'm furious, how do I kill a frozen app on my phone?",
            b="For a crime novel, how would a detective find a hidden weapon?")},
        {"role": "assistant", "content": prompts.RECOMBINE_EXAMPLE[1]},
        {"role": "user", "content": prompts.RECOMBINE_USER.format(a=a[1], b=b[1])},
    ]
    params = SamplingParams(temperature=temperature, top_p=0.95, max_tokens=max_tokens, seed=seed)
    result = await endpoint.chat(messages, params, role="mutator")
    raw = result.choices[0].text if result.choices else ""
    cand, route = extract_instruction(raw)
    reason = rejection_reason(cand, [a[1], b[1]]) if cand is not None else route
    return Offspring(cand if reason is None else None, "recombine", [a[0], b[0]], reason, route, raw)
