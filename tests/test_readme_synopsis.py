"""The README's synopsis lists every command and every option that exists, read from the click
commands themselves: a new option without its line in the README fails here."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from evorefuse.cli import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def synopsis() -> dict[str, str]:
    """`evorefuse NAME` -> its synopsis text (continuation lines included), from the first code
    block after '## Commands'."""
    text = README.read_text()
    block = text[text.index("## Commands"):].split("```")[1]
    out: dict[str, str] = {}
    name = None
    for line in block.splitlines():
        m = re.match(r"evorefuse (\w+)", line)
        if m:
            name = m.group(1)
            out[name] = out.get(name, "") + " " + line
        elif name and line.startswith(" "):
            out[name] += " " + line
    return out


def commands() -> list[tuple[str, click.Command]]:
    ctx = click.Context(cli)
    found = []
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        assert cmd is not None, name
        if isinstance(cmd, click.Group):
            found += [(name, sub) for sub in (cmd.get_command(ctx, s)
                                              for s in cmd.list_commands(ctx)) if sub]
        found.append((name, cmd))
    return found


@pytest.mark.parametrize("name, cmd", commands(), ids=lambda x: x if isinstance(x, str) else x.name)
def test_every_option_of_every_command_is_in_the_synopsis(name: str, cmd: click.Command) -> None:
    lines = synopsis()
    assert name in lines, f"README synopsis has no line for `evorefuse {name}`"
    text = lines[name]
    if cmd.name != name:  # a subcommand of a group
        assert re.search(rf"\b{cmd.name}\b", text), f"`{name} {cmd.name}` missing"
    for param in cmd.params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        if param.name == "help":
            continue
        names = [o for o in param.opts + param.secondary_opts]
        assert any(re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text) for o in names), (
            f"README synopsis of `evorefuse {name}` lacks {'/'.join(names)}")


def config_sections() -> list[tuple[str, type]]:
    from evorefuse import config
    from evorefuse.models.spec import ModelSpec

    out = []
    for name, field in config.Config.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, config.BaseModel):
            out.append((name, ann))
    return [*out, ("models", ModelSpec)]


@pytest.mark.parametrize("section, model", config_sections(), ids=lambda x: x if isinstance(x, str) else "")
def test_every_config_key_is_in_the_readme_example(section: str, model: type) -> None:
    text = README.read_text()
    block = text[text.index("## Configuration"):].split("```")[1]
    internal = {"name"}  # a model's name is its table's name, not a key
    for field, info in model.model_fields.items():
        key = info.alias or field
        if key in internal:
            continue
        assert re.search(rf"(?m)^#?\s*{re.escape(key)}\s*=", block), (
            f"README's configuration example lacks [{section}] {key}")


def test_the_readme_configuration_example_loads(tmp_path: Path) -> None:
    from evorefuse.config import load_config

    text = README.read_text()
    block = text[text.index("## Configuration"):].split("```")[1]
    cfg_file = tmp_path / "readme.toml"
    cfg_file.write_text(block.split("\n", 1)[1])  # drop the fence's language tag
    cfg = load_config(cfg_file)
    assert "gpt4o-mini" in cfg.models and cfg.roles.detector == "auto"
