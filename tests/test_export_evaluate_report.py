"""export / evaluate / report on one small real offline run (the embedded model in every role).

The run is made once per module: two seeds, one generation, the pattern detector, K=4.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from evorefuse.cli import cli

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = Path("/work/shared/reference/evo_test.jsonl")

CONFIG = """
[run]
max_concurrency = 2
[roles]
detector = "pattern"
[evolution]
mutations = 2
recombinations = 1
[fitness]
samples = 4
"""


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("run")
    seeds = tmp / "seeds.jsonl"
    seeds.write_text("".join((ROOT / "seeds" / "smoke.jsonl").read_text().splitlines(True)[:2]))
    cfg = tmp / "cfg.toml"
    cfg.write_text(CONFIG)
    run_dir = tmp / "r"
    res = invoke("evolve", "-c", cfg, "--seeds", seeds, "--generations", "1", "--run-dir",
                 run_dir, "-q")
    assert res.exit_code == 0, res.output
    probe = invoke("export", run_dir, "--format", "test", "-o", tmp / "probe.jsonl")
    extra = [] if probe.exit_code == 0 else ["--include-seeds"]
    if extra:
        assert "nothing to export" in probe.output
    return {"dir": run_dir, "tmp": tmp, "extra": extra, "cfg": cfg}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def loads_with_datasets(path: Path, n: int) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("json", data_files=str(path), split="train",
                               cache_dir=str(path.parent / ".hf"))
    assert len(ds) == n


# --- export: test -------------------------------------------------------------------------------

def test_export_test_jsonl(run):
    out = run["tmp"] / "test.jsonl"
    res = invoke("export", run["dir"], "--format", "test", "-o", out, *run["extra"])
    assert res.exit_code == 0, res.output
    rows = read_jsonl(out)
    assert rows
    keys = {"id", "prompt", "category", "seed_id", "lineage", "strategies", "refusal_rate",
            "mean_refusal_rate", "fitness", "judge_verdict", "judge_votes", "judge", "p_harmless"}
    for r in rows:
        assert set(r) == keys
        assert isinstance(r["prompt"], str) and r["prompt"]
        assert isinstance(r["strategies"], list)
        assert set(r["refusal_rate"]) == {"local"}
        assert 0.0 <= r["refusal_rate"]["local"] <= 1.0
    assert "wrote" in res.output
    loads_with_datasets(out, len(rows))


def test_export_xstest_csv(run):
    out = run["tmp"] / "test.csv"
    res = invoke("export", run["dir"], "--format", "test", "--style", "xstest", "-o", out,
                 *run["extra"])
    assert res.exit_code == 0, res.output
    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["id", "prompt", "type", "label", "focus", "note"]
    assert rows and all(r["label"] == "safe" and r["prompt"] for r in rows)


def test_export_sft(run):
    out = run["tmp"] / "sft.jsonl"
    res = invoke("export", run["dir"], "--format", "sft", "--best-per-lineage", "-o", out,
                 *run["extra"])
    if res.exit_code == 2:  # the tiny responder refused every time: possible, must say so
        assert "nothing to export" in one_line_error(res)
        assert not out.exists()
        return
    assert res.exit_code == 0, res.output
    rows = read_jsonl(out)
    for r in rows:
        assert set(r) == {"messages"}
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
        assert all(set(m) == {"role", "content"} and m["content"] for m in r["messages"])
    loads_with_datasets(out, len(rows))


@pytest.fixture(scope="module")
def refusing_run(run) -> Path:
    """The run with a real-looking target refusal kept on every record (the embedded target almost
    never refuses), so the DPO pairing can be tested deterministically."""
    dst = run["tmp"] / "refusing"
    shutil.copytree(run["dir"], dst, ignore=shutil.ignore_patterns("run.lock"))
    lines = []
    for ln in (dst / "archive.jsonl").read_bytes().splitlines():
        rec = orjson.loads(ln)
        for t in (rec.get("targets") or {}).values():
            t["refusal_example"] = "I'm sorry, but I can't help with that request."
        lines.append(orjson.dumps(rec) + b"\n")
    (dst / "archive.jsonl").write_bytes(b"".join(lines))
    return dst


@pytest.mark.parametrize("style", ["trl", "llamafactory"])
def test_export_dpo(run, refusing_run, style):
    out_dir = run["tmp"] / f"dpo_{style}"
    out_dir.mkdir()
    out = out_dir / "pairs.jsonl"
    if style == "llamafactory":
        (out_dir / "dataset_info.json").write_text(json.dumps({"other": {"file_name": "x.json"}}))
    res = invoke("export", refusing_run, "--format", "dpo", "--style", style, "--best-per-lineage",
                 "-o", out, *run["extra"])
    if res.exit_code == 2:
        assert "nothing to export" in one_line_error(res)
        return
    assert res.exit_code == 0, res.output
    rows = read_jsonl(out)
    assert rows
    for r in rows:
        if style == "trl":
            assert set(r) == {"prompt", "chosen", "rejected"}
            assert all(isinstance(r[k], str) and r[k] for k in r)
        else:
            assert set(r) == {"conversations", "chosen", "rejected"}
            assert r["conversations"][0]["from"] == "human" and len(r["conversations"]) == 1
            assert r["chosen"]["from"] == "gpt" and r["rejected"]["from"] == "gpt"
            assert r["rejected"]["value"].startswith("I'm sorry")
    if style == "llamafactory":
        info = json.loads((out_dir / "dataset_info.json").read_text())
        assert info["other"] == {"file_name": "x.json"}
        assert info["pairs"] == {"file_name": "pairs.jsonl", "ranking": True,
                                 "formatting": "sharegpt",
                                 "columns": {"messages": "conversations", "chosen": "chosen",
                                             "rejected": "rejected"}}
    loads_with_datasets(out, len(rows))


# --- export: bad input ----------------------------------------------------------------------------

def test_export_nothing_to_export(run):
    empty = run["tmp"] / "empty"
    shutil.copytree(run["dir"], empty, ignore=shutil.ignore_patterns("run.lock"))
    cp = json.loads((empty / "checkpoint.json").read_text())
    cp["archive_lines"] = 0
    (empty / "checkpoint.json").write_text(json.dumps(cp))
    out = run["tmp"] / "nothing.jsonl"
    line = one_line_error(invoke("export", empty, "--format", "test", "-o", out))
    assert "nothing to export" in line
    assert not out.exists()


def test_export_bad_inputs(run, tmp_path):
    out = tmp_path / "x.jsonl"
    assert "not valid for --format test" in one_line_error(
        invoke("export", run["dir"], "--format", "test", "--style", "trl", "-o", out))
    assert "does not exist" in one_line_error(
        invoke("export", run["dir"], "--format", "test", "-o", tmp_path / "missing" / "x.jsonl"))
    assert "not an evorefuse run" in one_line_error(
        invoke("export", tmp_path, "--format", "test", "-o", out))
    res = invoke("export", run["dir"], "--format", "nope", "-o", out)
    assert res.exit_code == 2
    res = invoke("export", run["dir"], "--format", "test", "--style", "nope", "-o", out)
    assert res.exit_code == 2
    assert not out.exists()
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_export_read_only_dir(run, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert "not writable" in one_line_error(
            invoke("export", run["dir"], "--format", "test", "-o", ro / "x.jsonl", *run["extra"]))
        assert not list(ro.iterdir())
    finally:
        ro.chmod(0o755)


# --- evaluate -------------------------------------------------------------------------------------

@pytest.mark.skipif(not REFERENCE.exists(), reason="reference data not available")
def test_evaluate_reference_diversity():
    res = invoke("evaluate", REFERENCE, "--json", "--no-responses", "--no-embeddings")
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert round(d["msttr"], 4) == pytest.approx(0.5642, abs=5e-4)
    assert d["mtld"] == pytest.approx(176.73, abs=5e-3)
    assert d["hdd"] == pytest.approx(0.8821, abs=5e-4)
    assert d["n"] == 582
    for key in ("refusal_rate", "distinct_1", "distinct_2", "embedding_diversity",
                "per_category", "ci"):
        assert key in d


def test_evaluate_with_responses(run, tmp_path):
    data = tmp_path / "three.jsonl"
    data.write_text("".join((ROOT / "seeds" / "smoke.jsonl").read_text().splitlines(True)[:3]))
    out = tmp_path / "eval.json"
    res = invoke("evaluate", data, "--samples", "2", "--json", "--detector", "pattern",
                 "--cache", tmp_path / "c.sqlite", "--out", out)
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["n"] == 3 and set(d["refusal_rate"]) == {"local"}
    assert 0 <= d["refusal_rate"]["local"] <= 1
    lo, hi = d["ci"]["local"]
    assert 0 <= lo <= d["refusal_rate"]["local"] <= hi <= 1
    assert d["per_category"] and all("local" in e["refusal_rate"] for e in d["per_category"].values())
    assert 0 < d["embedding_diversity"] <= 2
    assert len(json.loads(out.read_text())["prompts"]) == 3
    # the table form, from the cache this time
    res = invoke("evaluate", data, "--samples", "2", "--detector", "pattern",
                 "--cache", tmp_path / "c.sqlite")
    assert res.exit_code == 0 and "refusal rate" in res.output


def test_evaluate_bad_dataset(tmp_path):
    one_line_error(invoke("evaluate", tmp_path / "missing.jsonl", "--no-responses"))


# --- report ---------------------------------------------------------------------------------------

def test_report(run, tmp_path):
    out = tmp_path / "report"
    res = invoke("report", run["dir"], "-o", out)
    assert res.exit_code == 0, res.output
    page = (out / "index.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == 5
    for name in ("fitness.png", "rates.png", "strategies.png", "before_after.png", "calls_cost.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    assert "Top 20 instructions" in page
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:
        shot = tmp_path / "shot.png"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={tmp_path / 'chrome'}", f"--screenshot={shot}",
                        "--window-size=1200,2400", (out / "index.html").as_uri()],
                       capture_output=True, timeout=120)
        assert shot.exists() and shot.stat().st_size > 10_000


def test_report_not_a_run(tmp_path):
    assert "no such run directory" in one_line_error(invoke("report", tmp_path / "nope"))


# --- examples -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["local", "openai", "vllm"])
def test_example_configs_load(name):
    from evorefuse.config import load_config

    cfg = load_config(ROOT / "examples" / f"{name}.toml")
    for names in cfg.role_models().values():
        for n in names:
            cfg.model(n)
    if name != "local":
        assert len(cfg.roles.targets) >= 2


def test_example_script_is_valid_bash():
    script = ROOT / "examples" / "seeds_to_dpo.sh"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
