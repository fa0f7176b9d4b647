"""Temporary alias: the prompt judge lives in `evorefuse.scoring.harm` (judging the harm of a
prompt is a scoring job). Kept only so `evolution/engine.py` imports until the gate calls
`scoring.harm.judge.build_prompt_judge`; delete it then."""

from evorefuse.scoring.harm.judge import judge_with_endpoints as judge
from evorefuse.scoring.harm.verdict import HarmVerdict as JudgeVerdict

__all__ = ["judge", "JudgeVerdict"]
