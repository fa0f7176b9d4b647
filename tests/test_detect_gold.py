"""`evorefuse detect --gold` (metrics against the user's labels) and `--fit` (a refitted detector
file, used with `--detector learned:PATH`), end to end through the CLI, plus gold parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from evorefuse.cli import cli
from evorefuse.errors import InputError
from evorefuse.scoring.refusal.base import (
    COMPLIANCE,
    FULL_REFUSAL,
    PARTIAL_REFUSAL,
    UNKNOWN,
    Verdict,
)
from evorefuse.scoring.refusal.factory import get_detector
from evorefuse.scoring.refusal.gold import REFUSAL, GoldValueError, parse_gold, score
from evorefuse.scoring.refusal.learned import FILE_KIND, LearnedModel
from evorefuse.scoring.refusal.refit import RefitResult

# An assistant with its own manners (written for these tests): it refuses in the third person.
BOLT_REFUSALS = [
    "Bolt can't go there. Try asking about something else!",
    "Bolt won't write that one, sorry. Bolt keeps things friendly.",
    "That's a no from Bolt. Let's pick another topic.",
    "Bolt is not able to share instructions like that.",
    "Nope, Bolt doesn't do pranks that could hurt people.",
    "Bolt has to pass on this request.",
    "Bolt can't help you get into someone else's account.",
    "Sorry, that's off-limits for Bolt.",
]
BOLT_ANSWERS = [
    ("Sure! Bolt says: preheat the oven to 200 degrees, slice the potatoes, toss them in oil and "
    "roast for 35 minutes."),
    "The Treaty of Westphalia was signed in 1648 and ended the Thirty Years' War.",
    "To reset a router, hold the reset button for ten seconds until the lights blink.",
    "Bolt recommends three books: Dune, Neuromancer and The Left Hand of Darkness.",
    ("A haiku from Bolt:\nsoft rain on the roof\nthe kettle starts its whistle\n"
    "the cat stretches twice"),
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "Use `git stash` to set your changes aside, then `git stash pop` to bring them back.",
    "The capital of Australia is Canberra, not Sydney.",
    "Bolt's tip: water succulents only when the soil is completely dry.",
    "Marathons are 42.195 kilometres long.",
    "To kill a stuck process on Linux, find its PID with `ps` and run `kill PID`.",
    "Bolt thinks a good first guitar is a used acoustic with a low action.",
]
GOLD_SPELLINGS = ["refusal", "Refused", "TRUE", "1", "yes", "2_full_refusal", "3_partial_refusal",
                  "Full refusal"]
ANSWER_SPELLINGS = ["compliance", "complied", "false", "0", "No", "1_full_compliance"]


def _bolt_rows() -> list[dict]:
    rows = []
    for i, r in enumerate(BOLT_REFUSALS):
        rows.append({"id": f"r{i}", "prompt": f"question {i}", "completion": r,
                     "gold": GOLD_SPELLINGS[i % len(GOLD_SPELLINGS)]})
    for i, r in enumerate(BOLT_ANSWERS):
        rows.append({"id": f"a{i}", "prompt": f"question {i}", "completion": r,
                     "gold": ANSWER_SPELLINGS[i % len(ANSWER_SPELLINGS)]})
    rows[3]["gold"] = True          # JSON booleans and numbers are accepted too
    rows[-1]["gold"] = 0
    return rows


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["detect", *args])


def _one_line_error(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [x for x in result.output.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


# --- gold values --------------------------------------------------------------------------------

def test_parse_gold_synonyms_and_rejections():
    # "1.0"/"0.0": a 0/1 column exported by pandas or a spreadsheet once it has a gap
    for v in ("refusal", "REFUSED", " true ", "1", "1.0", "yes", "rejected", 1, 1.0, True):
        assert parse_gold(v) == REFUSAL, v
    for v in ("compliance", "Complied", "false", "0", "0.0", "no", 0, 0.0, False,
              "1_full_compliance", "full compliance"):
        assert parse_gold(v) == COMPLIANCE, v
    assert parse_gold("2_full_refusal") == parse_gold("Full_Refusal") == FULL_REFUSAL
    assert parse_gold("partial refusal") == PARTIAL_REFUSAL
    for bad, msg in (("", "empty"), (None, "empty"), ("maybe", "unknown gold value 'maybe'"),
                     ("2", "ambiguous"), ("2.0", "unknown gold value"), (0.5, "not a label"),
                     ({"a": 1}, "not a label"),
                     ("contradicted", "keep only the complied and rejected rows"),
                     ("Disclaimed", "ChatGPT refusal study")):
        with pytest.raises(GoldValueError, match=msg):
            parse_gold(bad)


def test_score_counts_by_hand():
    gold = [REFUSAL, FULL_REFUSAL, PARTIAL_REFUSAL, COMPLIANCE, COMPLIANCE]
    verdicts = [Verdict(0.9, FULL_REFUSAL), Verdict(0.2, COMPLIANCE), Verdict(0.8, PARTIAL_REFUSAL),
                Verdict(0.5, UNKNOWN), Verdict(0.1, COMPLIANCE)]
    rep = score(gold, verdicts)
    # refusal predicted for rows 0, 2, 3 (unknown counts as refusal); gold refusal rows 0, 1, 2
    assert rep.n == 5 and rep.accuracy == pytest.approx(3 / 5)
    assert rep.precision == pytest.approx(2 / 3) and rep.recall == pytest.approx(2 / 3)
    assert rep.f1 == pytest.approx(2 / 3)
    assert rep.brier == pytest.approx((0.01 + 0.64 + 0.04 + 0.25 + 0.01) / 5)
    assert rep.n3 == 4 and rep.accuracy3 == pytest.approx(2 / 4)  # rows 1-4 have 3-way gold
    assert rep.unknown == 1
    assert rep.confusion[COMPLIANCE][UNKNOWN] == 1 and rep.confusion[REFUSAL][FULL_REFUSAL] == 1


# --- detect --gold --------------------------------------------------------------------------------

def test_gold_report_matches_what_the_out_rows_say(tmp_path):
    src = _write(tmp_path / "bolt.jsonl", _bolt_rows())
    out = tmp_path / "labelled.jsonl"
    res = _invoke(str(src), "--gold", "gold", "--out", str(out))
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(BOLT_REFUSALS) + len(BOLT_ANSWERS)
    assert all(isinstance(r["gold_refusal"], bool) for r in rows)
    assert rows[0]["gold_label"] is None and rows[5]["gold_label"] == FULL_REFUSAL
    recomputed = sum(r["refusal"] == r["gold_refusal"] for r in rows) / len(rows)
    printed = float(next(x for x in res.stdout.splitlines() if x.startswith("accuracy")).split()[1])
    assert printed == pytest.approx(round(recomputed, 3))
    assert "gold \\ predicted" in res.stdout and "F1" in res.stdout and "Brier" in res.stdout
    assert res.stdout.count("\n") >= 8  # one line per metric plus the table, no JSONL rows

    as_json = json.loads(_invoke(str(src), "--gold", "gold", "--json").stdout)
    assert as_json["accuracy"] == pytest.approx(recomputed)
    lo, hi = as_json["accuracy_interval"]
    assert 0.0 <= lo < recomputed <= hi <= 1.0 and hi - lo > 0.05  # a dozen rows: a wide interval
    assert f"95% interval {lo:.3f}-{hi:.3f}" in res.stdout
    assert as_json["n"] == len(rows) and set(as_json["confusion"]) <= {
        COMPLIANCE, FULL_REFUSAL, PARTIAL_REFUSAL, REFUSAL}


@pytest.mark.parametrize("value,expected", [
    ("maybe", ":3: gold: unknown gold value 'maybe'"),
    ("", ":3: gold: empty gold value"),
    (None, ":3: gold: empty gold value"),
    ("3", ":3: gold: unknown gold value '3'"),
])
def test_bad_gold_value_names_line_and_value(tmp_path, value, expected):
    rows = _bolt_rows()[:4]
    rows[2]["gold"] = value
    src = _write(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    line = _one_line_error(_invoke(str(src), "--gold", "gold", "--out", str(out)))
    assert expected in line and str(src) in line
    assert not out.exists()


def test_missing_gold_column_lists_columns_and_fit_needs_gold(tmp_path):
    src = _write(tmp_path / "in.jsonl", _bolt_rows()[:3])
    line = _one_line_error(_invoke(str(src), "--gold", "label"))
    assert "unknown column 'label'" in line and "id, prompt, completion, gold" in line
    line = _one_line_error(_invoke(str(src), "--fit", str(tmp_path / "d.json")))
    assert "--fit needs --gold" in line
    assert not (tmp_path / "d.json").exists()


def test_gold_column_absent_from_some_rows(tmp_path):
    rows = _bolt_rows()[:3]
    del rows[1]["gold"]
    src = _write(tmp_path / "in.jsonl", rows)
    assert ":2: gold: empty gold value" in _one_line_error(_invoke(str(src), "--gold", "gold"))


# --- detect --gold --fit, learned:PATH ----------------------------------------------------------

def test_fit_writes_a_detector_file_that_learned_path_uses(tmp_path):
    src = _write(tmp_path / "bolt.jsonl", _bolt_rows())
    fitted = tmp_path / "bolt-detector.json"
    res = _invoke(str(src), "--gold", "gold", "--fit", str(fitted), "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    fit = report["fit"]
    n = len(BOLT_REFUSALS) + len(BOLT_ANSWERS)
    assert fit["n"] == n and fit["path"] == str(fitted) and fit["folds"] >= 2
    # "before" is the shipped detector out of fold: it never saw these rows, so it is its plain
    # accuracy on them, the figure the report itself prints
    assert fit["accuracy_before"] == pytest.approx(report["accuracy"])
    assert 0.0 <= fit["accuracy_after"] <= 1.0
    # the paired counts are the change: after - before = (fixed - broken) / n
    assert fit["accuracy_after"] - fit["accuracy_before"] == pytest.approx(
        (fit["fixed"] - fit["broken"]) / n)
    data = json.loads(fitted.read_text(encoding="utf-8"))
    assert (data["meta"]["fixed"], data["meta"]["broken"]) == (fit["fixed"], fit["broken"])
    assert data["kind"] == FILE_KIND and data["meta"]["user_responses"] == n
    model = LearnedModel.from_json(data, str(fitted))
    assert model.full is None  # torch-free: runs as auto runs

    det = get_detector(f"learned:{fitted}")
    assert det.model.lite.coef.tolist() != get_detector("auto").model.lite.coef.tolist()
    res2 = _invoke(str(src), "--detector", f"learned:{fitted}", "--gold", "gold", "--json")
    assert res2.exit_code == 0, res2.output
    assert json.loads(res2.stdout)["n"] == n
    assert f"learned:{fitted}" in res2.stderr


def test_fit_needs_both_classes(tmp_path):
    rows = [r for r in _bolt_rows() if r["id"].startswith("a")]
    rows[0]["gold"] = "refusal"
    src = _write(tmp_path / "in.jsonl", rows)
    line = _one_line_error(_invoke(str(src), "--gold", "gold", "--fit", str(tmp_path / "d.json")))
    assert "at least 2 refusals and 2 compliances" in line
    assert not (tmp_path / "d.json").exists()


def test_fit_never_replaces_a_file_that_is_not_a_detector_file(tmp_path):
    """`--fit labels.jsonl` typed for `--gold` must not destroy the user's data; an empty file or
    an earlier detector file (a refit of a refit) may be replaced."""
    src = _write(tmp_path / "bolt.jsonl", _bolt_rows())
    other = _write(tmp_path / "other.jsonl", _bolt_rows()[:3])
    before = other.read_bytes()
    line = _one_line_error(_invoke(str(src), "--gold", "gold", "--fit", str(other)))
    assert "not a detector file" in line and "refusing to replace it" in line
    assert str(other) in line and other.read_bytes() == before
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    assert _invoke(str(src), "--gold", "gold", "--fit", str(empty)).exit_code == 0
    assert json.loads(empty.read_text(encoding="utf-8"))["kind"] == FILE_KIND
    assert _invoke(str(src), "--gold", "gold", "--fit", str(empty)).exit_code == 0


def test_learned_path_pointing_nowhere_or_at_another_file(tmp_path):
    src = _write(tmp_path / "in.jsonl", _bolt_rows()[:2])
    missing = tmp_path / "nope.json"
    assert "detector file not found" in _one_line_error(
        _invoke(str(src), "--detector", f"learned:{missing}"))
    other = tmp_path / "other.json"
    other.write_text('{"features": [1, 2], "lite": {}}', encoding="utf-8")
    line = _one_line_error(_invoke(str(src), "--detector", f"learned:{other}"))
    assert "not an evorefuse refusal-detector file" in line and str(other) in line
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\x00\x01 not json")
    assert "not a detector file" in _one_line_error(
        _invoke(str(src), "--detector", f"learned:{garbage}"))
    with pytest.raises(InputError, match="detector file not found"):
        get_detector(f"learned:{missing}")


def test_stale_detector_file_is_rejected(tmp_path):
    from importlib import resources

    data = json.loads((resources.files("evorefuse.scoring.refusal") / "model.json")
                      .read_text(encoding="utf-8"))
    data["features"] = data["features"][:-1]
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(InputError, match="another version of the detector"):
        get_detector(f"learned:{stale}")


# --- roles.detector = "learned:PATH" in the config --------------------------------------------

def test_config_learned_path_is_resolved_against_the_config_and_used(tmp_path):
    src = _write(tmp_path / "bolt.jsonl", _bolt_rows())
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    fitted = conf_dir / "bolt-detector.json"
    assert _invoke(str(src), "--gold", "gold", "--fit", str(fitted)).exit_code == 0
    cfg_file = conf_dir / "evorefuse.toml"
    cfg_file.write_text('[roles]\ndetector = "learned:bolt-detector.json"\n', encoding="utf-8")

    from evorefuse.config import load_config
    from evorefuse.session import Session

    cfg = load_config(cfg_file)
    # relative to the config file, made absolute so a run's saved config still finds it
    assert cfg.roles.detector == f"learned:{fitted.resolve()}"
    det = Session.standalone(cfg, models=[], cache_path=None, run_id="t").detector
    assert det.model.meta["refit_on"] == "bolt.jsonl"
    res = _invoke(str(src), "-c", str(cfg_file), "--gold", "gold", "--json")
    assert res.exit_code == 0, res.output
    assert f"learned:{fitted.resolve()}" in res.stderr


@pytest.mark.parametrize("value, expected", [
    ("learned:missing.json", "detector file not found"),
    ("learned:evorefuse.toml", "not a detector file"),
    ("regex", "learned:PATH, got 'regex'"),
])
def test_config_bad_detector_names_file_line_and_field(tmp_path, value, expected):
    cfg_file = tmp_path / "evorefuse.toml"
    cfg_file.write_text(f'[run]\n\n[roles]\ntargets = ["local"]\ndetector = "{value}"\n',
                        encoding="utf-8")
    src = _write(tmp_path / "bolt.jsonl", _bolt_rows())
    line = _one_line_error(_invoke(str(src), "-c", str(cfg_file)))
    assert f"{cfg_file}:5: roles.detector: " in line and expected in line, line


def test_evaluate_takes_learned_path_and_rejects_a_missing_file_before_any_work(tmp_path):
    data = _write(tmp_path / "prompts.jsonl", [{"prompt": "How do I kill a Python process?"}])
    missing = tmp_path / "nowhere.json"
    res = CliRunner().invoke(cli, ["evaluate", str(data), "--no-embeddings",
                                   "--detector", f"learned:{missing}"])
    line = _one_line_error(res)
    assert "--detector" in line and "detector file not found" in line and str(missing) in line
    res = CliRunner().invoke(cli, ["evaluate", str(data), "--no-embeddings", "--detector", "regex"])
    assert "unknown detector 'regex'" in _one_line_error(res)


def test_a_refit_that_breaks_more_than_it_fixes_says_so():
    # same accuracy can hide a change: the report names the paired counts and warns on a loss
    worse = RefitResult({}, 200, 2000, 5, 10.0, 0.90, 0.88, fixed=3, broken=7)
    assert worse.worse and "3 responses fixed, 7 broken" in worse.describe()
    assert "worse than the detector in use" in worse.describe()
    better = RefitResult({}, 200, 2000, 5, 10.0, 0.88, 0.90, fixed=7, broken=3)
    assert not better.worse and "worse" not in better.describe()
