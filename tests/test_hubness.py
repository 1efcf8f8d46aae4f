"""Hubness of retrieval (repro.evaluate.retrieval.hubness): even spreads, hubs, bad input."""

import pytest
import torch

from repro.evaluate.retrieval import hubness
from repro.experiments.search import random_hubness


def test_an_even_spread_has_no_hubs():
    top = torch.arange(100).view(50, 2)  # every candidate answers exactly one query
    out = hubness(top, 100)
    assert out["skewness"] == 0.0 and out["never_retrieved"] == 0.0
    assert out["max_occurrence"] == 1 and out["even_occurrence"] == 1.0
    assert out["top1pct_share"] == pytest.approx(0.01)


def test_one_hub_answering_every_query():
    top = torch.stack([torch.zeros(200, dtype=torch.long), torch.arange(1, 201)], dim=1)
    out = hubness(top, 1000)
    assert out["max_occurrence"] == 200 and out["skewness"] > 10
    assert out["never_retrieved"] == pytest.approx(799 / 1000)
    assert out["top1pct_share"] > 0.5


def test_random_rankings_are_nearly_even():
    out = random_hubness(2000, 500, k=10)
    assert abs(out["skewness"]) < 1 and out["never_retrieved"] < 0.01


@pytest.mark.parametrize("top, n", [(torch.tensor([[0, 5]]), 5), (torch.tensor([0, 1]), 5)])
def test_bad_input(top, n):
    with pytest.raises(ValueError, match="hubness"):
        hubness(top, n)
