"""The fastest honest defaults: device-capability detection (both branches) and user overrides winning."""

from __future__ import annotations

import pytest
import torch

from aelab.utils import device


@pytest.mark.parametrize(
    "caps, expected",
    [({"avx512_bf16": True}, "bf16-mixed"), ({"amx_bf16": True}, "bf16-mixed"), ({}, "32-true")],
)
def test_cpu_precision_follows_native_bf16(monkeypatch, caps, expected):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps, raising=False)
    assert device.auto_precision("cpu") == expected


def test_cpu_detection_falls_back_to_torch_probes(monkeypatch):
    monkeypatch.delattr(torch.cpu, "get_capabilities", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert device.auto_precision("cpu") == "32-true"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert device.auto_precision("cpu") == "bf16-mixed"


@pytest.mark.parametrize(
    "capability, expected", [((8, 0), "bf16-mixed"), ((9, 0), "bf16-mixed"), ((7, 5), "32-true")]
)
def test_gpu_precision_needs_ampere(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    assert device.auto_precision("gpu") == expected
    assert device.auto_precision("auto") == expected  # auto picks the GPU when there is one


def test_config_default_and_user_overrides_win(make_cfg, monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True}, raising=False)
    cfg = make_cfg(["model=conv_ae"])
    assert cfg.trainer.precision == "bf16-mixed"
    assert (
        cfg.callbacks.channels_last._target_ == "aelab.callbacks.ChannelsLast"
        and "compile" not in cfg.callbacks
    )
    cfg = make_cfg(["model=conv_ae", "trainer.precision=32-true", "callbacks=[default,compile]",
                    "callbacks.channels_last=null", "callbacks.compile.mode=max-autotune"])  # fmt: skip
    assert cfg.trainer.precision == "32-true"
    assert cfg.callbacks.compile.mode == "max-autotune" and cfg.callbacks.channels_last is None
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {}, raising=False)
    assert make_cfg([]).trainer.precision == "32-true"


def test_precision_reaches_the_trainer_and_channels_last_the_weights(make_cfg):
    from hydra.utils import instantiate

    cfg = make_cfg(["model=conv_ae", "trainer.precision=bf16-mixed"])
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[])
    assert trainer.precision == "bf16-mixed"
    from aelab.callbacks import ChannelsLast
    from aelab.module import AutoencoderModule

    module = AutoencoderModule(instantiate(cfg.model))
    ChannelsLast().setup(trainer, module, "fit")
    conv = next(
        m for m in module.net.encoder.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[1] > 1
    )
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    mlp = AutoencoderModule(instantiate(make_cfg(["model=ae"]).model))
    ChannelsLast().setup(trainer, mlp, "fit")  # nothing to do without convolutions
    assert all(p.is_contiguous() for p in mlp.parameters())
