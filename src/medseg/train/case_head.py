"""Case-level classification: a head on the segmentation network's bottleneck, plus metadata.

As in dual-path diagnosis networks (image features and patient data fused before a classifier),
with ``training.classification.target`` set the segmentation network gets a second output:

- the deepest encoder features (the ``bottleneck`` stage's output, ``(B, F, *spatial)``) are
  averaged over space (global average pooling) and layer-normalised, ``(B, F)``;
- the case's metadata (case-table fields, :class:`~medseg.data.case_table.MetadataEncoding`:
  standardised numbers, one-hot categories, a missing-value indicator per field) is appended;
- an MLP (``F + M`` -> ``hidden`` -> LeakyReLU -> ``K`` classes) gives the class logits.

Every training patch carries its case's label (the sampler reports each sample's case), and the
head's cross-entropy, times ``training.classification.weight``, is added to the segmentation
loss: the encoder learns from both. The head reads the bottleneck through a forward hook
(:class:`BottleneckTap`), so the segmentation network's forward pass and weights are those of a
run without classification; its weights go to ``fold_k/case_head.safetensors`` and its
description (classes, metadata encoding) to ``fold_k/case_head.json``.

A whole case is classified from its sliding windows: each window (and mirrored copy) gives a
probability vector from its own pooled features and the case's metadata, and the case's
probability is their mean. Each window is the kind of input the head was trained on (one
patch); averaging the features first would feed the MLP a smoother vector than any it saw.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from medseg._config import from_jsonable, read_json, write_json
from medseg.data.case_table import CaseTable, MetadataEncoding, case_classes, fit_metadata
from medseg.errors import ConfigError, ModelFormatError
from medseg.plan.plan import ClassificationConfig
from medseg.train.dynunet import MedsegDynUNet

HEAD_WEIGHTS = "case_head.safetensors"
HEAD_INFO = "case_head.json"


@dataclass(frozen=True, kw_only=True)
class CaseHeadInfo:
    """What a fold's head predicts and how it encodes metadata (``case_head.json``).

    Attributes
    ----------
    target : str
        The case-table column predicted.
    classes : tuple of str
        Class names, in logit order.
    metadata : MetadataEncoding
        Fitted on the fold's training cases.
    features : int
        Channels of the bottleneck.
    hidden : int
        Width of the MLP's hidden layer.
    dropout : float
        Dropout probability on the MLP's input and hidden layer (training only).
    """

    target: str
    classes: tuple[str, ...]
    metadata: MetadataEncoding
    features: int
    hidden: int
    dropout: float = 0.0


class CaseHead(nn.Module):
    """Pooled bottleneck features + encoded metadata -> class logits.

    Parameters
    ----------
    info : CaseHeadInfo
    """

    def __init__(self, info: CaseHeadInfo) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(info.features)
        width = info.features + info.metadata.width
        self.mlp = nn.Sequential(
            nn.Dropout(info.dropout),
            nn.Linear(width, info.hidden),
            nn.LeakyReLU(0.01),
            nn.Dropout(info.dropout),
            nn.Linear(info.hidden, len(info.classes)),
        )

    def forward(self, pooled: torch.Tensor, metadata: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` from pooled features ``(B, F)`` and metadata ``(B, M)`` (float32)."""
        return self.mlp(torch.cat([self.norm(pooled.float()), metadata.float()], dim=1))


def pool(features: torch.Tensor) -> torch.Tensor:
    """Global average pooling: ``(B, F, *spatial)`` -> ``(B, F)`` float32."""
    return features.float().flatten(2).mean(2)


class BottleneckTap:
    """Records the output of a network's ``bottleneck`` stage at every forward pass.

    ``features`` holds the last output (``(B, F, *spatial)``, with its autograd graph in
    training); inside :meth:`collect` every forward's pooled features are also appended, detached,
    to the yielded list.

    Raises
    ------
    ConfigError
        The network has no bottleneck stage (only the ``dynunet`` family has one).
    """

    def __init__(self, net: nn.Module) -> None:
        if not isinstance(net, MedsegDynUNet):
            raise ConfigError(
                f"case-level classification needs a network with a bottleneck stage "
                f"(dynunet, resenc_unet, hybrid_unet), not {type(net).__name__}"
            )
        self.features: torch.Tensor | None = None
        self._bag: list[torch.Tensor] | None = None
        self._handle = net.bottleneck.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        self.features = output
        if self._bag is not None:
            self._bag.append(pool(output.detach()).cpu())

    @contextmanager
    def collect(self) -> Iterator[list[torch.Tensor]]:
        """Collect the pooled features ``(B, F)`` of every forward pass inside the block."""
        self._bag = []
        try:
            yield self._bag
        finally:
            self._bag = None

    def take(self) -> torch.Tensor:
        """The last forward's bottleneck output (forgotten after this call)."""
        if self.features is None:
            raise RuntimeError("the network has not run since the last take()")
        features, self.features = self.features, None
        return features

    def remove(self) -> None:
        self._handle.remove()


def bottleneck_channels(net: nn.Module) -> int:
    """Channels of a ``MedsegDynUNet``'s bottleneck output (its last filter count)."""
    return int(net.filters[-1]) if isinstance(net, MedsegDynUNet) else 0


class CaseClassifier:
    """The training side of the head: labels, metadata and loss for a fold's training cases.

    Parameters
    ----------
    net : MedsegDynUNet
        The segmentation network (the head is attached as ``net.case_head``, so checkpoints and
        the optimizer include it).
    settings : ClassificationConfig
    table : CaseTable
    train_ids : sequence of str
        The fold's training cases: case index ``i`` of a batch refers to ``train_ids[i]``.
    labelled_ids : sequence of str
        Every labelled case (the classes are those of all of them, so every fold has the same).
    """

    def __init__(
        self,
        net: nn.Module,
        settings: ClassificationConfig,
        table: CaseTable,
        train_ids: Sequence[str],
        labelled_ids: Sequence[str],
    ) -> None:
        target = str(settings.target)
        classes, targets = case_classes(table, target, list(labelled_ids))
        self.tap = BottleneckTap(net)
        self.info = CaseHeadInfo(
            target=target,
            classes=classes,
            metadata=fit_metadata(table, settings.metadata, list(train_ids)),
            features=bottleneck_channels(net),
            hidden=settings.hidden,
            dropout=settings.dropout,
        )
        self.table = table
        self.weight = settings.weight
        self.head = CaseHead(self.info)
        net.case_head = self.head
        self.case_index = {case_id: i for i, case_id in enumerate(train_ids)}
        self.targets = torch.tensor([targets[c] for c in train_ids], dtype=torch.long)
        self.metadata = torch.from_numpy(self.info.metadata.encode_cases(table, list(train_ids)))

    def to(self, device: torch.device) -> CaseClassifier:
        """Move the head, the labels and the metadata to ``device``."""
        self.head.to(device)
        self.targets, self.metadata = self.targets.to(device), self.metadata.to(device)
        return self

    def loss(self, case_index: torch.Tensor) -> torch.Tensor:
        """Weighted cross-entropy of the last forward's samples, ``case_index`` shape ``(B,)``."""
        index = case_index.to(self.targets.device).long()
        known = index >= 0  # -1: an unlabelled case of semi-supervised training
        pooled = pool(self.tap.take())[known]
        if not len(pooled):
            return pooled.sum()
        logits = self.head(pooled, self.metadata[index[known]])
        return self.weight * F.cross_entropy(logits, self.targets[index[known]])

    def detach_from(self, net: nn.Module) -> None:
        """Remove the head and the hook from ``net`` (before its segmentation weights are saved)."""
        self.tap.remove()
        if hasattr(net, "case_head"):
            del net.case_head

    def save(self, fold_path: Path) -> None:
        """Write ``case_head.safetensors`` and ``case_head.json`` into the fold folder."""
        from medseg.train.model_folder import save_weights

        save_weights(self.head, Path(fold_path) / HEAD_WEIGHTS)
        write_json(self.info, Path(fold_path) / HEAD_INFO)


def case_classifier(
    net: nn.Module,
    settings: ClassificationConfig,
    table: CaseTable | None,
    train_ids: Sequence[str],
    labelled_ids: Sequence[str],
    *,
    parallel: bool = False,
) -> CaseClassifier | None:
    """A fold's classifier on ``net``'s device when ``settings.target`` is set, else None.

    Raises
    ------
    ConfigError
        No case table, or data-parallel training (``parallel``).
    """
    if settings.target is None:
        return None
    if table is None:
        raise ConfigError(
            f"training.classification.target is {settings.target!r} but no case table was "
            "given; put cases.csv in the dataset folder or pass --case-table FILE"
        )
    if parallel:
        raise ConfigError("case-level classification is not available with data-parallel training")
    classifier = CaseClassifier(net, settings, table, train_ids, labelled_ids)
    return classifier.to(next(net.parameters()).device)


def load_case_head(
    fold_path: Path, device: torch.device | str = "cpu"
) -> tuple[CaseHead, CaseHeadInfo]:
    """A fold's trained head (eval mode) and its description.

    Raises
    ------
    ModelFormatError
        ``case_head.json`` or the weights missing, invalid or not fitting each other.
    """
    from medseg.train.model_folder import load_weights

    path = Path(fold_path) / HEAD_INFO
    if not path.is_file():
        raise ModelFormatError(f"{path}: missing; this fold was trained without classification")
    try:
        info = from_jsonable(CaseHeadInfo, read_json(path), source=str(path))
    except ConfigError as err:
        raise ModelFormatError(str(err)) from err
    head = CaseHead(info)
    load_weights(head, Path(fold_path) / HEAD_WEIGHTS)
    return head.to(device).eval(), info


@torch.no_grad()
def window_probabilities(
    head: CaseHead, pooled: Sequence[torch.Tensor], metadata: np.ndarray
) -> torch.Tensor:
    """Per-window class probabilities ``(N, K)`` from pooled features and a case's metadata.

    Parameters
    ----------
    head : CaseHead
    pooled : sequence of Tensor, each (B_i, F)
        Pooled bottleneck features of the case's windows (all batches).
    metadata : ndarray, shape (M,)
        The case's encoded metadata.
    """
    features = torch.cat([p.float() for p in pooled]).to(next(head.parameters()).device)
    meta = torch.from_numpy(np.asarray(metadata, np.float32)).to(features.device)
    return torch.softmax(head(features, meta.expand(len(features), -1)), dim=1).cpu()


def case_probabilities(
    head: CaseHead,
    info: CaseHeadInfo,
    pooled: Sequence[torch.Tensor],
    values: Mapping[str, str | None],
) -> np.ndarray:
    """A case's class probabilities ``(K,)``: the mean over its windows (see module docstring)."""
    return window_probabilities(head, pooled, info.metadata.encode(values)).mean(0).numpy()
