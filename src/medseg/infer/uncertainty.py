"""Voxel-wise uncertainty from an ensemble of members (folds x mirror combinations).

Both maps are normalised to [0, 1] by their maximum, ``log K`` for a softmax over ``K``
classes (or ``log 2`` per channel for sigmoid region models, averaged over channels):

- **predictive entropy** ``H(mean_m p_m)``: total uncertainty of the averaged prediction;
- **mutual information** ``H(mean_m p_m) - mean_m H(p_m)``: the part due to members
  disagreeing (epistemic, as in deep-ensemble / MC-dropout BALD). It is 0 when every member
  predicts the same distribution and is never negative (entropy is concave).
"""

from __future__ import annotations

import math

import torch

_EPS = 1e-12


def member_entropy(probs: torch.Tensor, activation: str, *, dim: int = 0) -> torch.Tensor:
    """Normalised entropy of probability maps along the class axis.

    Parameters
    ----------
    probs : torch.Tensor
        Probabilities; ``dim`` is the class (or region) axis of size ``K``.
    activation : {"softmax", "sigmoid"}
        ``softmax``: one categorical distribution over ``K`` classes, divided by ``log K``.
        ``sigmoid``: ``K`` independent Bernoulli channels, mean binary entropy over ``log 2``.
    dim : int
        Class axis.

    Returns
    -------
    torch.Tensor
        ``probs`` without ``dim``, values in [0, 1].
    """
    k = probs.shape[dim]
    p = probs.clamp_min(_EPS)
    if activation == "sigmoid":
        q = (1 - probs).clamp_min(_EPS)
        binary = -(probs * p.log() + (1 - probs) * q.log())
        return binary.mean(dim) / math.log(2)
    if k < 2:
        return torch.zeros_like(probs.select(dim, 0))
    return -(probs * p.log()).sum(dim) / math.log(k)


def mutual_information(
    mean_probs: torch.Tensor, mean_member_entropy: torch.Tensor, activation: str
) -> torch.Tensor:
    """Member disagreement ``H(mean p) - mean H(p_m)``, clipped at 0 against rounding.

    Parameters
    ----------
    mean_probs : torch.Tensor, shape (K, *spatial)
        Probabilities averaged over members.
    mean_member_entropy : torch.Tensor, shape spatial
        Mean over members of :func:`member_entropy`.
    activation : {"softmax", "sigmoid"}

    Returns
    -------
    torch.Tensor, shape spatial, values in [0, 1]
    """
    total = member_entropy(mean_probs, activation, dim=0)
    return (total - mean_member_entropy).clamp_min(0.0)
