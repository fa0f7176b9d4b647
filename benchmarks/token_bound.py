"""Does the budget's prompt-token bound hold for real tokenizers, and did the old estimate?

`pricing.prompt_token_bound` (UTF-8 bytes of every message plus a template allowance) is what the
budget reserves for a prompt. This counts, for every prompt and response text at hand, the tokens
of the real chat-templated request under the tokenizers installed here, and compares:

- SmolLM2-135M (byte-level BPE, GPT-2 family, the embedded model): the whole request through its
  own chat template, which inserts a default system prompt when none is given; special tokens
  written in the text are parsed as special, as servers do;
- all-MiniLM-L6-v2 (WordPiece): the text alone, plus its two special tokens;
- the estimate the budget used before (characters / 3 + 16), which a provider billing more than
  that pushed 14.6% over a budget.

Texts: the reference sets (XSTest prompts, EvoRefuse-Test, ChatGPT prompts and responses), the
project's multilingual refusal examples (16 languages), and the same texts wrapped in emoji
and CJK, each alone as a user message and as system + user. Reference data is read from
`../shared/reference/` and skipped with a message when absent.

    .venv/bin/python benchmarks/token_bound.py [--write]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.results import replace_section  # noqa: E402
from evorefuse.models.pricing import prompt_token_bound  # noqa: E402
from evorefuse.paths import REFERENCE_DIR  # noqa: E402

REFERENCE = REFERENCE_DIR


def texts() -> Iterator[tuple[str, str]]:
    """(source, text) pairs."""
    if REFERENCE.exists():
        with open(REFERENCE / "xstest_prompts.csv", newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                yield "xstest", row["prompt"]
        for line in open(REFERENCE / "evo_test.jsonl", encoding="utf-8"):
            yield "evo_test", json.loads(line)["instruction"]
        for line in open(REFERENCE / "chatgpt_refusals_dev.jsonl", encoding="utf-8"):
            row = json.loads(line)
            yield "chatgpt prompts", row["prompt"]
            yield "chatgpt responses", row["response"]
    else:
        print(f"reference data not found at {REFERENCE}; measuring project texts only")
    data = ROOT / "evorefuse" / "scoring" / "refusal" / "train_data" / "written_multilingual.jsonl"
    for line in open(data, encoding="utf-8"):
        yield "multilingual (16 languages)", json.loads(line)["response"]
    for line in open(data, encoding="utf-8"):
        text = json.loads(line)["response"]
        yield "emoji + CJK + specials", f"🔥💣 {text} 你好世界 <|im_end|>\n<|im_start|>assistant"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = ap.parse_args()
    from tokenizers import Tokenizer

    from evorefuse.models.local import _Engine
    from evorefuse.scoring.embeddings import model_path

    engine = _Engine.get()
    wordpiece = Tokenizer.from_file(str(Path(model_path()) / "tokenizer.json"))
    wordpiece.no_truncation()
    wordpiece.no_padding()
    rows: dict[str, dict[str, list[float]]] = {}
    for source, text in texts():
        if not text.strip():
            continue
        r = rows.setdefault(source, {"bpe": [], "wp": [], "old_under": [], "bpe_over": []})
        for messages in ([{"role": "user", "content": text}],
                         [{"role": "system", "content": text}, {"role": "user", "content": text}]):
            tokens = len(engine.prompt_tokens(messages))
            bound = prompt_token_bound(messages)
            old = sum(len(m["content"]) for m in messages) // 3 + 16
            r["bpe"].append(tokens / bound)
            r["bpe_over"].append(float(tokens > bound))
            r["old_under"].append(float(old < tokens))
        wp = len(wordpiece.encode(text).ids)
        r["wp"].append(wp / prompt_token_bound([{"role": "user", "content": text}]))
    table = ["| texts | requests | SmolLM2 BPE tokens / bound: max | median | over the bound | "
             "old estimate below the real count | MiniLM WordPiece tokens / bound: max |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for source, r in rows.items():
        table.append(f"| {source} | {len(r['bpe'])} | {max(r['bpe']):.3f} | "
                     f"{statistics.median(r['bpe']):.3f} | {int(sum(r['bpe_over']))} | "
                     f"{100 * statistics.mean(r['old_under']):.1f}% | {max(r['wp']):.3f} |")
    worst = max(max(r["bpe"]) for r in rows.values())
    body = "\n".join([
        "Command: `.venv/bin/python benchmarks/token_bound.py --write`.",
        f"Date: {datetime.date.today().isoformat()}.",
        "",
        "The budget reserves `prompt_token_bound(messages)` for a prompt: UTF-8 bytes of every "
        "message's content and role, plus 8 tokens per message and 64 per request for the chat "
        "template (role markers, reply priming, a default system prompt the template inserts). "
        "Each text is measured alone as a user message and as system + user; BPE counts are "
        "of the whole templated request, special tokens in the text parsed as special.",
        "",
        *table,
        "",
        f"Largest tokens / bound seen: {worst:.3f} ({'the bound held' if worst <= 1 else 'BOUND EXCEEDED'}"
        " on every request). The old estimate (characters / 3 + 16) was below the real count "
        "wherever the share above is not 0%; a provider billing like that overshoots a budget "
        "that trusted it. A provider can still bill more than any bound on the text (hidden "
        "system prompts, tools, reasoning tokens): the endpoint then scales its later "
        "reservations by the largest billed / reserved ratio it has seen.",
    ])
    print(body)
    if args.write:
        replace_section("token_bound", body)


if __name__ == "__main__":
    main()
