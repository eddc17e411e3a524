"""A plugin module loaded from an entry point may call ``registry()`` at import (to subclass a
built-in recipe, as examples/architecture/phase.py does): it loads, within seconds, never hangs.

The package is a real distribution built in the test (a ``.dist-info`` with its entry point on
``sys.path``), loaded by a fresh interpreter with a timeout."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PLUGIN = """
from typing import ClassVar

import attrs

from safesvd_core import registry
from safesvd_core.plugin import hookimpl

BASE = registry("recipe").get("safe-svd")  # at import, inside the entry-point load


@attrs.frozen(kw_only=True)
class Derived(BASE):
    name: ClassVar[str] = "derived-at-import"


@hookimpl
def safesvd_recipes():
    return [Derived]
"""

CHECK = """
import sys
sys.path.insert(0, sys.argv[1])
from safesvd_core import registry
derived = registry("recipe").get("derived-at-import")
assert issubclass(derived, registry("recipe").get("safe-svd"))
print("loaded", derived.__name__)
"""


def _distribution(root: Path) -> None:
    (root / "derived_at_import.py").write_text(textwrap.dedent(PLUGIN))
    info = root / "derived_at_import-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: derived-at-import\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[safesvd]\nderived-at-import = derived_at_import\n")


def test_an_entry_point_that_calls_registry_at_import_loads(tmp_path):
    _distribution(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", CHECK, str(tmp_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "loaded Derived" in done.stdout
