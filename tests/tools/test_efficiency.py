"""Multiply-adds, parameters and measured time: the numbers the efficiency tables are made of."""

from __future__ import annotations

import time

import pytest
import torch
import torchvision
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from reskd_lightning.cli import main
from reskd_lightning.efficiency import (
    count_macs,
    count_parameters,
    efficiency,
    measure_inference,
    random_clip,
    time_repeats,
)
from reskd_lightning.models import TSN


def test_macs_are_a_hand_count_on_a_tiny_conv_net() -> None:
    # conv (1x3x3, 3 -> 8 channels, same padding) on 2 frames of 8x8, average pool, linear 8 -> 5.
    net = nn.Sequential(
        nn.Conv3d(3, 8, kernel_size=(1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(8), nn.ReLU(),
        nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(8, 5),
    )  # fmt: skip
    conv = (8 * 2 * 8 * 8) * (3 * 1 * 3 * 3)  # outputs x multiply-adds per output
    linear = 8 * 5
    assert count_macs(net, resolution=8, frames=2) == conv + linear  # norm, activation, pooling not counted
    assert count_parameters(net) == (8 * 3 * 9 + 8) + (2 * 8) + (8 * 5 + 5)
    assert count_macs(net, resolution=16, frames=2) == 4 * conv + linear  # 4x the positions


def test_resnet50_at_224_costs_4_1_gmacs_per_frame() -> None:
    gmacs = count_macs(TSN(1000, backbone="resnet50"), resolution=224, frames=1) / 1e9
    assert gmacs == pytest.approx(4.1, rel=0.03)
    # TSN folds time into the batch and adds only its classifier to the ResNet it wraps.
    assert count_macs(TSN(1000, backbone="resnet50"), 224, 3) == pytest.approx(3 * gmacs * 1e9, rel=1e-3)


def test_tsn_r50_16x112_is_16_frames_of_resnet50_at_112() -> None:
    # Per stage, a 112 px frame costs the 224 px cost times its map's area ratio. The stages see 28/14/7/4 px
    # maps: res5 has 4x4 = 16 positions (not 3.5^2 = 12.25), which is why the total is 17.2, not the
    # 4.1 / 4 * 16 = 16.4-16.5 of the quick estimate.
    tsn = TSN(200, backbone="resnet50")
    total = count_macs(tsn, resolution=112, frames=16) / 1e9
    stages_224 = {"stem": 0.118, "layer1": 0.668, "layer2": 1.028, "layer3": 1.464, "layer4": 0.809}
    area = {"stem": 1 / 4, "layer1": 1 / 4, "layer2": 1 / 4, "layer3": 1 / 4, "layer4": 16 / 49}
    expected = 16 * sum(stages_224[s] * area[s] for s in stages_224)
    assert total == pytest.approx(expected, rel=0.03)
    assert total == pytest.approx(16.5, rel=0.05)
    assert count_macs(tsn, 224, 16) / count_macs(tsn, 112, 16) == pytest.approx(3.8, rel=0.02)


def test_parameters_and_the_report_row() -> None:
    tsn = TSN(200, backbone="resnet18")
    resnet18_without_fc = count_parameters(torchvision.models.resnet18()) - (512 * 1000 + 1000)
    assert count_parameters(tsn) == resnet18_without_fc + 512 * 200 + 200
    tsn.backbone.requires_grad_(False)
    assert count_parameters(tsn, trainable_only=True) == 512 * 200 + 200
    report = efficiency(tsn, 112, 8, name="tsn_r18")
    assert report.row().split() == ["tsn_r18", "112", "8", f"{report.gmacs:.2f}", f"{report.params_m:.2f}"]
    with pytest.raises(ValueError, match="resolution must be a positive integer, got 0"):
        count_macs(tsn, 0, 8)


class Sleeper(nn.Module):
    """A network whose forward takes a known wall-clock time and almost no CPU time; it records its calls."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.scale = nn.Parameter(torch.ones(()))
        self.calls: list[tuple[bool, bool, tuple[int, ...]]] = []

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, torch.is_grad_enabled(), tuple(clip.shape)))
        time.sleep(self.seconds)
        return clip.mean((1, 2, 3, 4))[:, None] * self.scale


def test_measured_throughput_is_the_clips_over_the_median_time() -> None:
    net = Sleeper(0.02).train()
    timing = measure_inference(net, random_clip(16, 3, batch=4), warmup=2, iters=3, name="sleeper")
    # warm-up calls are not timed; every call ran in eval mode without grad on the clip as given
    assert len(net.calls) == 5 and len(timing.seconds) == 3 and len(timing.cpu_seconds) == 3
    assert net.calls == [(False, False, (4, 3, 3, 16, 16))] * 5 and net.training
    assert all(0.02 <= s < 0.5 for s in timing.seconds)  # the wall clock, sleep included
    assert timing.median_s == sorted(timing.seconds)[1]
    assert timing.clips_per_s == pytest.approx(4 / timing.median_s) and timing.clips_per_s <= 4 / 0.02
    assert max(timing.cpu_seconds) < 0.02  # sleeping costs wall time, not CPU time
    row = timing.row()
    assert (row["measurement"], row["resolution"], row["frames"], row["batch"]) == ("sleeper", 16, 3, 4)
    assert row["median_ms"] == pytest.approx(1e3 * timing.median_s) and row["min_ms"] <= row["median_ms"]


def test_time_repeats_interleaves_drops_warmup_and_synchronises_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    fns = {"a": lambda: log.append("a"), "b": lambda: log.append("b")}
    times = time_repeats(fns, "cpu", warmup=1, iters=2)
    assert log == ["a", "b"] * 3 and {k: (len(w), len(c)) for k, (w, c) in times.items()} == {"a": (2, 2), "b": (2, 2)}
    # On a GPU every call is fenced by a synchronisation before and after (checked without one).
    log.clear()
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: log.append(f"sync {device}"))
    times = time_repeats({"a": lambda: log.append("a")}, "cuda:0", warmup=0, iters=2)
    assert log == ["sync cuda:0", "a", "sync cuda:0"] * 2
    assert times["a"][1] == ()  # CPU time says nothing of a GPU's work: not kept
    with pytest.raises(ValueError, match="need warmup >= 0 and iters >= 1"):
        time_repeats(fns, "cpu", warmup=0, iters=0)


def test_flops_command_prints_the_table(capsys: pytest.CaptureFixture) -> None:
    main(["flops", "--model", "tsn_r18", "--resolution", "112", "64", "--frames", "4", "--num-classes", "10"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "res", "frames", "GMACs", "params(M)"]
    row_112, row_64 = lines[1].split(), lines[2].split()
    assert row_112[:3] == ["tsn_r18", "112", "4"] and row_64[:3] == ["tsn_r18", "64", "4"]
    assert float(row_112[3]) > 2.5 * float(row_64[3])
    assert float(row_112[3]) == pytest.approx(count_macs(TSN(10, backbone="resnet18"), 112, 4) / 1e9, abs=0.005)
    with pytest.raises(KeyError, match="unknown model 'tsn_r19'"):
        main(["flops", "--model", "tsn_r19"])


def test_counting_and_timing_leave_every_submodule_in_its_own_mode() -> None:
    # A ResKD teacher: eval, except BatchNorm, which keeps training (teacher_mode="bn_train").
    teacher = TSN(4, backbone="resnet18").eval()
    for m in teacher.modules():
        if isinstance(m, _BatchNorm):
            m.train()
    before = {name: m.training for name, m in teacher.named_modules()}
    count_macs(teacher, 32, 2)
    timing = measure_inference(teacher, random_clip(32, 2), warmup=0, iters=1)
    assert {name: m.training for name, m in teacher.named_modules()} == before
    assert (timing.resolution, timing.frames, timing.batch, timing.network) == (32, 2, 1, "TSN-resnet18")
