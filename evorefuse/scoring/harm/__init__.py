"""Judging the harm of prompts: the benign gate's verdicts (README "Judging prompts").

`verdict` (the verdict and the gate's contract), `classifier` (the offline classifier, the default
judge), `llm` (any endpoint as a judge), `judge` (voting and tiered modes, `build_prompt_judge`),
`gold` (scoring verdicts against human labels), `train` (refits `model.json`).
"""
