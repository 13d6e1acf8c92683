"""Video networks: the VideoRecognizer contract, weights from local files, the registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from reskd_lightning.models import SlowOnly, TSN, VideoRecognizer, build_model, list_models, load_weights


@pytest.mark.parametrize("resolution, side", [(112, 4), (64, 2)])
def test_tsn_feature_map_is_five_dimensional_at_any_resolution(resolution: int, side: int) -> None:
    model = TSN(5, backbone="resnet18").eval()
    out = model(torch.randn(2, 3, 3, resolution, resolution))
    assert out.features.shape == (2, 512, 3, side, side)
    assert out.logits.shape == (2, 5)
    assert torch.allclose(out.logits, model.forward_head(out.features))


def test_tsn_frames_are_independent_and_head_averages_segments() -> None:
    model = TSN(3, backbone="resnet18").eval()
    clip = torch.randn(1, 3, 2, 64, 64)
    features = model.forward_features(clip)
    frame_1 = model.forward_features(clip[:, :, 1:2])
    assert torch.allclose(features[:, :, 1:2], frame_1, atol=1e-5)
    pooled = features.mean((2, 3, 4))
    assert torch.allclose(model.cls_head.fc(pooled), model.forward_head(features), atol=1e-6)


def test_slowonly_runs_at_low_resolution_with_a_narrow_stem() -> None:
    model = SlowOnly(4, base_channels=8)
    out = model(torch.randn(1, 3, 4, 64, 64))
    assert out.features.shape == (1, 256, 4, 2, 2) and out.logits.shape == (1, 4)
    out.logits.sum().backward()
    assert model.backbone.blocks[0].conv.weight.grad is not None


def test_recognizer_refuses_a_four_dimensional_input() -> None:
    with pytest.raises(ValueError, match=r"TSN expects a clip of shape \[N, C, T, H, W\], got shape \(2, 3, 8, 8\)"):
        TSN(2, backbone="resnet18")(torch.randn(2, 3, 8, 8))


def test_tsn_loads_a_plain_torchvision_resnet_state_dict(tmp_path: Path) -> None:
    resnet = torchvision.models.resnet18(num_classes=1000)
    torch.save(resnet.state_dict(), tmp_path / "resnet18_imagenet.pth")
    model = TSN(7, backbone="resnet18", pretrained=str(tmp_path / "resnet18_imagenet.pth"))
    assert torch.equal(model.backbone.conv1.weight, resnet.conv1.weight)
    assert model.cls_head.fc.weight.shape == (7, 512)  # the classifier is new for the new classes


def test_weights_round_trip_through_a_lightning_style_checkpoint(tmp_path: Path) -> None:
    source = TSN(3, backbone="resnet18")
    torch.save({"state_dict": {f"student.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "x.ckpt")
    target = TSN(3, backbone="resnet18")
    load_weights(target, tmp_path / "x.ckpt")
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_weight_mismatch_names_the_file_and_the_keys(tmp_path: Path) -> None:
    torch.save(TSN(3, backbone="resnet34").state_dict(), tmp_path / "r34.pth")
    with pytest.raises(ValueError, match=r"r34.pth do not match TSN:\n  unexpected keys \(\d+\): backbone.layer1.2"):
        load_weights(TSN(3, backbone="resnet18"), tmp_path / "r34.pth")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_weights(TSN(3, backbone="resnet18"), tmp_path / "nope.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth"):
        load_weights(TSN(3, backbone="resnet18"), tmp_path / "garbage.pth")


def test_registry_builds_by_name_and_lists_known_names_on_error() -> None:
    assert {"tsn_r18", "tsn_r50", "tsn_r152", "slowonly_r50"} <= set(list_models())
    assert list_models("tsn_r1*") == ["tsn_r101", "tsn_r152", "tsn_r18"]
    model = build_model("tsn_r18", num_classes=2)
    assert isinstance(model, VideoRecognizer) and model.feature_dim == 512
    with pytest.raises(KeyError, match="unknown model 'tsn_r19'; known models: .*tsn_r18"):
        build_model("tsn_r19", num_classes=2)
    with pytest.raises(ValueError, match="unknown TSN backbone 'vgg16'"):
        TSN(2, backbone="vgg16")
