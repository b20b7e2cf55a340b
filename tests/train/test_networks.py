"""Network registry, shapes from the plan, deep-supervision outputs, gradient checkpointing."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from monai.networks.blocks.dynunet_block import UnetBasicBlock, UnetResBlock
from torch import nn

from medseg.errors import ConfigError
from medseg.plan.plan import NetworkConfig
from medseg.train.networks import (
    available_networks,
    build_network,
    output_list,
    register_network,
)


def _config(ndim: int = 3, **kwargs) -> NetworkConfig:
    return NetworkConfig(
        filters=(4, 8, 16, 32),
        kernel_sizes=((3,) * ndim,) * 4,
        strides=((1,) * ndim,) + ((2,) * ndim,) * 3,
        **kwargs,
    )


@pytest.mark.parametrize("heads", [1, 2])
def test_dynunet_deep_supervision_outputs_at_decreasing_resolution(heads: int) -> None:
    net = build_network(_config(deep_supervision_heads=heads), 2, 3, 3)
    outputs = output_list(net(torch.randn(2, 2, 16, 16, 16)), 3)
    assert len(outputs) == 1 + heads
    for i, out in enumerate(outputs):
        assert out.shape == (2, 3, 16 // 2**i, 16 // 2**i, 16 // 2**i)


def test_dynunet_eval_returns_full_resolution_logits() -> None:
    net = build_network(_config(), 1, 4, 3).eval()
    out = net(torch.randn(1, 1, 16, 16, 8))
    assert isinstance(out, torch.Tensor)
    assert out.shape == (1, 4, 16, 16, 8)


def test_dynunet_2d_and_anisotropic_strides() -> None:
    cfg = NetworkConfig(
        filters=(4, 8, 16),
        kernel_sizes=((1, 3, 3), (3, 3, 3), (3, 3, 3)),
        strides=((1, 1, 1), (1, 2, 2), (2, 2, 2)),
        deep_supervision=False,
    )
    net = build_network(cfg, 1, 2, 3)
    assert net(torch.randn(1, 1, 8, 16, 16)).shape == (1, 2, 8, 16, 16)
    net2d = build_network(_config(ndim=2), 1, 2, 2)
    assert [o.shape[-1] for o in output_list(net2d(torch.randn(2, 1, 32, 32)), 2)] == [32, 16, 8]


def test_residual_variant_uses_residual_blocks() -> None:
    plain = build_network(_config(), 1, 2, 3)
    residual = build_network(_config(residual=True), 1, 2, 3)
    assert any(isinstance(m, UnetResBlock) for m in residual.modules())
    assert not any(isinstance(m, UnetResBlock) for m in plain.modules())
    assert any(isinstance(m, UnetBasicBlock) for m in plain.modules())


def test_state_dict_has_no_shared_duplicates() -> None:
    net = build_network(_config(), 1, 2, 3)
    pointers = [t.data_ptr() for t in net.state_dict().values() if t.numel()]
    assert len(pointers) == len(set(pointers))


def test_gradient_checkpointing_matches_plain_forward_and_backward() -> None:
    torch.manual_seed(0)
    small = dataclasses.replace(
        _config(),
        filters=(4, 8, 16),
        kernel_sizes=((3, 3, 3),) * 3,
        strides=((1, 1, 1),) + ((2, 2, 2),) * 2,
    )
    plain = build_network(small, 1, 3, 3)
    ckpt = build_network(dataclasses.replace(small, gradient_checkpointing=True), 1, 3, 3)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 1, 8, 8, 8)
    outs = []
    for net in (plain, ckpt):
        out = output_list(net(x), 3)
        sum(o.square().mean() for o in out).backward()
        outs.append((out, {n: p.grad.clone() for n, p in net.named_parameters()}))
    for a, b in zip(outs[0][0], outs[1][0], strict=True):
        torch.testing.assert_close(a, b)
    for name, grad in outs[0][1].items():
        torch.testing.assert_close(grad, outs[1][1][name], rtol=1e-4, atol=1e-6)


def test_output_list_unbinds_monai_stacked_tensor() -> None:
    stacked = torch.randn(2, 3, 4, 8, 8, 8)  # (B, S, C, Z, Y, X) as MONAI DynUNet returns
    outs = output_list(stacked, 3)
    assert len(outs) == 3
    assert torch.equal(outs[1], stacked[:, 1])
    assert output_list(torch.randn(2, 4, 8, 8, 8), 3)[0].shape == (2, 4, 8, 8, 8)


@pytest.mark.parametrize("name", ["attention_unet", "swinunetr"])
def test_other_monai_networks_by_name(name: str) -> None:
    cfg = dataclasses.replace(_config(ndim=2), architecture=name)
    net = build_network(cfg, 1, 3, 2).eval()
    with torch.no_grad():
        out = output_list(net(torch.randn(1, 1, 64, 64)), 2)
    assert out[0].shape == (1, 3, 64, 64)


def test_user_registered_network_and_errors() -> None:
    def tiny(cfg: NetworkConfig, cin: int, cout: int, ndim: int) -> nn.Module:
        return nn.Conv3d(cin, cout, kernel_size=1)

    register_network("tiny_test_net", tiny, overwrite=True)
    assert "tiny_test_net" in available_networks()
    net = build_network(dataclasses.replace(_config(), architecture="tiny_test_net"), 2, 5, 3)
    assert net(torch.randn(1, 2, 4, 4, 4)).shape == (1, 5, 4, 4, 4)
    with pytest.raises(ConfigError, match="already registered"):
        register_network("tiny_test_net", tiny)
    with pytest.raises(ConfigError, match="unknown network architecture 'nope'"):
        build_network(dataclasses.replace(_config(), architecture="nope"), 1, 2, 3)


def test_inconsistent_topology_is_a_config_error() -> None:
    bad = dataclasses.replace(_config(), strides=((1, 1, 1), (2, 2, 2)))
    with pytest.raises(ConfigError, match="stages"):
        build_network(bad, 1, 2, 3)
    with pytest.raises(ConfigError, match="entries"):
        build_network(_config(ndim=2), 1, 2, 3)
