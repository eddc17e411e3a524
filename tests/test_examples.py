"""Docs that run: every code block of README.md and docs/*.md is a file under examples/, word for word,
unless its fence marks it as not code (program output, a directory tree, a diagram: NOT_CODE), and
every such file runs (CLI scripts included) on tiny settings, in a copy of examples/ in a temporary
folder, or is listed in NOT_RUN with the reason and only checked for syntax."""

from __future__ import annotations

import os
import py_compile
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from poseidon_stand_in import write_poseidon

ROOT = Path(__file__).resolve().parents[1]
#: The pages whose every code block is an example file (its first line names it) or not code.
#: docs/results/ is left out: the benchmarks generate those pages.
GUIDES = ("README.md", *sorted(f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md")))
#: Fence languages of blocks that are not code: program output, directory trees, diagrams, formulas.
NOT_CODE = frozenset({"text"})
#: Fence language of a code block → the suffix of the example file it shows.
CODE = {"python": ".py", "bash": ".sh", "sh": ".sh", "toml": ".toml"}
#: Example folders that are packages with tests of their own, not shown block by block.
PACKAGES = ("safesvd-enstrophy",)
#: Example → (working folder under the copy, environment, (file, text, tiny text) substitutions). Run in
#: this order.
RUNS: dict[str, tuple[str, dict[str, str], tuple[tuple[str, str, str], ...]]] = {
    "own_model/train.py": ("own_model", {"TRAIN_STEPS": "20"}, ()),
    "own_model/compress_api.py": ("own_model", {}, ()),
    "own_model/choose.py": ("own_model", {"RATIOS": "0.5"}, ()),
    "own_model/unet.py": ("own_model", {"TRAIN_STEPS": "20"}, ()),
    "own_model/structured.py": ("own_model", {}, ()),
    "own_model/cli.sh": (
        ".",
        {},
        (
            ("own_model/config.toml", "[0.6, 0.4]", "[0.4]"),
            ("own_model/cli.sh", "own-model-out/ratio-0.4", "own-model-out"),
        ),
    ),
    "quickstart/api.py": ("quickstart", {}, ()),
    "quickstart/demo.sh": (
        ".",
        {},
        (
            ("quickstart/demo.sh", "--ratios 0.6 0.4", "--ratios 0.4"),
            ("quickstart/demo.sh", "demo-out/ratio-0.4", "demo-out"),
        ),
    ),
    "cli/commands.sh": (
        "cli",
        {},
        (
            ("cli/commands.sh", "--ratio 0.6 0.4", "--ratio 0.4"),
            ("cli/commands.sh", "run/ratio-0.4", "run"),
            ("cli/config.toml", "samples = 512", "samples = 64"),
            ("cli/config.toml", "steps = 300 ", "steps = 10  "),
        ),
    ),
    "recipes/recipes.py": ("recipes", {}, ()),
    "fine_tune/refine.py": ("fine_tune", {"INPUTS": "64", "STEPS": "5"}, ()),
    "fine_tune/refine_later.py": ("fine_tune", {"INPUTS": "64", "STEPS": "5"}, ()),
    "fine_tune/fine_tune.py": ("fine_tune", {"STEPS": "10", "EVERY": "5"}, ()),
    "readme/api.py": ("readme", {}, ()),
    "readme/cli.sh": (
        "readme",
        {},
        (("readme/cli.sh", "my-run/ratio-0.4", "my-run"),),
    ),  # my-config.toml: INPUTS
    "adapters/transformers_adapter.py": (
        "adapters",
        {},
        (("adapters/transformers_adapter.py", '"calibration"))', '"calibration"))[:1]'),),
    ),
    "adapters/hf_round_trip.py": (
        "adapters",
        {},
        (("adapters/hf_round_trip.py", "for _ in range(4)", "for _ in range(1)"),),
    ),
    "architecture/phase.py": ("architecture", {}, ()),
    "baselines/recipes.py": ("baselines", {}, ()),
    "data/readers.py": (
        "data",
        {},
        (("data/readers.py", "default_calibration_set()", "default_calibration_set(samples=2, size=16)"),),
    ),
    "data/rollouts.py": (
        "data",
        {},
        (
            (
                "data/rollouts.py",
                "NavierStokesGenerator(samples=32)",
                "NavierStokesGenerator(samples=4, size=16)",
            ),
        ),
    ),
    # a writer per HDF5 layout: tiny arrays written, then read back and checked by the reader
    "data/write_the_well.py": ("data", {}, ()),
    "data/write_pdebench_cfd.py": ("data", {}, ()),
    "data/write_pdebench_diffusion_reaction.py": ("data", {}, ()),
    "data/write_pdebench_shallow_water.py": ("data", {}, ()),
    "data/write_pdebench_incompressible_ns.py": ("data", {}, ()),
    # two gloo processes on this machine; the two-node line needs two hosts, so it becomes a comment
    "distributed/run.sh": (
        "distributed",
        {"REFINE_STEPS": "4"},
        (
            ("distributed/run.sh", "--nproc-per-node 4", "--standalone --nproc-per-node 2"),
            ("distributed/run.sh", "torchrun --nnodes 2", "# torchrun --nnodes 2"),
            ("distributed/compress_model.py", "/shared/ckpt", "ckpt"),
        ),
    ),
    "physics/field.py": ("physics", {}, ()),
    "plugins/test_my_allocator.py": ("plugins", {}, ()),
    "plugins/migrate.py": ("plugins", {}, ()),
    "plugins/hello.py": ("plugins", {}, ()),
    "zoo/using_models.py": ("zoo", {}, (("zoo/using_models.py", '"calibration"))', '"calibration"))[:1]'),)),
    # on the stand-in (tests/poseidon_stand_in.py): a package scOT in the folder, a tiny checkpoint folder
    "poseidon/compress.py": (
        "poseidon",
        {},
        (("poseidon/compress.py", "zip(range(16), loader)", "zip(range(2), loader)"),),
    ),
    "poseidon/evaluate.py": ("poseidon", {}, (("poseidon/evaluate.py", "zip(range(8), ", "zip(range(2), "),)),
    "poseidon/rollout.py": (
        "poseidon",
        {},
        (("poseidon/rollout.py", "for first in (0, 4)]", "for first in (0,)]"),),
    ),
    "poseidon/reload.py": ("poseidon", {}, ()),
    "poseidon/export.py": ("poseidon", {}, ()),
    "poseidon/fine_tune.py": (
        "poseidon",
        {},
        (("poseidon/fine_tune.py", '"Poseidon-T", 500', '"Poseidon-T", 4'),),
    ),
}
#: What an example must print (a regular expression), where a number it prints was once wrong.
PRINTS = {
    # not len(result.ranks) as "layers": Poseidon-T has 213 compressible layers, of which 83 were factored
    "poseidon/compress.py": r"budget met: True, (\d+) of (\d+) compressible layers factored, \d+ stages",
}
#: Examples run by another example (imported, or called by a script), not on their own.
RUN_BY = {
    "own_model/my_operator.py": "own_model/train.py",
    "own_model/unet_model.py": "own_model/unet.py",
    "cli/make_data.py": "cli/commands.sh",
    "plugins/my_allocator.py": "plugins/test_my_allocator.py",
    "distributed/compress_model.py": "distributed/run.sh",
}
#: Optional packages an example needs: without them it is skipped, with the reason.
NEEDS = {
    "adapters/transformers_adapter.py": "transformers",
    "adapters/hf_round_trip.py": "transformers",
    "zoo/using_models.py": "transformers",
    **{example: "transformers" for example in RUNS if example.startswith("poseidon/")},
}
INSTALLS = "it creates a virtual environment and installs packages"
#: Examples only checked for syntax, with the reason.
NOT_RUN = {
    "quickstart/install.sh": INSTALLS,
    "readme/setup.sh": INSTALLS,
    "poseidon/install.sh": INSTALLS,
    "adapters/full_venv.sh": INSTALLS,
    "zoo/reproduce.sh": "it retrains the zoo from scratch (minutes per model) and overwrites the bundled "
    "weights; two of the models need the .venv-full environment (timm, the_well)",
}


def _random(*shape: int, seed: int = 0):
    import numpy as np

    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _pdebench_cfd(folder: Path) -> None:
    """A tiny 2D_CFD file (PDEBench's layout, docs/data.md) under the name the example reads."""
    import h5py
    import numpy as np

    n, steps, size = 2, 7, 8
    with h5py.File(folder / "2D_CFD_Rand_M0.1_Eta0.01_Zeta0.01_periodic_128_Train.hdf5", "w") as file:
        for seed, name in enumerate(("density", "pressure", "Vx", "Vy")):
            file[name] = _random(n, steps, size, size, seed=seed)
        file["x-coordinate"] = file["y-coordinate"] = (np.arange(size, dtype=np.float32) + 0.5) / size
        file["t-coordinate"] = np.arange(steps + 1, dtype=np.float32) * 0.05


def _the_well(folder: Path) -> None:
    """A tiny The Well file (one scalar and one vector field, periodic in x) under the name the example
    reads."""
    import h5py
    import numpy as np

    n, steps, size = 2, 6, 8
    with h5py.File(folder / "shear_flow_Reynolds_1e4_Schmidt_1e0.hdf5", "w") as file:
        file.attrs.update(
            {"dataset_name": "shear_flow", "grid_type": "cartesian", "n_spatial_dims": 2, "n_trajectories": n}
        )
        dims = file.create_group("dimensions")
        dims.attrs["spatial_dims"] = ["x", "y"]
        for axis, values in {
            "x": np.arange(size) / size,
            "y": np.arange(size) / size,
            "time": np.arange(steps) * 0.1,
        }.items():
            dims[axis] = values.astype(np.float32)
        periodic = file.create_group("boundary_conditions").create_group("x_periodic")
        periodic.attrs.update({"associated_dims": ["x"], "bc_type": "periodic"})
        for order, (name, shape) in enumerate((("tracer", ()), ("velocity", (2,)))):
            group = file.create_group(f"t{order}_fields")
            group.attrs["field_names"] = [name]
            group[name] = _random(n, steps, size, size, *shape, seed=order)
            group[name].attrs.update(
                {"sample_varying": True, "time_varying": True, "dim_varying": [True, True]}
            )
        for order in (2,):
            file.create_group(f"t{order}_fields").attrs["field_names"] = []


def _pdebench_ns(folder: Path) -> None:
    """A tiny ns.h5 in PDEBench's incompressible-NS layout: velocity (N, T, X, Y, 2), particles, force, t."""
    import h5py
    import numpy as np

    n, steps, size = 2, 11, 8
    with h5py.File(folder / "ns.h5", "w") as file:
        file["velocity"] = _random(n, steps, size, size, 2)
        file["particles"] = _random(n, steps, size, size, 1, seed=1)
        file["force"] = np.zeros((n, size, size, 2), dtype=np.float32)
        file["t"] = np.tile(np.arange(steps, dtype=np.float32) * 0.05, (n, 1))


def _my_config(folder: Path) -> None:
    """my-config.toml of the README: the reference model on the seeded Navier–Stokes generator, ratio 0.4."""
    (folder / "my-config.toml").write_text(
        '[model]\nzoo = "ns2d-transformer"\n\n[data]\ngenerator = "navier_stokes"\noptions = { samples = 8 '
        "}\n"
        'batch_size = 4\n\n[adapter]\noptions = { include = ["blocks.*"] }\n\n[compress]\nratio = 0.4\n\n'
        "[evaluate]\nfigures = false\n"
    )


#: Files an example reads that the repository does not hold (your data sets, your config): written tiny
#: into its working folder before it runs.
INPUTS: dict[str, Callable[[Path], None]] = {
    "data/readers.py": lambda folder: (_pdebench_cfd(folder), _the_well(folder)),
    "data/rollouts.py": _pdebench_ns,
    "readme/cli.sh": _my_config,
    **{example: write_poseidon for example in RUNS if example.startswith("poseidon/")},
}


def blocks(text: str) -> list[tuple[int, str, str]]:
    """``(line, language, body)`` of every fenced code block (``` or ~~~, indented or not; a bare fence
    has the language ""), its body without the fence's indentation. An unclosed fence runs to the end."""
    found, lines, index = [], text.splitlines(keepends=True), 0
    while index < len(lines):
        opening = re.match(r"( *)(`{3,}|~{3,})[ \t]*(\S*)", lines[index])
        index += 1
        if not opening:
            continue
        indent, fence, language = opening.groups()
        start, body = index, []
        while index < len(lines) and not re.fullmatch(rf" *{fence[0]}{{{len(fence)},}}\s*", lines[index]):
            body.append(lines[index].removeprefix(indent))
            index += 1
        index += 1
        found.append((start, language, "".join(body)))
    return found


def stray_blocks(text: str, page: str = "page") -> list[str]:
    """What is wrong with the code blocks of one page: each must be an example file, named on its first
    line (``# examples/...``), shown word for word with its language, or have a language in NOT_CODE."""
    problems = []
    for line, language, body in blocks(text):
        named = re.match(r"#\s*examples/(\S+)", body)
        where = f"{page}:{line}: a " + (
            f"```{language} block" if language else "block with no language (a bare ```)"
        )
        if language in NOT_CODE:
            if named:
                problems.append(f"{where} names examples/{named.group(1)}: give it its code language")
        elif not named:
            problems.append(
                f"{where} is neither an example file (a first line '# examples/...') nor marked as not "
                f"code ({', '.join(sorted(NOT_CODE))}): {body.partition(chr(10))[0]!r}"
            )
        elif CODE.get(language) != (path := ROOT / "examples" / named.group(1)).suffix:
            fences = "/".join(key for key, suffix in CODE.items() if suffix == path.suffix)
            problems.append(
                f"{where} shows examples/{named.group(1)}: use ```{fences or '(a code language)'}"
            )
        elif not path.is_file() or path.read_text() != body:
            problems.append(f"{where} differs from examples/{named.group(1)}: copy the file into the page")
    return problems


def _shown() -> set[str]:
    return {
        named.group(1)
        for guide in GUIDES
        for _, language, body in blocks((ROOT / guide).read_text())
        if language in CODE and (named := re.match(r"#\s*examples/(\S+)", body))
    }


def _examples() -> list[str]:
    return sorted(
        str(path.relative_to(ROOT / "examples"))
        for folder in sorted((ROOT / "examples").iterdir())
        if folder.is_dir() and folder.name not in PACKAGES
        for path in folder.iterdir()
        if path.suffix in (".py", ".sh", ".toml")
    )


@pytest.mark.parametrize("guide", GUIDES)
def test_every_code_block_of_a_page_is_an_example_file_word_for_word(guide):
    problems = stray_blocks((ROOT / guide).read_text(), guide)
    assert not problems, "\n".join(problems)


def test_the_check_catches_a_stray_block():
    example = (ROOT / "examples/physics/field.py").read_text()
    page = (
        f"# A page\n\n```python\n{example}```\n\n```text\nprogram output\n```\n\n"
        "```\nsafesvd demo\n```\n\n"  # no language
        "```python\nfrom safesvd_core import compress\n```\n\n"  # code that is no example file
        "- a list item:\n\n  ```bash\n  safesvd plugins\n  ```\n\n"  # indented
        f"~~~bash\n{example}~~~\n\n"  # the wrong language
        f"```python\n{example.replace('128', '64')}```\n\n"  # not word for word
        "```toml\n[model]\n"
    )  # unclosed
    problems = stray_blocks(page)
    assert [problem.split(": ", 1)[0] for problem in problems] == [
        "page:22",
        "page:26",
        "page:32",
        "page:36",
        "page:51",
        "page:66",
    ], "\n".join(problems)
    assert "no language" in problems[0] and all(
        "neither an example file" in problems[i] for i in (0, 1, 2, 5)
    )
    assert "use ```python" in problems[3] and "differs from examples/physics/field.py" in problems[4]
    assert stray_blocks(page.split("```\nsafesvd demo")[0]) == []


def test_every_example_is_shown_in_a_page_and_run_or_listed_as_not_run():
    shown = _shown()
    for example in _examples():
        assert example in shown, f"examples/{example} is in no page"
        assert example in RUNS or example in NOT_RUN or example in RUN_BY or example.endswith(".toml"), (
            f"examples/{example} is neither run nor listed in NOT_RUN"
        )
    for table in (RUNS, NOT_RUN, RUN_BY, NEEDS, INPUTS):
        assert set(table) <= set(_examples()), f"no such example: {sorted(set(table) - set(_examples()))}"
    assert set(RUN_BY.values()) <= set(RUNS) and not set(RUNS) & set(NOT_RUN)


@pytest.mark.parametrize("example", _examples())
def test_every_example_is_valid_code(example, tmp_path):
    path = ROOT / "examples" / example
    if path.suffix == ".py":
        py_compile.compile(str(path), cfile=str(tmp_path / "compiled.pyc"), doraise=True)
    elif path.suffix == ".sh":
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    else:
        tomllib.loads(path.read_text())


def test_the_entry_point_of_the_physics_page_is_the_enstrophy_package():
    shown = tomllib.loads((ROOT / "examples/physics/entry-point.toml").read_text())
    package = tomllib.loads((ROOT / "examples/safesvd-enstrophy/pyproject.toml").read_text())
    assert shown["project"]["entry-points"] == package["project"]["entry-points"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    pytest.importorskip("h5py", reason="the data extra (h5py) is not installed")
    pytest.importorskip("matplotlib", reason="the plots extra (matplotlib) is not installed")
    root = tmp_path_factory.mktemp("examples-run")
    for folder in sorted((ROOT / "examples").iterdir()):
        if folder.is_dir() and folder.name not in PACKAGES:
            shutil.copytree(
                folder,
                root / "examples" / folder.name,
                ignore=shutil.ignore_patterns(
                    "*.safetensors",
                    "__pycache__",
                    "compressed",
                    "*-out",
                    ".hypothesis",
                    "*.h5",
                    "run",
                    "my-run",
                    "ckpt",
                ),
            )
    return root


@pytest.mark.slow
@pytest.mark.parametrize("example", list(RUNS))
def test_the_example_runs(workspace, example):
    if example in NEEDS:
        pytest.importorskip(
            NEEDS[example], reason=f"examples/{example} needs {NEEDS[example]}, which is not installed"
        )
    folder, extra, tiny = RUNS[example]
    script = workspace / "examples" / example
    for file, text_from, text_to in tiny:
        path = workspace / "examples" / file
        text = path.read_text()
        assert text_from in text, f"examples/{file} no longer holds {text_from!r}: update RUNS"
        path.write_text(text.replace(text_from, text_to))
    where = workspace if folder == "." else workspace / "examples" / folder
    if example in INPUTS:
        INPUTS[example](where)
    # one intra-op thread: on a shared 2-core machine, OpenMP threads spinning against other processes
    # slow these small runs down tenfold
    environment = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        **extra,
        "MPLBACKEND": "Agg",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    if script.suffix == ".sh":
        command = ["bash", "-e", str(script)]
    elif script.name.startswith("test_"):
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(script)]
    else:
        command = [sys.executable, str(script)]
    answer = subprocess.run(command, cwd=where, env=environment, capture_output=True, text=True, timeout=600)
    assert answer.returncode == 0, f"{example} failed:\n{answer.stdout[-3000:]}\n{answer.stderr[-3000:]}"
    if example in PRINTS:
        assert re.search(PRINTS[example], answer.stdout), f"{example} printed:\n{answer.stdout[-3000:]}"


def test_the_recipes_guide_lists_every_option_of_every_recipe_with_its_default():
    import attrs

    from safesvd_core import registry

    text = (ROOT / "docs/recipes.md").read_text()
    sections = {
        match.group(1): body
        for match, body in zip(
            re.finditer(r"^## `([\w-]+)`.*$", text, re.M), re.split(r"^## `[\w-]+`.*$", text, flags=re.M)[1:]
        )
    }
    for name in registry("recipe").names():
        body = sections.get(name) or sections[name.removesuffix("-balanced")]
        for field in attrs.fields(registry("recipe").get(name)):
            factory = field.default.factory if isinstance(field.default, attrs.Factory) else None
            default = field.default if factory is None else factory()
            shown = "required" if default is attrs.NOTHING else f"`{default!r}`"
            if factory is not None and getattr(factory, "__module__", "builtins") != "builtins":
                shown = f"`{factory.__name__}()`"  # a named factory: its call, not its long value
            assert f"| `{field.name}` | {shown} |" in body, (
                f"docs/recipes.md: {name} option {field.name} = {default!r}"
            )
