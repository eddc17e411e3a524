"""Docs that run: every code block of the user guides is a file under examples/, word for word, and
every such file runs (CLI scripts included) on tiny settings, in a copy of examples/ in a temporary folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The guides whose every code block is an example file (its first line names it).
GUIDES = ("docs/quickstart.md", "docs/cli.md", "docs/recipes.md", "docs/own-model.md")
#: Example → (working folder under the copy, environment, (file, text, tiny text) substitutions). Run in this order.
RUNS: dict[str, tuple[str, dict[str, str], tuple[tuple[str, str, str], ...]]] = {
    "own_model/train.py": ("own_model", {"TRAIN_STEPS": "20"}, ()),
    "own_model/compress_api.py": ("own_model", {}, ()),
    "own_model/choose.py": ("own_model", {"RATIOS": "0.5"}, ()),
    "own_model/cli.sh": (".", {}, (("own_model/config.toml", "[0.6, 0.4]", "[0.4]"),
                                   ("own_model/cli.sh", "own-model-out/ratio-0.4", "own-model-out"))),
    "quickstart/api.py": ("quickstart", {}, ()),
    "quickstart/demo.sh": (".", {}, (("quickstart/demo.sh", "--ratios 0.6 0.4", "--ratios 0.4"),
                                     ("quickstart/demo.sh", "demo-out/ratio-0.4", "demo-out"))),
    "cli/commands.sh": ("cli", {}, (("cli/commands.sh", "--ratio 0.6 0.4", "--ratio 0.4"),
                                    ("cli/commands.sh", "run/ratio-0.4", "run"))),
    "recipes/recipes.py": ("recipes", {}, ()),
}
#: Examples only checked for syntax, with the reason.
NOT_RUN = {"quickstart/install.sh": "it creates a virtual environment and installs packages"}
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def _blocks(guide: str) -> list[str]:
    return [body for _, body in FENCE.findall((ROOT / guide).read_text())]


def _examples() -> list[str]:
    return sorted(str(p.relative_to(ROOT / "examples")) for folder in ("quickstart", "own_model", "cli", "recipes")
                  for p in (ROOT / "examples" / folder).iterdir() if p.suffix in (".py", ".sh", ".toml"))


@pytest.mark.parametrize("guide", GUIDES)
def test_every_code_block_of_a_guide_is_an_example_file_word_for_word(guide):
    blocks = _blocks(guide)
    assert blocks, f"{guide} has no code block"
    for block in blocks:
        first = block.splitlines()[0]
        named = re.match(r"#\s*(examples/\S+)", first)
        assert named, f"{guide}: a code block does not start with '# examples/...': {first!r}"
        path = ROOT / named.group(1)
        assert path.is_file() and path.read_text() == block, f"{guide}: the block of {named.group(1)} differs from the file"


def test_every_example_is_shown_in_a_guide_and_run_or_listed_as_not_run():
    shown = {re.match(r"#\s*examples/(\S+)", block).group(1) for guide in GUIDES for block in _blocks(guide)}
    for example in _examples():
        assert example in shown, f"examples/{example} is in no guide"
        assert example in RUNS or example in NOT_RUN or example.endswith(".toml") or example.endswith("my_operator.py") \
            or example == "cli/make_data.py", f"examples/{example} is neither run nor listed in NOT_RUN"


def test_the_install_script_is_valid_bash():
    for example in NOT_RUN:
        assert subprocess.run(["bash", "-n", str(ROOT / "examples" / example)]).returncode == 0


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    pytest.importorskip("h5py", reason="the data extra (h5py) is not installed")
    pytest.importorskip("matplotlib", reason="the plots extra (matplotlib) is not installed")
    root = tmp_path_factory.mktemp("examples-run")
    for folder in ("quickstart", "own_model", "cli", "recipes"):
        shutil.copytree(ROOT / "examples" / folder, root / "examples" / folder,
                        ignore=shutil.ignore_patterns("*.safetensors", "__pycache__", "compressed", "*-out"))
    return root


@pytest.mark.slow
@pytest.mark.parametrize("example", list(RUNS))
def test_the_example_runs(workspace, example):
    folder, extra, tiny = RUNS[example]
    script = workspace / "examples" / example
    for file, text_from, text_to in tiny:
        path = workspace / "examples" / file
        text = path.read_text()
        assert text_from in text, f"examples/{file} no longer holds {text_from!r}: update RUNS"
        path.write_text(text.replace(text_from, text_to))
    where = workspace if folder == "." else workspace / "examples" / folder
    environment = {**os.environ, **extra, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                   "MPLBACKEND": "Agg"}
    command = ["bash", "-e", str(script)] if script.suffix == ".sh" else [sys.executable, str(script)]
    answer = subprocess.run(command, cwd=where, env=environment, capture_output=True, text=True, timeout=600)
    assert answer.returncode == 0, f"{example} failed:\n{answer.stdout[-3000:]}\n{answer.stderr[-3000:]}"


def test_the_recipes_guide_lists_every_option_of_every_recipe_with_its_default():
    import attrs

    from safesvd_core import registry

    text = (ROOT / "docs/recipes.md").read_text()
    sections = {match.group(1): body for match, body in
                zip(re.finditer(r"^## `([\w-]+)`.*$", text, re.M), re.split(r"^## `[\w-]+`.*$", text, flags=re.M)[1:])}
    for name in registry("recipe").names():
        body = sections.get(name) or sections[name.removesuffix("-balanced")]
        for field in attrs.fields(registry("recipe").get(name)):
            default = field.default.factory() if isinstance(field.default, attrs.Factory) else field.default
            assert f"| `{field.name}` | `{default!r}` |" in body, f"docs/recipes.md: {name} option {field.name} = {default!r}"
