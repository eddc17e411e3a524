"""Every built-in recipe runs the shipped recipe conformance suite (``safesvd_core.testing.recipes``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from safesvd_core.testing.recipes import RecipeConformance


class TestSafeSVD(RecipeConformance):
    plugin_name: ClassVar[str] = "safe-svd"


class TestSafeSVDHeldOut(RecipeConformance):
    """``alpha="auto"``: the tuning phase first, its candidates compressed on a share of the items."""

    plugin_name: ClassVar[str] = "safe-svd"
    options: ClassVar[Mapping[str, Any]] = {"alpha": "auto"}


class TestSafeSVDBalanced(RecipeConformance):
    """Energy balancing needs a domain label per item."""

    plugin_name: ClassVar[str] = "safe-svd-balanced"

    def make_items(self) -> list[Any]:
        return [(x, y, domain) for (x, y), domain in zip(super().make_items(), ("left", "right", "left"))]


class TestPhases(RecipeConformance):
    """A recipe given as its list of phases, by their names."""

    plugin_name: ClassVar[str] = "phases"
    options: ClassVar[Mapping[str, Any]] = {
        "entries": [
            {"name": "probe"},
            {"name": "lambda"},
            {"name": "clean"},
            {"name": "allocate"},
            {"name": "stages", "alpha": 0.7},
        ]
    }


class TestSVD(RecipeConformance):
    plugin_name: ClassVar[str] = "svd"


class TestASVD(RecipeConformance):
    plugin_name: ClassVar[str] = "asvd"


class TestASVDCalibrationLoss(RecipeConformance):
    """ASVD's own search: the asvd-sensitivity phase after the allocation."""

    plugin_name: ClassVar[str] = "asvd"
    options: ClassVar[Mapping[str, Any]] = {"sensitivity": "calibration-loss", "ratios": (0.2, 0.5, 0.8)}


class TestFWSVD(RecipeConformance):
    plugin_name: ClassVar[str] = "fwsvd"


class TestSVDLLM(RecipeConformance):
    plugin_name: ClassVar[str] = "svd-llm"


class TestSVDLLMV2(RecipeConformance):
    plugin_name: ClassVar[str] = "svd-llm-v2"


class TestSAESSVD(RecipeConformance):
    plugin_name: ClassVar[str] = "saes-svd"


class TestDobiSVD(RecipeConformance):
    """One epoch of its training loop keeps the run short."""

    plugin_name: ClassVar[str] = "dobi-svd"
    options: ClassVar[Mapping[str, Any]] = {"epochs": 1}
