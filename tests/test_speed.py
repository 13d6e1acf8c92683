"""The speed switches (channels_last, compile, teacher_precision) change nothing beyond floating-point tolerance:
the same logits, the same KD term and loss, the same checkpoint keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from torch import Tensor, nn

from reskd_lightning import FeatureMapKD, ResKDModule, VideoDataModule
from reskd_lightning.models import TSN, SlowOnly, VideoRecognizer


class TinyNet(VideoRecognizer):
    """Conv3d-BN-ReLU and a linear head: what compile has to keep right (train-mode BN, taps, no_grad), in a graph
    that inductor compiles in seconds on two CPU cores (a ResNet takes minutes there)."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.num_classes, self.feature_dim = num_classes, 8
        self.backbone = nn.Sequential(nn.Conv3d(3, 8, 3, stride=(1, 4, 4), padding=1), nn.BatchNorm3d(8), nn.ReLU())
        self.fc = nn.Linear(8, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.fc(features.mean((2, 3, 4)))

SWITCHES = {
    "channels_last": dict(channels_last=True),
    "teacher_bf16": dict(teacher_precision="bf16"),
    "compile_both": dict(compile="both"),
}
#: Relative L2 errors. bf16 keeps 8 bits of mantissa: after 18 layers the teacher's maps agree to a few 1e-2
#: (4e-2 here); the rest to float32 rounding.
TOLERANCE = {"channels_last": 1e-4, "teacher_bf16": 6e-2, "compile_both": 1e-4}


def _pair(network: Any, **switches: Any) -> ResKDModule:
    torch.manual_seed(0)
    return ResKDModule(
        student=network(), teacher=network(), num_classes=4, student_resolution=32, teacher_resolution=64,
        distillers=[FeatureMapKD(weight=100)], teacher_mode="train", **switches,
    )  # fmt: skip


def _step(module: ResKDModule, monkeypatch: pytest.MonkeyPatch) -> dict[str, torch.Tensor]:
    logged: dict[str, torch.Tensor] = {}
    monkeypatch.setattr(module, "log", lambda key, value, *a, **k: logged.__setitem__(key, torch.as_tensor(value)))
    g = torch.Generator().manual_seed(1)
    batch = {"video": torch.randint(0, 256, (2, 3, 2, 64, 64), generator=g, dtype=torch.uint8),
             "label": torch.tensor([0, 3])}  # fmt: skip
    module.train()
    loss = module.training_step(batch, 0)
    loss.backward()
    grad = next(module.student.parameters()).grad.clone()
    logits = module(batch["clips"][32]).logits.detach()
    teacher = module.teacher_forward(batch["clips"][64])
    return {"loss": loss.detach(), "kd": logged["train/distill/feature_map_kd"], "logits": logits, "grad": grad,
            "teacher_features": teacher.features,
            "teacher_running_mean": next(m for m in module.teacher.modules() if hasattr(m, "running_mean")).running_mean}


CASES = [("channels_last", "tsn_r18"), ("teacher_bf16", "tsn_r18"), ("channels_last", "tiny"), ("compile_both", "tiny")]
NETWORKS = {"tsn_r18": lambda: TSN(4, backbone="resnet18", dropout=0.0), "tiny": TinyNet}


@pytest.mark.parametrize(("switch", "network"), [(s, NETWORKS[n]) for s, n in CASES], ids=[f"{s}-{n}" for s, n in CASES])
def test_each_switch_gives_the_same_loss_kd_term_logits_and_gradients(
    switch: str, network: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, fast = _pair(network), _pair(network, **SWITCHES[switch])
    fast.load_state_dict(plain.state_dict())
    want, got = _step(plain, monkeypatch), _step(fast, monkeypatch)
    for key in want:
        # a first-layer weight gradient sums over every pixel of the batch: other kernels add in another order
        tol = TOLERANCE[switch] * (20 if key == "grad" else 1)
        assert got[key].dtype == want[key].dtype == torch.float32, key  # outputs stay float32 for the distillers
        error = (got[key] - want[key]).norm() / want[key].norm().clamp_min(1e-6)  # relative, over the tensor
        assert error < tol, (key, switch, float(error))
    # the teacher's BatchNorm stays in float32 and in train mode (the paper's teacher_mode: train)
    norms = [m for m in fast.teacher.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert all(m.weight.dtype == torch.float32 and m.training for m in norms)


def test_teacher_precision_holds_the_teachers_convolutions_in_the_compute_dtype() -> None:
    module = _pair(lambda: TSN(4, backbone="resnet18"), teacher_precision="bf16")
    assert module.teacher.backbone.conv1.weight.dtype == torch.bfloat16
    assert module.student.backbone.conv1.weight.dtype == torch.float32
    with pytest.raises(ValueError, match=r"teacher_precision must be 'same', 'bf16' or '16', got 'fp8'"):
        _pair(lambda: TSN(4, backbone="resnet18"), teacher_precision="fp8")


def test_channels_last_takes_3d_networks_too(monkeypatch: pytest.MonkeyPatch) -> None:
    def slowonly() -> SlowOnly:
        return SlowOnly(4, depth=50, base_channels=8, dropout=0.0)

    module = _pair(slowonly, channels_last=True)
    conv = next(p for p in module.student.parameters() if p.dim() == 5)
    assert conv.is_contiguous(memory_format=torch.channels_last_3d)


def test_a_fit_with_every_switch_writes_the_same_checkpoint_keys(demo_root: Path, tmp_path: Path) -> None:
    keys = {}
    for name, switches in (("plain", {}), ("fast", dict(channels_last=True, compile="student", teacher_precision="bf16"))):
        # the networks as classes (as LightningCLI's class_path gives them): saved, so predict can rebuild them
        module = _pair(lambda: TinyNet, **switches)
        data = VideoDataModule(demo_data=str(demo_root), num_classes=4, num_segments=2, short_side=64, crop_size=64,
                               batch_size=4, num_workers=0, resolutions=[64, 32])  # fmt: skip
        trainer = pl.Trainer(accelerator="cpu", max_steps=2, limit_val_batches=1, logger=False,
                             enable_progress_bar=False, default_root_dir=tmp_path / name)  # fmt: skip
        trainer.fit(module, datamodule=data)
        ckpt = torch.load(next((tmp_path / name).rglob("*.ckpt")), weights_only=False)
        keys[name] = set(ckpt["state_dict"])
        assert all(v.isfinite().all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert keys["plain"] == keys["fast"]
    # `reskd predict` rebuilds the student with the run's switches (they are the module's hyper-parameters)
    from reskd_lightning.predictions import VideoPredictor

    predictor = VideoPredictor.from_checkpoint(next((tmp_path / "fast").rglob("*.ckpt")))
    assert predictor.module.channels_last and predictor.module.compile_target == "student"
    conv = next(p for p in predictor.module.student.parameters() if p.dim() == 5)
    assert conv.is_contiguous(memory_format=torch.channels_last_3d)
