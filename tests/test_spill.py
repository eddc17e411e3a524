"""Low-memory clean statistics: grouped clean passes spilled to disk give the in-memory result."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from safesvd_core import CalibrationStatistics, ConfigError, SpillPolicy, compress
from safesvd_core.statistics._spill import layer_groups, parse_bytes
from safesvd_core.statistics._statistics import (
    EstimatorFactory,  # an internal of spilled statistics, not a plugin name
)

from test_compress import Roughness, small_data, small_transformer


def _sizes(statistics_dir):
    index = json.loads((statistics_dir / "index.json").read_text())
    return index, sorted(statistics_dir.glob("*.safetensors"))


def test_spilled_statistics_give_the_in_memory_result(tmp_path):
    model, data = small_transformer(depth=2), small_data()
    in_memory = compress(model, data, ratio=0.5)
    spilled = compress(model, data, ratio=0.5, statistics=SpillPolicy(tmp_path / "stats", "40KiB"))
    assert in_memory.passes["clean"] == 1 and spilled.passes["clean"] > 2  # one clean pass per group
    assert spilled.ranks == in_memory.ranks
    for name, rank in in_memory.ranks.items():
        if rank is not None:
            torch.testing.assert_close(
                spilled.model.get_submodule(name).weight,
                in_memory.model.get_submodule(name).weight,
                rtol=1e-5,
                atol=1e-6,
            )
    index, files = _sizes(tmp_path / "stats")
    assert set(index["layers"]) == set(in_memory.ranks) and len(files) == len(in_memory.ranks)
    assert spilled.statistics.spilled and not in_memory.statistics.spilled


def test_resume_from_a_spill_directory_skips_the_clean_passes(tmp_path):
    model, data = small_transformer(depth=1), small_data()
    first = compress(model, data, ratio=0.5, statistics=SpillPolicy(tmp_path / "stats", "1MiB"))
    opened = CalibrationStatistics.open(tmp_path / "stats")
    assert set(opened.layers) == set(first.ranks)
    second = compress(model, data, ratio=0.5, statistics=opened)
    assert "clean" not in second.passes and second.ranks == first.ranks
    for name, rank in first.ranks.items():
        if rank is not None:
            torch.testing.assert_close(
                second.model.get_submodule(name).weight, first.model.get_submodule(name).weight
            )
    for name in first.ranks:
        for key, value in first.statistics.layer(name).items():
            torch.testing.assert_close(opened.layer(name)[key], value, rtol=0, atol=0)


def test_spilled_statistics_refuse_merge_save_and_more_rows(tmp_path):
    model, data = small_transformer(depth=1), small_data()
    result = compress(model, data, ratio=0.5, statistics=SpillPolicy(tmp_path / "stats", "1MiB"))
    statistics = result.statistics
    with pytest.raises(ConfigError, match="spilled to"):
        statistics.save(tmp_path / "all.safetensors")
    with pytest.raises(ConfigError, match="spilled to"):
        statistics.merge(statistics)
    with pytest.raises(ConfigError, match="spilled to disk"):
        statistics.update(statistics.layers[0], None)


def test_spill_options_are_checked_before_any_pass(tmp_path):
    model, data = small_transformer(depth=1), small_data()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "x").write_text("")
    with pytest.raises(ConfigError, match="not empty"):
        compress(model, data, ratio=0.5, statistics=SpillPolicy(tmp_path / "old", "1GiB"))
    with pytest.raises(ConfigError, match="size like"):
        SpillPolicy(tmp_path / "new", "lots")
    with pytest.raises(ConfigError, match="CalibrationStatistics .* or a SpillPolicy, got str"):
        compress(model, data, ratio=0.5, statistics="stats/")
    physics = {"physics": [Unbalanceable()], "adapter_options": {"field_description": object()}}
    # before the λ pass, which would raise AssertionError
    with pytest.raises(ConfigError, match="alone take"):
        compress(model, data, ratio=0.5, statistics=SpillPolicy(tmp_path / "tiny", 100), **physics)


def test_the_spill_keywords_of_the_last_release_still_work_deprecated(tmp_path):
    model, data = small_transformer(depth=1), small_data()
    with pytest.warns(DeprecationWarning, match=r"statistics=SpillPolicy\(spill_dir, statistics_memory\)"):
        old = compress(model, data, ratio=0.5, statistics_memory="1MiB", spill_dir=tmp_path / "old")
    new = compress(model, data, ratio=0.5, statistics=SpillPolicy(tmp_path / "new", "1MiB"))
    assert old.ranks == new.ranks and old.statistics.spilled
    with pytest.raises(ConfigError, match="go together"):
        compress(model, data, ratio=0.5, statistics_memory="1GiB")
    with pytest.raises(ConfigError, match="give statistics= only"):
        compress(
            model, data, ratio=0.5, spill_dir=tmp_path / "x", statistics_memory=1, statistics=new.statistics
        )


class Unbalanceable(Roughness):
    """A physics term that must never be evaluated."""

    def __call__(self, prediction, reference, field):
        raise AssertionError("a pass over the calibration data ran before the spill groups were checked")


def test_energy_balanced_footprint_counts_one_copy_per_domain():
    make = EstimatorFactory({"energy-balanced": {"inner": ("clean-covariance",)}})
    one = make("clean-covariance", 16, 8).footprint()
    assert one == 16 * 16 * 8
    assert make("energy-balanced", 16, 8).footprint(3) == 3 * one


@pytest.mark.parametrize(
    ("text", "expected"), [("6GiB", 6 * 2**30), ("1.5 MB", 1_500_000), ("512", 512), (42, 42)]
)
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@given(sizes=st.lists(st.integers(1, 100), min_size=1, max_size=30), cap=st.integers(100, 300))
def test_layer_groups_are_consecutive_within_the_cap_and_greedy(sizes, cap):
    order = [f"layer{i}" for i in range(len(sizes))]
    by_name = dict(zip(order, sizes))
    groups = layer_groups(by_name, order, cap)
    assert [name for group in groups for name in group] == order
    assert all(sum(by_name[name] for name in group) <= cap for group in groups)
    # a group closes only when the next layer would overflow it
    for group, following in itertools.pairwise(groups):
        assert sum(by_name[name] for name in group) + by_name[following[0]] > cap


@given(
    sizes=st.lists(st.integers(1, 100), min_size=1, max_size=30),
    joins=st.lists(st.booleans(), min_size=30, max_size=30),
    cap=st.integers(100, 300),
)
def test_siblings_share_a_group_where_they_fit_together(sizes, joins, cap):
    order = [f"layer{i}" for i in range(len(sizes))]
    by_name = dict(zip(order, sizes))
    together: dict[str, str] = {}
    for index, name in enumerate(order):  # joins[i]: layer i reads the input of layer i - 1
        together[name] = together[order[index - 1]] if index and joins[index] else name
    groups = layer_groups(by_name, order, cap, together)
    assert [name for group in groups for name in group] == order
    assert all(sum(by_name[name] for name in group) <= cap for group in groups)
    where = {name: position for position, group in enumerate(groups) for name in group}
    for root in set(together.values()):
        siblings = [name for name in order if together[name] == root]
        if sum(by_name[name] for name in siblings) <= cap:
            assert len({where[name] for name in siblings}) == 1, siblings


def test_spilling_needs_json_able_estimator_options(tmp_path):
    make = EstimatorFactory({"energy-balanced": {"inner": ("clean-covariance",), "note": object()}})
    statistics = CalibrationStatistics.create({"layer": (4, 4)}, ("clean-covariance",), make)
    with pytest.raises(ConfigError, match="JSON-able"):
        statistics.spill(tmp_path / "stats")


def test_balanced_statistics_spill_and_give_the_in_memory_result(tmp_path):
    # energy-balanced carries a tuple option (its inner estimators): the spill index stores it as JSON
    model = small_transformer(depth=1)
    data = [(x, y, domain) for (x, y), domain in zip(small_data(), ("a", "b"))]
    in_memory = compress(model, data, ratio=0.5, recipe="safe-svd-balanced")
    spilled = compress(
        model,
        data,
        ratio=0.5,
        recipe="safe-svd-balanced",
        statistics=SpillPolicy(tmp_path / "stats", "1MiB"),
    )
    assert spilled.ranks == in_memory.ranks
    for name in in_memory.ranks:
        for key, value in in_memory.statistics.layer(name).items():
            torch.testing.assert_close(spilled.statistics.layer(name)[key], value)
