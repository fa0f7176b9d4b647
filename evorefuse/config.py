"""The TOML configuration, validated strictly: a typo must fail loudly, not silently use a default.

Every section maps onto a dataclass; unknown keys and wrong types are reported as
`FILE:LINE: section.key: problem` (exit 2). The resolved config written into a run directory holds
only names of environment variables, never their values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from evorefuse.errors import InputError
from evorefuse.fileio import read_input
from evorefuse.models.spec import LOCAL_SPEC, ModelSpec


@dataclass
class RunSection:
    seed: int = 0
    generations: int = 5
    preset: str = "fast"                 # "fast" (cheap screens, bandit) or "paper"
    mode: str = "lineage"                # "lineage" (paper) or "population" (NSGA-II over lineages)
    max_concurrency: int = 8
    max_calls: int | None = None
    max_cost: float | None = None


@dataclass
class RolesSection:
    mutator: str = "local"
    judge: str | list[str] = "local"     # several names: majority vote
    targets: list[str] = field(default_factory=lambda: ["local"])
    responder: str = "local"
    detector: str = "auto"               # pattern | learned | judge | auto


@dataclass
class EvolutionSection:
    mutations: int | None = None         # L; None: from the preset
    recombinations: int | None = None    # N
    selection: str | None = None         # "bandit" or "uniform"
    bandit: str = "thompson"             # "thompson" or "ucb1"
    strategies: list[str] | None = None  # restrict to these names
    judge_margin: float | None = 0.05    # pass when P(harmless) >= the seed's minus this; -1: off
    near_duplicate: float = 0.95         # cosine similarity above which a candidate is a duplicate
    population_size: int | None = None   # population mode: survivors per generation
    mutator_temperature: float = 0.9
    mutator_max_tokens: int = 120
    evaluations: int | None = None       # fast: candidates scored per lineage per generation


@dataclass
class FitnessSection:
    samples: int | None = None           # K; None: from the preset
    lam: float = 0.03                    # the paper's lambda (`lambda` in the file)
    temperature: float | None = None     # target sampling; None: from the preset (paper 1.0, fast greedy)
    top_p: float = 0.995
    max_tokens: int | None = None        # None: from the preset (paper 50, fast 32)
    screen: bool | None = None           # cheap screening before full K; None: from the preset
    min_p: float = 0.001                 # detector probabilities clipped to [min_p, 1 - min_p]


@dataclass
class StrategySpec:
    name: str
    family: str
    instruction: str


@dataclass
class Config:
    run: RunSection = field(default_factory=RunSection)
    roles: RolesSection = field(default_factory=RolesSection)
    evolution: EvolutionSection = field(default_factory=EvolutionSection)
    fitness: FitnessSection = field(default_factory=FitnessSection)
    strategies: list[StrategySpec] = field(default_factory=list)
    models: dict[str, ModelSpec] = field(default_factory=dict)
    source: str = "<defaults>"

    def model(self, name: str, *, where: str = "") -> ModelSpec:
        if name == "local" and "local" not in self.models:
            return LOCAL_SPEC
        spec = self.models.get(name)
        if spec is None:
            known = ", ".join(["local", *sorted(self.models)])
            raise InputError(f"unknown model {name!r} (known: {known})", path=self.source,
                             field=where or None)
        return spec

    def judges(self) -> list[str]:
        j = self.roles.judge
        return [j] if isinstance(j, str) else list(j)

    def role_models(self) -> dict[str, list[str]]:
        return {"mutator": [self.roles.mutator], "judge": self.judges(),
                "target": list(self.roles.targets), "responder": [self.roles.responder]}

    def to_json(self) -> dict[str, Any]:
        """Resolved config for the run directory: no secrets (only env var *names*)."""
        d = dataclasses.asdict(self)
        d.pop("source")
        d["fitness"]["lambda"] = d["fitness"].pop("lam")
        return d

    def fingerprint(self) -> str:
        return hashlib.sha256(orjson.dumps(self.to_json(), option=orjson.OPT_SORT_KEYS)).hexdigest()


# --- validation ----------------------------------------------------------------------------------

_SECTIONS = {"run": RunSection, "roles": RolesSection, "evolution": EvolutionSection,
             "fitness": FitnessSection}
_RENAMED = {("fitness", "lambda"): "lam"}
_MODEL_FIELDS = {f.name for f in dataclasses.fields(ModelSpec)} - {"name"}


def _line_of(text: str, key: str, section: str | None = None) -> int | None:
    """Best-effort line number of `key = ...` (tomllib keeps no positions)."""
    lines = text.splitlines()
    start = 0
    if section:
        pat = re.compile(r"^\s*\[\[?\s*" + re.escape(section) + r"\s*\]\]?\s*$")
        for i, ln in enumerate(lines):
            if pat.match(ln):
                start = i
                break
    kp = re.compile(r"^\s*\"?" + re.escape(key) + r"\"?\s*=")
    for i in range(start, len(lines)):
        if kp.match(lines[i]):
            return i + 1
    return start + 1 if section else None


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (inner,) = typing.get_args(hint)
        return isinstance(value, list) and all(_type_ok(v, inner) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _build(cls: type, data: dict[str, Any], section: str, path: Path, text: str,
           extra: dict[str, Any] | None = None) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = dict(extra or {})
    for key, value in data.items():
        attr = _RENAMED.get((section, key), key)
        if attr not in hints or attr in kwargs:
            raise InputError(f"unknown key (allowed: {', '.join(sorted(_allowed(cls, section)))})",
                             path=path, line=_line_of(text, key, section), field=f"{section}.{key}")
        if not _type_ok(value, hints[attr]):
            raise InputError(f"expected {_type_name(hints[attr])}, got {type(value).__name__} "
                             f"{value!r}"[:200], path=path, line=_line_of(text, key, section),
                             field=f"{section}.{key}")
        kwargs[attr] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        missing = re.findall(r"'(\w+)'", str(exc))
        raise InputError("missing required key " + ", ".join(missing), path=path,
                         line=_line_of(text, section.split(".")[0]), field=section) from None


def _allowed(cls: type, section: str) -> list[str]:
    inv = {v: k for (s, k), v in _RENAMED.items() if s == section}
    return [inv.get(f.name, f.name) for f in dataclasses.fields(cls) if f.name != "name"]


_LOWER_BOUNDS = [("run", "generations", 0), ("evolution", "mutations", 0),
                 ("evolution", "recombinations", 0), ("evolution", "evaluations", 1),
                 ("fitness", "samples", 1), ("fitness", "max_tokens", 1),
                 ("fitness", "temperature", 0)]


def _check_choice(value: str, allowed: set[str], path: Path, text: str, section: str, key: str) -> None:
    if value not in allowed:
        raise InputError(f"must be one of {', '.join(sorted(allowed))}, got {value!r}", path=path,
                         line=_line_of(text, key, section), field=f"{section}.{key}")


def load_config(path: str | Path | None) -> Config:
    """Read and validate a config file; None gives the defaults (everything on `local`)."""
    if path is None:
        return Config()
    path = Path(path)
    raw = read_input(path, "a TOML file", missing="config file not found")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError("not valid UTF-8", path=path, line=line) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise InputError(f"invalid TOML: {str(exc).split(' (at')[0]}", path=path,
                         line=int(m.group(1)) if m else None) from None
    cfg = Config(source=str(path))
    for key, value in data.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise InputError("expected a table", path=path, line=_line_of(text, key), field=key)
            setattr(cfg, key, _build(_SECTIONS[key], value, key, path, text))
        elif key == "models":
            if not isinstance(value, dict):
                raise InputError("expected tables [models.NAME]", path=path, field="models")
            for name, spec in value.items():
                if not isinstance(spec, dict):
                    raise InputError("expected a table", path=path, field=f"models.{name}")
                if "model" not in spec:
                    raise InputError("missing required key `model`", path=path,
                                     line=_line_of(text, f"models.{name}"), field=f"models.{name}")
                m = _build(ModelSpec, spec, f"models.{name}", path, text, extra={"name": name})
                _check_choice(m.kind, {"openai", "local"}, path, text, f"models.{name}", "kind")
                _check_choice(m.batch_retry, {"batch", "direct"}, path, text, f"models.{name}",
                              "batch_retry")
                if m.batch and m.kind == "local":
                    raise InputError("the embedded model has no Batch API; batch = true needs an "
                                     "OpenAI-compatible endpoint", path=path,
                                     line=_line_of(text, "batch", f"models.{name}"),
                                     field=f"models.{name}.batch")
                cfg.models[name] = m
        elif key == "strategies":
            if not isinstance(value, list):
                raise InputError("expected [[strategies]] tables", path=path, field="strategies")
            for i, st in enumerate(value):
                if not isinstance(st, dict):
                    raise InputError("expected a table", path=path, field=f"strategies[{i}]")
                cfg.strategies.append(_build(StrategySpec, st, "strategies", path, text))
        else:
            raise InputError("unknown section (allowed: evolution, fitness, models, roles, run, "
                             "strategies)", path=path, line=_line_of(text, key), field=key)
    _check_choice(cfg.run.preset, {"fast", "paper"}, path, text, "run", "preset")
    _check_choice(cfg.run.mode, {"lineage", "population"}, path, text, "run", "mode")
    _check_choice(cfg.roles.detector, {"pattern", "learned", "judge", "auto"}, path, text, "roles",
                  "detector")
    _check_choice(cfg.evolution.bandit, {"thompson", "ucb1"}, path, text, "evolution", "bandit")
    for section, key, low in _LOWER_BOUNDS:
        value = getattr(getattr(cfg, section), _RENAMED.get((section, key), key))
        if value is not None and value < low:
            raise InputError(f"must be at least {low}, got {value!r}", path=path,
                             line=_line_of(text, key, section), field=f"{section}.{key}")
    if cfg.evolution.selection is not None:
        _check_choice(cfg.evolution.selection, {"bandit", "uniform"}, path, text, "evolution",
                      "selection")
    for role, names in cfg.role_models().items():
        for name in names:
            if name != "local" and name not in cfg.models:
                known = ", ".join(["local", *sorted(cfg.models)])
                raise InputError(f"unknown model {name!r} (known: {known})", path=path,
                                 line=_line_of(text, role if role != "target" else "targets",
                                               "roles"),
                                 field=f"roles.{role if role != 'target' else 'targets'}")
    return cfg
