"""TIERS: one table of rates and limits; Pacer.for_tier reads it."""

from __future__ import annotations

import pytest

from cvbulk.client import TIER_RATES, TIERS, ApiGroup, Pacer, Tier


def test_the_tiers_and_their_rates():
    assert set(TIERS) == {"F0", "S0", "unlimited"}
    s0 = TIERS["S0"]
    assert isinstance(s0, Tier) and s0.name == "S0"
    assert (s0.training_tps, s0.train_project_tps, s0.prediction_store_tps, s0.prediction_nostore_tps) == (
        10.0, 10.0, 10.0, 20.0)
    assert (TIERS["F0"].training_tps, TIERS["F0"].max_projects, TIERS["F0"].max_images_per_project) == (2.0, 2, 5000)
    assert s0.max_tags_per_project == 500 and s0.max_images_per_project == 100_000
    assert all(getattr(TIERS["unlimited"], f) is None for f in ("training_tps", "max_projects"))


def test_tier_rates_are_derived_from_the_table():
    for name, tier in TIERS.items():
        assert TIER_RATES[name] == {group: tier.rate(group) for group in ApiGroup}


@pytest.mark.parametrize("name", sorted(TIERS))
def test_pacer_for_tier_uses_the_table(name):
    pacer = Pacer.for_tier(name)
    for group in ApiGroup:
        limiter = pacer._limiters[group]
        expected = TIERS[name].rate(group)
        assert (limiter.rate if limiter else None) == expected


def test_unknown_tier():
    with pytest.raises(ValueError, match="unknown tier"):
        Pacer.for_tier("S1")
