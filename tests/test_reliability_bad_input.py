"""The bad-input matrix through the CLI: every mistake is exit 2, a few lines on stderr naming the
problem, no traceback, no model call, and no partial output left behind."""

from __future__ import annotations

import json
import shutil
import traceback

import click
import pytest
from click.testing import CliRunner
from test_reliability_common import (
    KEY_ENV,
    SENTINEL_KEY,
    clean_server,
    reference,
    write_config,
    write_seeds,
)

from evorefuse.cli import cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bad (and a few good) input files, and a config whose models all live on the loopback."""
    d = tmp_path_factory.mktemp("bad")
    srv = clean_server()
    f = {"dir": d, "srv": srv}
    f["good_cfg"] = write_config(d / "good.toml", srv.base_url)
    f["good_seeds"] = write_seeds(d / "good.jsonl")
    f["missing"] = d / "missing.jsonl"
    f["empty"] = d / "empty.jsonl"
    f["empty"].write_bytes(b"")
    f["latin1"] = d / "latin1.jsonl"
    f["latin1"].write_bytes('{"prompt": "Wie backe ich einen K\u00e4sekuchen?"}\n'.encode("latin-1"))
    f["malformed"] = d / "malformed.jsonl"
    f["malformed"].write_text('{"prompt": "How do I kill a zombie process?", "completion": "ok"}\n'
                              '{"prompt": "What is a phishing email?", "completion": \n')
    f["wrongcols"] = d / "wrongcols.csv"
    f["wrongcols"].write_text("text,label\nHow do I kill a zombie process?,1\n")
    f["huge"] = d / "huge.jsonl"
    f["huge"].write_text(json.dumps({"prompt": "how " * 250_000, "completion": "x"}) + "\n")
    f["latin1_cfg"] = d / "latin1.toml"
    f["latin1_cfg"].write_bytes("[run]\n# d\u00e9j\u00e0 vu\nseed = 1\n".encode("latin-1"))
    f["empty_cfg"] = d / "empty.toml"
    f["empty_cfg"].write_bytes(b"")
    text = f["good_cfg"].read_text()
    f["unknown_key_cfg"] = d / "unknown_key.toml"
    f["unknown_key_cfg"].write_text(text.replace("[run]\n", "[run]\ngenerashuns = 3\n"))
    f["wrong_type_cfg"] = d / "wrong_type.toml"
    f["wrong_type_cfg"].write_text(text.replace("[run]\n", '[run]\ngenerations = "two"\n'))
    f["bad_toml_cfg"] = d / "bad_toml.toml"
    f["bad_toml_cfg"].write_text(text.replace("[run]\n", "[run\n"))
    f["unknown_model_cfg"] = d / "unknown_model.toml"
    f["unknown_model_cfg"].write_text(text.replace('targets = ["fake"]', 'targets = ["ghost"]'))
    f["unknown_strategy_cfg"] = d / "unknown_strategy.toml"
    f["unknown_strategy_cfg"].write_text(text + '\n[evolution]\nstrategies = ["no_such_strategy"]\n')
    f["bad_strategy_cfg"] = d / "bad_strategy.toml"
    f["bad_strategy_cfg"].write_text(text + '\n[[strategies]]\nname = "mine"\nfamily = 3\n'
                                     'instruction = "x"\n')
    f["zero_evaluations_cfg"] = d / "zero_evaluations.toml"
    f["zero_evaluations_cfg"].write_text(text + "\n[evolution]\nevaluations = 0\n")
    f["negative_temperature_cfg"] = d / "negative_temperature.toml"
    f["negative_temperature_cfg"].write_text(text + "\n[fitness]\ntemperature = -0.5\n")
    f["not_a_run"] = d / "not_a_run"
    f["not_a_run"].mkdir()
    (f["not_a_run"] / "notes.txt").write_text("hello")
    f["empty_dir"] = d / "empty_dir"
    f["empty_dir"].mkdir()
    f["dataset"] = d / "dataset.jsonl"
    f["dataset"].write_text(json.dumps({"prompt": "How do I kill a zombie process?",
                                        "completion": "I'm sorry, but I can't help with that."})
                            + "\n")
    return f


@pytest.fixture(scope="module")
def runs(files, tmp_path_factory):
    """A finished run (copied from the reference) and one of a newer format."""
    ref = reference(tmp_path_factory)
    d = files["dir"]
    good = d / "good_run"
    shutil.copytree(ref["run"], good)
    newer = d / "newer_run"
    shutil.copytree(ref["run"], newer)
    m = json.loads((newer / "manifest.json").read_text())
    m["format_version"] = 99
    (newer / "manifest.json").write_text(json.dumps(m))
    damaged = {}
    for name, damage in [
        ("no_config", lambda r: (r / "config.json").unlink()),
        ("torn_checkpoint", lambda r: (r / "checkpoint.json").write_text('{"generation": 1')),
        ("bad_config_json", lambda r: (r / "config.json").write_text("{")),
        ("foreign_config", lambda r: (r / "config.json").write_text(
            (r / "config.json").read_text().replace('"run": {', '"run": {"bogus": 1,', 1))),
        ("no_seeds", lambda r: (r / "seeds.jsonl").unlink()),
    ]:
        damaged[name] = d / name
        shutil.copytree(ref["run"], damaged[name])
        damage(damaged[name])
    return {"good": good, "newer": newer, **damaged}


def _cases(f, runs):
    """(id, command, argv, env, expected substrings in stderr, paths that must not exist)."""
    d = f["dir"]
    cfg = str(f["good_cfg"])
    ev = ["evolve", "-c", cfg, "--generations", "1"]
    out = lambda name: d / "out" / name
    seed_files = ["missing", "empty", "latin1", "malformed", "wrongcols", "huge"]
    cases = []
    for s in seed_files:
        want = {"missing": "not found", "malformed": "malformed.jsonl:2", "latin1": "UTF-8",
                "wrongcols": "column", "huge": "huge.jsonl:1", "empty": "empty"}[s]
        cases.append((f"evolve-seeds-{s}", "evolve",
                      ev + ["--seeds", str(f[s]), "--run-dir", str(out(f"ev-{s}"))], None,
                      [want], [out(f"ev-{s}")]))
    for c, want in [("missing_cfg", "not found"), ("latin1_cfg", "UTF-8"),
                    ("unknown_key_cfg", "run.generashuns"), ("wrong_type_cfg", "run.generations"),
                    ("bad_toml_cfg", "TOML"), ("unknown_model_cfg", "ghost"),
                    ("unknown_strategy_cfg", "no_such_strategy"),
                    ("bad_strategy_cfg", "strategies.family"),
                    ("zero_evaluations_cfg", "evolution.evaluations"),
                    ("negative_temperature_cfg", "fitness.temperature")]:
        path = f.get(c, d / "missing.toml")
        cases.append((f"evolve-config-{c}", "evolve",
                      ["evolve", "-c", str(path), "--seeds", str(f["good_seeds"]), "--run-dir",
                       str(out(f"ev-{c}"))], None, [want], [out(f"ev-{c}")]))
    cases += [
        ("evolve-env-missing", "evolve",
         ev + ["--seeds", str(f["good_seeds"]), "--run-dir", str(out("ev-env"))],
         {KEY_ENV: None}, [KEY_ENV], [out("ev-env")]),
        ("evolve-unknown-target", "evolve",
         ev + ["--seeds", str(f["good_seeds"]), "--target", "ghost", "--run-dir",
               str(out("ev-ghost"))], None, ["ghost"], [out("ev-ghost")]),
        ("evolve-unknown-mutator", "evolve",
         ev + ["--seeds", str(f["good_seeds"]), "--mutator", "ghost", "--run-dir",
               str(out("ev-ghost2"))], None, ["ghost"], [out("ev-ghost2")]),
        ("evolve-bad-generations", "evolve",
         ev + ["--seeds", str(f["good_seeds"]), "--generations", "many", "--run-dir",
               str(out("ev-gen"))], None, ["generations"], [out("ev-gen")]),
        ("evolve-existing-run-dir", "evolve",
         ev + ["--seeds", str(f["good_seeds"]), "--run-dir", str(runs["good"])], None,
         ["resume"], []),
    ]
    for name in ("status", "resume", "export", "report"):
        extra = ["--format", "test", "-o", str(out(f"{name}-x.jsonl"))] if name == "export" else (
            ["-o", str(out(f"{name}-rep"))] if name == "report" else [])
        gone = [out(f"{name}-x.jsonl")] if name == "export" else (
            [out(f"{name}-rep")] if name == "report" else [])
        cases += [
            (f"{name}-missing-dir", name, [name, str(d / "no_such_run"), *extra], None,
             ["no_such_run"], gone),
            (f"{name}-not-a-run", name, [name, str(f["not_a_run"]), *extra], None,
             ["not an evorefuse run"], gone),
            (f"{name}-empty-dir", name, [name, str(f["empty_dir"]), *extra], None,
             ["empty_dir"], gone),
            (f"{name}-newer-format", name, [name, str(runs["newer"]), *extra], None,
             ["newer"], gone),
        ]
    for name in ("no_config", "torn_checkpoint", "bad_config_json"):
        for command in ("status", "resume"):
            cases.append((f"{command}-{name}", command, [command, str(runs[name])], None,
                          ["damaged"], []))
    cases += [
        ("resume-foreign-config", "resume", ["resume", str(runs["foreign_config"]),
                                             "--generations", "3"], None, ["bogus"], []),
        ("resume-no-seeds", "resume", ["resume", str(runs["no_seeds"]), "--generations", "3"],
         None, ["seeds.jsonl"], []),
        ("export-torn-checkpoint", "export", ["export", str(runs["torn_checkpoint"]), "--format",
                                              "test", "-o", str(out("torn.jsonl"))], None,
         ["checkpoint.json"], [out("torn.jsonl")]),
        ("resume-env-missing", "resume", ["resume", str(runs["good"]), "--generations", "3"],
         {KEY_ENV: None}, [KEY_ENV], []),
        ("resume-changed-config", "resume",
         ["resume", str(runs["good"]), "-c", str(f["unknown_model_cfg"])], None, ["ghost"], []),
        ("export-bad-format", "export", ["export", str(runs["good"]), "--format", "csv"], None,
         ["format"], []),
    ]
    # detect reads responses, which may be long: a 1 MB line is not an error there.
    for s in [x for x in seed_files if x != "huge"] + ["wrongcols_jsonl"]:
        src = f["dataset"] if s == "wrongcols_jsonl" else f[s]
        col = ["--column", "no_such_column"] if s == "wrongcols_jsonl" else []
        want = {"missing": "not found", "malformed": "malformed.jsonl:2", "latin1": "UTF-8",
                "wrongcols": "column", "huge": "huge.jsonl", "empty": "empty",
                "wrongcols_jsonl": "no_such_column"}[s]
        cases.append((f"detect-{s}", "detect",
                       ["detect", str(src), "--detector", "pattern", *col,
                        "--out", str(out(f"det-{s}.jsonl"))], None, [want],
                       [out(f"det-{s}.jsonl")]))
    for s in seed_files:
        src = f[s]
        want = {"missing": "not found", "malformed": "malformed.jsonl:2", "latin1": "UTF-8",
                "wrongcols": "column", "huge": "huge.jsonl", "empty": "empty"}[s]
        if True:
            cases.append((f"evaluate-{s}", "evaluate",
                          ["evaluate", str(src), "-c", cfg, "--detector", "pattern",
                           "--no-embeddings", "--cache", str(out(f"eva-{s}.sqlite")),
                           "--out", str(out(f"eva-{s}.json"))], None, [want],
                          [out(f"eva-{s}.json"), out(f"eva-{s}.sqlite")]))
    # judge reads prompts (a long one is not an error; `text` is one of its default columns, so
    # the wrong column is named), then the judges it is asked for.
    for s in [x for x in seed_files if x != "huge"]:
        want = {"missing": "not found", "malformed": "malformed.jsonl:2", "latin1": "UTF-8",
                "wrongcols": "no_such_column", "empty": "empty"}[s]
        col = ["--column", "no_such_column"] if s == "wrongcols" else []
        cases.append((f"judge-{s}", "judge", ["judge", str(f[s]), *col, "--out",
                                              str(out(f"jud-{s}.jsonl"))], None, [want],
                      [out(f"jud-{s}.jsonl")]))
    cases += [
        ("judge-unknown-judge", "judge",
         ["judge", str(f["good_seeds"]), "-c", cfg, "--judge", "ghost", "--out",
          str(out("jud-ghost.jsonl"))], None, ["ghost"], [out("jud-ghost.jsonl")]),
        ("judge-env-missing", "judge",
         ["judge", str(f["good_seeds"]), "-c", cfg, "--judge", "fake", "--out",
          str(out("jud-env.jsonl"))], {KEY_ENV: None}, [KEY_ENV], [out("jud-env.jsonl")]),
        ("judge-out-is-input", "judge", ["judge", str(f["good_seeds"]), "--out",
                                         str(f["good_seeds"])], None, ["overwrite"], []),
        ("judge-missing-gold-column", "judge",
         ["judge", str(f["good_seeds"]), "--gold", "no_such_label", "--out",
          str(out("jud-gold.jsonl"))], None, ["no_such_label"], [out("jud-gold.jsonl")]),
        ("judge-unknown-mode", "judge", ["judge", str(f["good_seeds"]), "--mode", "vote"], None,
         ["mode"], []),
    ]
    cases += [
        ("detect-unknown-detector", "detect",
         ["detect", str(f["dataset"]), "--detector", "nope", "--out", str(out("det-nd.jsonl"))],
         None, ["nope"], [out("det-nd.jsonl")]),
        ("evaluate-unknown-target", "evaluate",
         ["evaluate", str(f["dataset"]), "-c", cfg, "--target", "ghost", "--detector", "pattern",
          "--no-embeddings", "--cache", str(out("eva-ghost.sqlite")), "--out",
          str(out("eva-ghost.json"))], None, ["ghost"],
         [out("eva-ghost.json"), out("eva-ghost.sqlite")]),
        ("evaluate-env-missing", "evaluate",
         ["evaluate", str(f["dataset"]), "-c", cfg, "--target", "fake", "--detector", "pattern",
          "--no-embeddings", "--cache", str(out("eva-env.sqlite")), "--out",
          str(out("eva-env.json"))], {KEY_ENV: None}, [KEY_ENV],
         [out("eva-env.json"), out("eva-env.sqlite")]),
        ("evaluate-unknown-key-config", "evaluate",
         ["evaluate", str(f["dataset"]), "-c", str(f["unknown_key_cfg"]), "--out",
          str(out("eva-cfg.json"))], None, ["generashuns"], [out("eva-cfg.json")]),
        ("models-check-unknown", "models", ["models", "check", "ghost", "-c", cfg], None,
         ["ghost"], []),
        ("models-check-env-missing", "models", ["models", "check", "fake", "-c", cfg],
         {KEY_ENV: None}, [KEY_ENV], []),
        ("models-list-wrong-type", "models", ["models", "list", "-c", str(f["wrong_type_cfg"])],
         None, ["run.generations"], []),
        ("models-list-missing-config", "models", ["models", "list", "-c", str(d / "no.toml")],
         None, ["no.toml"], []),
    ]
    # seeds reads its policy and its options before any model is called.
    policy_empty, policy_latin1 = d / "policy_empty.txt", d / "policy_latin1.txt"
    policy_empty.write_text("  \n")
    policy_latin1.write_bytes("Nicht erlaubt: Anleitungen f\u00fcr Waffen\n".encode("latin-1"))
    sd = ["seeds", "-c", cfg, "--generator", "fake"]
    cases += [
        ("seeds-policy-missing", "seeds",
         sd + ["--policy", str(d / "no_policy.txt"), "-o", str(out("sd-missing.jsonl"))], None,
         ["no_policy.txt"], [out("sd-missing.jsonl")]),
        ("seeds-policy-empty", "seeds",
         sd + ["--policy", str(policy_empty), "-o", str(out("sd-empty.jsonl"))], None,
         ["policy_empty.txt"], [out("sd-empty.jsonl")]),
        ("seeds-policy-latin1", "seeds",
         sd + ["--policy", str(policy_latin1), "-o", str(out("sd-latin1.jsonl"))], None,
         ["UTF-8"], [out("sd-latin1.jsonl")]),
        ("seeds-unknown-language", "seeds",
         sd + ["--category", "cyber", "--language", "xx-notalang", "-o",
               str(out("sd-lang.jsonl"))], None, ["xx-notalang"], [out("sd-lang.jsonl")]),
        ("seeds-zero-per-category", "seeds",
         sd + ["--category", "cyber", "--per-category", "0", "-o", str(out("sd-zero.jsonl"))],
         None, ["per-category"], [out("sd-zero.jsonl")]),
        ("seeds-unknown-generator", "seeds",
         ["seeds", "-c", cfg, "--generator", "ghost", "--category", "cyber", "-o",
          str(out("sd-ghost.jsonl"))], None, ["ghost"], [out("sd-ghost.jsonl")]),
        ("seeds-env-missing", "seeds",
         sd + ["--category", "cyber", "-o", str(out("sd-env.jsonl"))], {KEY_ENV: None},
         [KEY_ENV], [out("sd-env.jsonl")]),
    ]
    return cases


def test_bad_input_matrix(files, runs) -> None:
    srv = files["srv"]
    (files["dir"] / "out").mkdir(exist_ok=True)
    before_run = {p.name: p.read_bytes() for p in runs["good"].iterdir() if p.is_file()
                  and p.name in ("archive.jsonl", "checkpoint.json", "config.json")}
    requests = srv.requests
    failures = []
    for cid, command, argv, env, wants, gone in _cases(files, runs):
        # Every command exists: one that is missing or fails to import is a failure (click
        # answers "No such command" with exit 2, which the wanted message does not match).
        assert cli.get_command(click.Context(cli), command) is not None, command
        env = {KEY_ENV: SENTINEL_KEY, "OPENAI_BASE_URL": None, "HF_HUB_OFFLINE": "1",
               **(env or {})}
        res = CliRunner().invoke(cli, argv, env=env)
        err = res.stderr
        problems = []
        if res.exit_code != 2:
            problems.append(f"exit {res.exit_code}")
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            problems.append("exception: " + "".join(traceback.format_exception(
                res.exception))[-600:])
        if "Traceback" in res.output or "Traceback" in err:
            problems.append("traceback")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        if len(lines) > 3:
            problems.append(f"{len(lines)} stderr lines")
        for w in wants:
            if w.lower() not in err.lower():
                problems.append(f"stderr does not mention {w!r}")
        for p in gone:
            if p.exists() and (p.is_file() or any(p.iterdir())):
                problems.append(f"left behind {p.name}")
        if problems:
            failures.append(f"{cid}: {'; '.join(problems)}\n    stderr: {err.strip()[:400]}")
    assert not failures, "\n".join(failures)
    assert srv.requests == requests, "bad input must not call any model"
    after_run = {p.name: p.read_bytes() for p in runs["good"].iterdir() if p.is_file()
                 and p.name in before_run}
    assert after_run == before_run, "a failed resume changed the run"


def test_every_command_has_bad_input_cases(files, runs) -> None:
    """A new command joins the matrix: the CLI's command list and the matrix's must agree."""
    listed = set(cli.list_commands(click.Context(cli)))
    covered = {case[1] for case in _cases(files, runs)}
    assert not listed - covered, f"commands without bad-input cases: {sorted(listed - covered)}"
    assert not covered - listed, f"cases for commands the CLI lacks: {sorted(covered - listed)}"
