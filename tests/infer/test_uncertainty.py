"""Entropy and mutual information against SciPy's entropy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy

from medseg.infer.sliding_window import WindowSettings, sliding_window_predict
from medseg.infer.uncertainty import member_entropy, mutual_information


def test_member_entropy_matches_scipy_normalised():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=50).T  # (K, N)
    ours = member_entropy(torch.from_numpy(p), "softmax", dim=0).numpy()
    np.testing.assert_allclose(ours, entropy(p, axis=0) / math.log(4), rtol=1e-6)
    assert ours.min() >= 0
    assert ours.max() <= 1


def test_binary_entropy_for_sigmoid_regions():
    p = torch.tensor([[0.5], [0.9]])
    expected = (entropy([0.5, 0.5]) + entropy([0.9, 0.1])) / 2 / math.log(2)
    assert float(member_entropy(p, "sigmoid", dim=0)[0]) == pytest.approx(expected, rel=1e-6)


def test_mutual_information_zero_when_members_agree_positive_when_not():
    class Fixed(torch.nn.Module):
        def __init__(self, logits):
            super().__init__()
            self.logits = torch.tensor(logits)

        def forward(self, x):
            return self.logits.view(1, -1, 1, 1, 1).expand(x.shape[0], -1, *x.shape[2:]).clone()

    image = torch.zeros(1, 4, 4, 4)
    settings = WindowSettings(patch_size=(4, 4, 4))
    agree = sliding_window_predict(
        [Fixed([1.0, 0.0]), Fixed([1.0, 0.0])], image, settings, num_classes=2, track_entropy=True
    )
    differ = sliding_window_predict(
        [Fixed([3.0, 0.0]), Fixed([0.0, 3.0])], image, settings, num_classes=2, track_entropy=True
    )
    mi_agree = mutual_information(agree.probabilities, agree.mean_member_entropy, "softmax")
    mi_differ = mutual_information(differ.probabilities, differ.mean_member_entropy, "softmax")
    assert float(mi_agree.abs().max()) < 1e-6
    p = torch.softmax(torch.tensor([3.0, 0.0]), 0).numpy()
    expected = (entropy([0.5, 0.5]) - entropy(p)) / math.log(2)
    np.testing.assert_allclose(mi_differ.numpy(), expected, rtol=1e-5)
