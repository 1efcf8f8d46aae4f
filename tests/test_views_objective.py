"""repro.views.objective: Figure 3 in numpy agrees with clip_loss, the gradient with its closed form, and the loss
of random features sits at ln N."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import torch

from repro.losses import clip_loss
from repro.views import objective as view


def test_figure3_in_numpy_is_clip_loss() -> None:
    check = view.pseudocode_check()
    assert list(check["dtype"]) == ["float64", "float32"]
    assert check["|difference|"].iloc[0] < 1e-10 and check["|difference|"].iloc[1] < 1e-5


def test_figure3_loss_of_a_perfect_batch_is_small() -> None:
    n = 8
    eye = np.eye(n)
    assert view.figure3_loss(eye, eye, np.eye(n), np.eye(n), math.log(100)) < 1e-3
    # one image and one text, the softmax over one entry: no loss
    assert view.cross_entropy_loss(np.array([[3.0]]), np.array([0]), axis=0) == 0.0


def test_autograd_agrees_with_the_closed_form_gradient() -> None:
    grads = view.gradient_check()
    assert (grads["|difference|"] < 1e-12).all()
    assert grads.set_index("gradient").loc["d loss / d t", "autograd"] != 0


def test_random_features_cost_ln_n_at_scale_one() -> None:
    frame = view.chance_losses(sizes=(4, 64, 4096), scales=(1.0,), dim=64)
    assert np.allclose(frame["loss"], frame["ln_n"], atol=0.05)
    gen = torch.Generator().manual_seed(1)
    image, text = torch.randn(16, 8, generator=gen), torch.randn(16, 8, generator=gen)
    assert math.isclose(clip_loss(image, text, torch.tensor(1.0)).item(),
                        view.random_features_loss(16, 8, 1.0, torch.Generator().manual_seed(1)), rel_tol=1e-6)


def test_softmax_rows_and_figures() -> None:
    p = view.match_probabilities()
    assert list(p.values()) == sorted(p.values()) and 0 < min(p.values()) and max(p.values()) < 1
    assert math.isclose(view.row_softmax(view.EASY_ROW, 3.0).sum(), 1.0)
    assert view.row_loss(view.HARD_ROW, 1000.0) > view.row_loss(view.HARD_ROW, 30.0)  # a mistake punished hard
    assert len(view.temperature_figure().axes) == 2
    fig = view.chance_figure(view.chance_losses(sizes=(2, 4), dim=16), 4)
    assert fig.axes[0].get_xscale() == "log"
    plt.close("all")
