"""The held-out split of refinement: whole global batches, the last share of each domain's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safesvd_core import ConfigError, Refinement
from safesvd_core.refinement._refine_split import split_items

from test_compress import small_transformer
from test_refine import fresh, options, quiet_compress
from test_rollout import trajectories

labels = st.lists(st.sampled_from(["ns", "sw", "wave"]), min_size=2, max_size=40)
shares = st.floats(min_value=0.05, max_value=0.6)


@given(labels, shares)
def test_each_domain_of_two_batches_or_more_is_held_out_and_trained_on(domains, share):
    items = list(range(len(domains)))
    try:
        fit, held = split_items(items, share, domains)
    except ConfigError:
        assert all(domains.count(domain) < 2 for domain in set(domains))  # no domain can be split
        return
    assert sorted(fit + held) == items and fit == sorted(fit) and held == sorted(held)
    for domain in set(domains):
        members = [i for i in items if domains[i] == domain]
        held_here = [i for i in held if domains[i] == domain]
        if len(members) >= 2:
            assert 1 <= len(held_here) < len(members)
            assert held_here == members[len(members) - len(held_here) :]  # the domain's last batches
            assert len(held_here) == min(len(members) - 1, max(1, round(share * len(members))))
        else:
            assert not held_here


@given(st.integers(min_value=2, max_value=60), shares)
def test_unlabelled_items_hold_out_the_last_share(count, share):
    items = list(range(count))
    fit, held = split_items(items, share)
    expected = min(count - 1, max(1, round(share * count)))
    assert held == items[count - expected :] and fit == items[: count - expected]


@given(st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=12), shares)
def test_global_batches_stay_whole(batch_domains, share):
    world = 2
    domains = [domain for domain in batch_domains for _ in range(world)]
    items = list(range(len(domains)))
    try:
        fit, held = split_items(items, share, domains, world)
    except ConfigError:
        return
    for part in (fit, held):
        assert len(part) % world == 0
        assert all(part[i + 1] == part[i] + 1 and part[i] % world == 0 for i in range(0, len(part), world))


def test_a_count_the_processes_cannot_split_and_a_domain_set_that_cannot_be_split_are_refused():
    with pytest.raises(ConfigError, match="multiple of 2"):
        split_items(list(range(5)), 0.2, None, 2)
    with pytest.raises(ConfigError, match="at least 2 items .* in 3 domains"):
        split_items([0, 1, 2], 0.2, ["a", "b", "c"])
    assert split_items([0, 1, 2], 0.0, ["a", "b", "c"]) == ([0, 1, 2], [])


def test_refinement_on_items_sorted_by_domain_scores_every_domain():
    model = small_transformer()
    items = fresh(samples=96, batch=8)  # 12 items: 6 of "calm", then 6 of "storm"
    labelled = [(*item, "calm" if index < 6 else "storm") for index, item in enumerate(items)]
    calibration = [(*item, "calm") for item in trajectories(steps=2)]
    result = quiet_compress(
        model,
        calibration,
        ratio=0.4,
        adapter_options=options(model),
        refine=Refinement(labelled, 4, held_out=0.25, eval_every=2),
    )
    assert result.reports["refine"]["items"]["held_out_domains"] == {"calm": 2, "storm": 2}
