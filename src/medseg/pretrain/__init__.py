"""Self-supervised pretraining on unlabelled images, for fine-tuning (``medseg train --init``)."""

from medseg.pretrain.masked import PretrainResult, load_volumes, mask_blocks, pretrain_encoder

__all__ = ["PretrainResult", "load_volumes", "mask_blocks", "pretrain_encoder"]
