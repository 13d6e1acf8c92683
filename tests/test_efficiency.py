"""Multiply-adds, parameters and throughput: the numbers the efficiency tables are made of."""

from __future__ import annotations

import pytest
import torchvision

from reskd_lightning.cli import main
from reskd_lightning.efficiency import count_macs, count_parameters, efficiency, throughput
from reskd_lightning.models import TSN


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


def test_throughput_counts_clips_and_restores_the_mode() -> None:
    tsn = TSN(4, backbone="resnet18").train()
    rate = throughput(tsn, 32, 2, batch=2, warmup=1, iters=2)
    assert rate > 0 and tsn.training


def test_flops_command_prints_the_table(capsys: pytest.CaptureFixture) -> None:
    main(["flops", "--model", "tsn_r18", "--resolution", "112", "64", "--frames", "4", "--num-classes", "10"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "res", "frames", "GMACs", "params(M)"]
    row_112, row_64 = lines[1].split(), lines[2].split()
    assert row_112[:3] == ["tsn_r18", "112", "4"] and row_64[:3] == ["tsn_r18", "64", "4"]
    assert float(row_112[3]) > 2.5 * float(row_64[3])
    with pytest.raises(KeyError, match="unknown model 'tsn_r19'"):
        main(["flops", "--model", "tsn_r19"])


def test_counting_leaves_every_submodule_in_its_own_mode() -> None:
    # A ResKD teacher: eval, except BatchNorm, which keeps training (teacher_mode="bn_train").
    from torch.nn.modules.batchnorm import _BatchNorm

    teacher = TSN(4, backbone="resnet18").eval()
    for m in teacher.modules():
        if isinstance(m, _BatchNorm):
            m.train()
    before = {name: m.training for name, m in teacher.named_modules()}
    count_macs(teacher, 32, 2)
    throughput(teacher, 32, 2, batch=1, warmup=0, iters=1)
    assert {name: m.training for name, m in teacher.named_modules()} == before
