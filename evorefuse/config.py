"""The TOML configuration, validated strictly: a typo must fail loudly, not silently use a default.

Every section is a pydantic model (`extra="forbid"`, strict types, bounds); the one decoder
(`Config.from_data`) reads a TOML file and a run's saved `config.json` alike, and every problem is
reported as `FILE:LINE: section.key: problem` (exit 2). The resolved config written into a run
directory holds only names of environment variables, never their values.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from evorefuse.errors import InputError
from evorefuse.fileio import read_input
from evorefuse.models.spec import BUILTIN_MODELS, ModelSpec, builtin_model
from evorefuse.scoring.harm.names import Mode, judge_model_name, llm_judge_names
from evorefuse.scoring.refusal.factory import (
    DEFAULT_BAND,
    DETECTOR_NAMES,
    LEARNED_FILE_PREFIX,
    can_tier,
    canonical_name,
    detector_file,
    is_detector_name,
    load_detector_file,
)

PresetName = Literal["fast", "paper"]
ModeName = Literal["lineage", "population"]
BanditName = Literal["thompson", "ucb1"]
SelectionName = Literal["bandit", "uniform"]
PRESETS: tuple[str, ...] = get_args(PresetName)
MODES: tuple[str, ...] = get_args(ModeName)
BANDITS: tuple[str, ...] = get_args(BanditName)

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"

# Keys that may differ on resume without changing what the run computes.
RESUME_FREE_KEYS = frozenset({"run.generations", "run.max_calls", "run.max_cost",
                              "run.max_concurrency"})


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True,
                              populate_by_name=True)


class RunSection(_Section):
    seed: int = 0
    generations: int = Field(5, ge=0)
    preset: PresetName = "fast"          # "fast" (greedy, budgeted, bandit) or "paper"
    mode: ModeName = "lineage"           # "lineage" (paper) or "population" (NSGA-II over lineages)
    max_concurrency: int = Field(8, ge=1)
    max_calls: int | None = Field(None, ge=1)
    max_cost: float | None = Field(None, gt=0)


class RolesSection(_Section):
    mutator: str = "local"
    judge: str | list[str] = "local"     # `local`/`classifier` (the offline classifier),
                                         # `local-llm`, or models; several: they vote
    judge_mode: Mode = "auto"            # auto | classifier | llm | tiered
    targets: list[str] = Field(default_factory=lambda: ["local"])
    responder: str = "local"
    detector: str = "auto"               # one of DETECTOR_NAMES, or learned:PATH (a detector
                                         # file from `detect --gold --fit`, relative to the config)
    detector_judge: str | None = None    # a model that re-judges the responses `auto` (or
                                         # learned:PATH) is unsure of: tiered detection
    detector_band: list[float] = Field(default_factory=lambda: list(DEFAULT_BAND), min_length=2,
                                      max_length=2)  # p_refusal range sent to detector_judge

    @field_validator("detector_band")
    @classmethod
    def _band_in_order(cls, value: list[float]) -> list[float]:
        lo, hi = value
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"must satisfy 0 <= low <= high <= 1, got [{lo}, {hi}]")
        return value


class EvolutionSection(_Section):
    mutations: int | None = Field(None, ge=0)       # L; None: from the preset
    recombinations: int | None = Field(None, ge=0)  # N
    selection: SelectionName | None = None
    bandit: BanditName = "thompson"
    strategies: list[str] | None = None  # restrict to these names
    judge_margin: float | None = None    # seed calibration of `controversial` verdicts: off
    near_duplicate: float = Field(0.945, gt=0, le=1)  # cosine similarity (MiniLM, int8) above
                                         # which a candidate is a duplicate (README, "Files")
    population_size: int | None = Field(None, ge=1)  # population mode: survivors per generation
    mutator_temperature: float = Field(0.9, ge=0)
    mutator_max_tokens: int = Field(120, ge=1)
    evaluations: int | None = Field(None, ge=1)     # fast: candidates scored per lineage/generation


class FitnessSection(_Section):
    samples: int | None = Field(None, ge=1)          # K; None: from the preset
    lam: float = Field(0.03, alias="lambda")         # the paper's lambda
    temperature: float | None = Field(None, ge=0)    # None: from the preset (paper 1.0, fast greedy)
    top_p: float = 0.995
    max_tokens: int | None = Field(None, ge=1)       # None: from the preset (paper 50, fast 32)
    screen: bool | None = None           # cheap screening before full K; None: from the preset
    min_p: float = 0.001                 # detector probabilities clipped to [min_p, 1 - min_p]


class StrategySpec(_Section):
    name: str
    family: str
    instruction: str


class Config(BaseModel):
    """The whole configuration. `source` (not part of the config) names the file it came from."""

    model_config = ConfigDict(extra="forbid", strict=True)

    run: RunSection = Field(default_factory=RunSection)
    roles: RolesSection = Field(default_factory=RolesSection)
    evolution: EvolutionSection = Field(default_factory=EvolutionSection)
    fitness: FitnessSection = Field(default_factory=FitnessSection)
    strategies: list[StrategySpec] = Field(default_factory=list)
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    _source: str = PrivateAttr("<defaults>")

    @property
    def source(self) -> str:
        return self._source

    # --- lookups ---------------------------------------------------------------------------------
    def model(self, name: str, *, where: str = "") -> ModelSpec:
        spec = self.models.get(name) or builtin_model(name)
        if spec is None:
            raise InputError(f"unknown model {name!r} (known: {self.known_models()})",
                             path=self.source, field=where or None)
        return spec

    def known_models(self) -> str:
        return ", ".join([*BUILTIN_MODELS, *sorted(set(self.models) - set(BUILTIN_MODELS)),
                          "openai:MODEL"])

    def judges(self) -> list[str]:
        j = self.roles.judge
        return [j] if isinstance(j, str) else list(j)

    def role_models(self) -> dict[str, list[str]]:
        """The models each role calls (the judge role's offline classifier calls none)."""
        judges = [judge_model_name(n) for n in llm_judge_names(self.judges())]
        roles = {"mutator": [self.roles.mutator], "judge": list(dict.fromkeys(judges)),
                 "target": list(self.roles.targets), "responder": [self.roles.responder]}
        if self.roles.detector_judge is not None:
            roles["detector_judge"] = [self.roles.detector_judge]
        return roles

    def detector_judge_model(self) -> str | None:
        """The model the refusal detector calls: `detector_judge` (tiered), the first judge
        model (or `local`) for the `judge` detector, None for detectors that call nothing."""
        if self.roles.detector.strip().lower() == "judge":
            return next(iter(self.role_models()["judge"]), "local")
        return self.roles.detector_judge

    def model_names(self) -> list[str]:
        """Every model name some role uses, once, sorted."""
        return sorted({n for names in self.role_models().values() for n in names})

    # --- serialisation ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Resolved config for the run directory: no secrets (only env var *names*)."""
        return self.model_dump(mode="json", by_alias=True)

    def fingerprint(self) -> str:
        return _sha256(self.to_json())

    def computation_json(self) -> dict[str, Any]:
        """The settings that decide what a run computes: all but those a resume may change."""
        d = self.to_json()
        for key in RESUME_FREE_KEYS:
            section, name = key.split(".")
            d[section].pop(name, None)
        return d

    def computation_hash(self) -> str:
        return _sha256(self.computation_json())

    # --- changes the command line may make ---------------------------------------------------------
    def with_run_limits(self, *, generations: int | None = None, jobs: int | None = None,
                        max_calls: int | None = None, max_cost: float | None = None) -> Config:
        """The settings that may change between a run and its resume (they change how far and how
        fast it goes, never what it computes)."""
        run = self.run.model_copy(update={k: v for k, v in (
            ("generations", generations), ("max_concurrency", jobs), ("max_calls", max_calls),
            ("max_cost", max_cost)) if v is not None})
        return self._copy_with(run=run)

    def with_overrides(self, *, targets: tuple[str, ...] = (), mutator: str | None = None,
                       judge: str | None = None, seed: int | None = None,
                       preset: str | None = None) -> Config:
        """Command-line choices of models and run settings; every named model must exist."""
        roles = self.roles.model_copy(update={k: v for k, v in (
            ("targets", list(targets) or None), ("mutator", mutator), ("judge", judge))
            if v is not None})
        run = self.run.model_copy(update={k: v for k, v in (("seed", seed), ("preset", preset))
                                          if v is not None})
        cfg = self._copy_with(run=run, roles=roles)
        for role, names in cfg.role_models().items():
            for n in names:
                cfg.model(n, where=f"--{role}")
        return cfg

    def resolved(self) -> Config:
        """The config as a new run records it: every model a role uses gets a table of its own
        (so `openai:MODEL` is written down), and a hosted model without `base_url` gets the one
        it will really use (OPENAI_BASE_URL, else OpenAI's), so resuming it later reaches the same
        server whatever the environment says then. Key *values* are never recorded."""
        models = dict(self.models)
        for name in self.model_names():
            spec = self.model(name)
            if spec.kind != "local" and spec.base_url is None:
                spec = spec.model_copy(update={"base_url": os.environ.get("OPENAI_BASE_URL")
                                               or DEFAULT_OPENAI_BASE_URL})
            if spec.kind != "local" or name in self.models:
                models[name] = spec
        return self._copy_with(models=models)

    def _copy_with(self, **update: Any) -> Config:
        cfg = self.model_copy(update=update)
        cfg._source = self._source
        return cfg

    # --- decoding ----------------------------------------------------------------------------------
    @classmethod
    def from_data(cls, data: Any, *, source: str, text: str | None = None) -> Config:
        """Validate decoded TOML or a run's saved JSON; problems raise InputError naming the key
        (and, given the file's `text`, its line). A model's `system_prompt_file` is read here
        (relative to the config file) and kept as `system_prompt` text, so a run's saved config
        carries the very prompt it ran with."""
        where = _Locator(source, text)
        if not isinstance(data, dict):
            raise InputError("expected a table of sections", path=source)
        models = data.get("models")
        if isinstance(models, dict):
            # The table's name is the model's name; a saved config already carries it.
            data = {**data, "models": {n: {**m, "name": n} if isinstance(m, dict) else m
                                       for n, m in models.items()}}
        try:
            cfg = cls.model_validate(data)
        except ValidationError as exc:
            raise where.error(exc.errors()[0]) from None
        cfg._source = source
        cfg._check_references(where)
        cfg.roles.detector = _with_detector_file(cfg.roles.detector, Path(source).parent, where)
        cfg.models = {n: _with_prompt_file(m, Path(source).parent, where)
                      for n, m in cfg.models.items()}
        return cfg

    def _check_references(self, where: _Locator) -> None:
        """What a schema cannot say: names that must refer to something that exists."""
        if not is_detector_name(self.roles.detector):
            raise where.problem(("roles", "detector"), f"must be one of "
                                f"{', '.join(DETECTOR_NAMES)} or learned:PATH, "
                                f"got {self.roles.detector!r}")
        if self.roles.detector_judge is not None and not can_tier(self.roles.detector):
            raise where.problem(("roles", "detector_judge"), "re-judges what `auto` or a "
                                f"learned:PATH detector is unsure of; detector is "
                                f"{self.roles.detector!r}")
        for role, names in self.role_models().items():
            key = "targets" if role == "target" else role
            for name in names:
                if name not in self.models and builtin_model(name) is None:
                    raise where.problem(("roles", key), f"unknown model {name!r} "
                                        f"(known: {self.known_models()})")


def _with_prompt_file(spec: ModelSpec, base: Path, where: _Locator) -> ModelSpec:
    """The spec with its system prompt file read into `system_prompt`."""
    if spec.system_prompt is not None and spec.system_prompt_file is not None:
        raise where.problem(("models", spec.name, "system_prompt_file"),
                            "give system_prompt or system_prompt_file, not both")
    if spec.system_prompt is not None and not spec.system_prompt.strip():
        raise where.problem(("models", spec.name, "system_prompt"), "is empty")
    if spec.system_prompt_file is None:
        return spec
    path = base / Path(spec.system_prompt_file).expanduser()
    field = f"models.{spec.name}.system_prompt_file"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = "not found" if isinstance(exc, FileNotFoundError) else f"cannot read ({exc.strerror})"
        raise InputError(f"{field}: system prompt file {reason}", path=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{field}: not valid UTF-8", path=path,
                         line=raw[: exc.start].count(b"\n") + 1) from None
    if not text.strip():
        raise InputError(f"{field}: the system prompt file is empty", path=path)
    return spec.model_copy(update={"system_prompt": text.strip(), "system_prompt_file": None})


def _with_detector_file(name: str, base: Path, where: _Locator) -> str:
    """`learned:PATH` with PATH made absolute (relative to the config file, so a run's saved
    config still finds it) and checked to be a detector file; other names as they are."""
    file = detector_file(name)
    if file is None:
        return canonical_name(name)
    path = (base / file.expanduser()).resolve()
    try:
        load_detector_file(path)
    except InputError as exc:
        raise where.problem(("roles", "detector"), exc.message) from None
    return LEARNED_FILE_PREFIX + str(path)


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
    return Config.from_data(data, source=str(path), text=text)


def config_from_run(data: Any, source: str) -> Config:
    """The config a run was started with (its `config.json`), through the same validation as a
    TOML file: a damaged or hand-edited file stops with the key at fault, never a traceback."""
    return Config.from_data(data, source=source)


def _sha256(data: Any) -> str:
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    """The first key (dotted) whose value differs between two resolved configs, ignoring the keys
    a resume may change."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            key = f"{prefix}.{k}" if prefix else k
            if key in RESUME_FREE_KEYS:
                continue
            d = first_difference(a.get(k), b.get(k), key)
            if d:
                return d
        return None
    return None if a == b else prefix


# --- error messages ------------------------------------------------------------------------------

_SECTION_NAMES = ("evolution", "fitness", "models", "roles", "run", "strategies")
_TYPE_WORDS = {"int": "int", "float": "float", "string": "str", "bool": "bool", "list": "list",
               "dict": "table", "model": "table", "none": "nothing"}


class _Locator:
    """Turns a validation problem into `FILE:LINE: section.key: problem` (tomllib keeps no
    positions, so the line is found by searching the text for the key within its section)."""

    def __init__(self, source: str, text: str | None) -> None:
        self.source = source
        self.lines = text.splitlines() if text is not None else None

    def error(self, err: dict[str, Any]) -> InputError:
        loc = tuple(err["loc"])
        kind, value = err["type"], err.get("input")
        if kind == "extra_forbidden":
            if len(loc) == 1:
                return self.problem(loc, "unknown section (allowed: "
                                    f"{', '.join(_SECTION_NAMES)})")
            return self.problem(loc, f"unknown key (allowed: {', '.join(_allowed(loc))})")
        if kind == "missing":
            return self.problem(loc[:-1], f"missing required key `{loc[-1]}`")
        if kind.endswith("_type"):
            want = _TYPE_WORDS.get(kind[: -len("_type")], kind[: -len("_type")])
            return self.problem(loc, f"expected {want}, got {type(value).__name__} {value!r}"[:200])
        if kind == "literal_error":
            allowed = err.get("ctx", {}).get("expected", "")
            return self.problem(loc, f"must be one of {allowed.replace(' or ', ', ')}, "
                                f"got {value!r}")
        if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            bound = next(iter(err.get("ctx", {}).values()), "")
            word = {"greater_than_equal": "at least", "greater_than": "more than",
                    "less_than_equal": "at most", "less_than": "less than"}[kind]
            return self.problem(loc, f"must be {word} {bound}, got {value!r}")
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        return self.problem(loc, message)

    def problem(self, loc: tuple[Any, ...], message: str) -> InputError:
        field, section, key, index = _field_of(loc)
        return InputError(message, path=self.source, line=self._line(section, key, index),
                          field=field or None)

    def _line(self, section: str | None, key: str | None, index: int) -> int | None:
        if self.lines is None:
            return None
        start = 0
        if section:
            pat = re.compile(r"^\s*\[\[?\s*" + re.escape(section) + r"\s*\]\]?\s*$")
            hits = [i for i, ln in enumerate(self.lines) if pat.match(ln)]
            if not hits:
                return None
            start = hits[min(index, len(hits) - 1)]
        if key is None:
            return start + 1
        kp = re.compile(r"^\s*\"?" + re.escape(key) + r"\"?\s*=")
        for i in range(start + (1 if section else 0), len(self.lines)):
            if kp.match(self.lines[i]):
                return i + 1
            if section and self.lines[i].lstrip().startswith("["):
                break
        return start + 1 if section else None


def _field_of(loc: tuple[Any, ...]) -> tuple[str, str | None, str | None, int]:
    """(dotted field, TOML section header, key, index of a repeated [[table]]) of a pydantic loc.

    Locations end in union or list details (`('roles', 'judge', 'str')`, `('roles', 'targets', 0)`)
    that name no key, so only the section and the key are kept."""
    if not loc:
        return "", None, None, 0
    head = str(loc[0])
    if head == "models" and len(loc) >= 2:
        section = f"models.{loc[1]}"
        key = str(loc[2]) if len(loc) >= 3 else None
        return (f"{section}.{key}" if key else section), section, key, 0
    if head == "strategies" and len(loc) >= 2:
        key = str(loc[2]) if len(loc) >= 3 else None
        index = loc[1] if isinstance(loc[1], int) else 0
        return (f"strategies.{key}" if key else "strategies"), "strategies", key, index
    if len(loc) == 1:
        return head, head, None, 0
    return f"{head}.{loc[1]}", head, str(loc[1]), 0


def _allowed(loc: tuple[Any, ...]) -> list[str]:
    head = str(loc[0])
    model: type[BaseModel] = {"run": RunSection, "roles": RolesSection,
                              "evolution": EvolutionSection, "fitness": FitnessSection,
                              "strategies": StrategySpec, "models": ModelSpec}.get(head, Config)
    names = [f.alias or n for n, f in model.model_fields.items() if n != "name" or head != "models"]
    return sorted(names)
