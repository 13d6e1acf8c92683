"""The CNN teachers and students: every registered name at any resolution, gradients, weights in and out."""

from __future__ import annotations

import math
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from reskd_lightning.models import VideoRecognizer, build_model, list_models, load_weights
from reskd_lightning.models.backbones import TSM, TSN, X3D, R2Plus1D, SlowFast, SlowOnly
from reskd_lightning.models.backbones.tsm import temporal_shift
from model_helpers import randomize_bn

torch.set_num_threads(2)

CNN_FAMILIES = ("tsn_*", "tsm_*", "slowonly_*", "x3d_*", "slowfast_*", "r2plus1d_*")


def expected_features(name: str, t: int, size: int) -> tuple[int, int, int, int]:
    """Documented feature map ``(C', T', h, w)`` of a registered CNN for a clip of ``t`` frames of ``size`` px."""
    if name.startswith("r2plus1d"):
        return 512, t // 8, size // 16, size // 16
    side = math.ceil(size / 32)
    if name.startswith(("tsn", "tsm")):
        return (512 if name.endswith(("r18", "r34")) else 2048), t, side, side
    if name.startswith("x3d"):
        return 432, t, side, side
    if name.startswith("slowfast"):
        return 2048 + 256, math.ceil(t / 4), side, side
    return 2048, t, side, side  # slowonly


def registered_cnns() -> list[str]:
    return sorted(n for pattern in CNN_FAMILIES for n in list_models(pattern))


def test_every_paper_model_and_modern_cnn_is_registered() -> None:
    assert registered_cnns() == sorted(
        [f"{family}_r{d}" for family in ("tsn", "tsm") for d in (18, 34, 50, 101, 152)]
        + ["slowonly_r50", "x3d_xs", "x3d_s", "x3d_m", "x3d_l", "slowfast_r50", "r2plus1d_r18"]
    )


def test_registry_builds_by_name_and_lists_known_names_on_error() -> None:
    assert list_models("tsn_r1*") == ["tsn_r101", "tsn_r152", "tsn_r18"]
    model = build_model("tsn_r18", num_classes=2)
    assert isinstance(model, TSN) and model.feature_dim == 512 and model.num_classes == 2
    with pytest.raises(KeyError, match="unknown model 'tsn_r19'; known models: .*tsn_r18"):
        build_model("tsn_r19", num_classes=2)


def test_recognizer_refuses_a_four_dimensional_input() -> None:
    with pytest.raises(ValueError, match=r"TSN expects a clip of shape \[N, C, T, H, W\], got shape \(2, 3, 8, 8\)"):
        TSN(2, backbone="resnet18")(torch.randn(2, 3, 8, 8))


def test_tsn_head_averages_the_segments_features() -> None:
    model = TSN(3, backbone="resnet18").eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, 3, 2, 64, 64))
        assert features.shape == (1, 512, 2, 2, 2)
        pooled = features.mean((2, 3, 4))
        assert torch.allclose(model.cls_head.fc(pooled), model.forward_head(features), atol=1e-6)


def test_slowonly_runs_at_low_resolution_with_a_narrow_stem() -> None:
    out = SlowOnly(4, base_channels=8)(torch.randn(1, 3, 4, 64, 64))
    assert out.features.shape == (1, 256, 4, 2, 2) and out.logits.shape == (1, 4)


#: Deep ResNets are checked at 224 px once, on the paper's teacher (TSN-R152); the others at 112 and 96 px.
DEEP_AT_LOW_RESOLUTION_ONLY = ("tsn_r101", "tsm_r101", "tsm_r152")


@pytest.mark.parametrize("name", registered_cnns())
def test_registered_cnn_runs_at_224_112_and_96_px(name: str) -> None:
    model = build_model(name, num_classes=7).eval()
    assert isinstance(model, VideoRecognizer) and model.num_classes == 7
    for size in (112, 96) if name in DEEP_AT_LOW_RESOLUTION_ONLY else (224, 112, 96):
        with torch.no_grad():
            out = model(torch.randn(1, 3, 8, size, size))
        assert tuple(out.features.shape) == (1, *expected_features(name, 8, size)), (name, size)
        assert out.features.shape[1] == model.feature_dim
        assert out.logits.shape == (1, 7)
        assert torch.isfinite(out.logits).all()
        with torch.no_grad():
            assert torch.allclose(out.logits, model.forward_head(out.features)), (name, size)


#: Small members of each family (tiny widths where the builder allows) with a clip each runs on quickly.
SMALL = {
    "TSN": (lambda **kw: TSN(3, backbone="resnet18", **kw), (2, 3, 2, 64, 64)),
    "TSM": (lambda **kw: TSM(3, backbone="resnet18", **kw), (2, 3, 3, 64, 64)),
    "SlowOnly": (lambda **kw: SlowOnly(3, base_channels=8, **kw), (2, 3, 4, 64, 64)),
    "X3D": (lambda **kw: X3D(3, variant="xs", **kw), (2, 3, 4, 64, 64)),
    "SlowFast": (lambda **kw: SlowFast(3, base_channels=8, **kw), (2, 3, 8, 64, 64)),
    "R2Plus1D": (lambda **kw: R2Plus1D(3, **kw), (2, 3, 8, 32, 32)),
}


@pytest.mark.parametrize("family", SMALL)
def test_one_backward_pass_reaches_the_first_layer_and_the_classifier(family: str) -> None:
    build, clip = SMALL[family]
    model = build().train()
    out = model(torch.randn(*clip))
    torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 2])).backward()
    first = next(p for p in model.parameters() if p.requires_grad)
    assert first.grad is not None and first.grad.abs().sum() > 0
    assert model.cls_head.fc.weight.grad is not None and torch.isfinite(model.cls_head.fc.weight.grad).all()


# --- TSM -------------------------------------------------------------------------------------------------------


def test_temporal_shift_moves_one_eighth_of_channels_each_way_with_zero_padding() -> None:
    frames = torch.arange(1.0, 4.0).view(1, 3, 1, 1, 1).expand(1, 3, 16, 1, 1).reshape(3, 16, 1, 1)  # [N*T, C]
    out = temporal_shift(frames, num_frames=3, shift_div=8).view(3, 16)
    assert out[:, :2].tolist() == [[2.0, 2.0], [3.0, 3.0], [0.0, 0.0]]  # from the next frame
    assert out[:, 2:4].tolist() == [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]  # from the previous frame
    assert torch.equal(out[:, 4:], frames.view(3, 16)[:, 4:])
    with pytest.raises(ValueError, match="cannot unfold 3 frame-folded samples into clips of 2 frames"):
        temporal_shift(frames, num_frames=2)


def _neighbour_effect(model: VideoRecognizer, t: int) -> tuple[float, float, float]:
    """How much frame 2's features change when frame 1, frame 3 or a frame of another clip changes."""
    clips = torch.randn(2, 3, t, 64, 64)
    with torch.no_grad():
        base = model.eval().forward_features(clips)
        changes = []
        for clip_index, frame in ((0, 1), (0, 3), (1, 2)):
            perturbed = clips.clone()
            perturbed[clip_index, :, frame] += 1.0
            changes.append((model.forward_features(perturbed) - base)[0, :, 2].abs().max().item())
    return tuple(changes)


@pytest.mark.parametrize("t", [5, 8])
def test_tsm_frame_features_depend_on_neighbour_frames_unlike_tsn(t: int) -> None:
    before, after, other_clip = _neighbour_effect(TSM(3, backbone="resnet18", num_segments=8), t)
    assert before > 1e-3 and after > 1e-3  # the shift mixes frames t-1 and t+1 into frame t
    assert other_clip == 0.0  # folding time into the batch never mixes clips
    assert _neighbour_effect(TSN(3, backbone="resnet18"), t) == (0.0, 0.0, 0.0)


def test_tsm_shifts_every_block_and_every_second_one_in_deep_networks_as_tsm_does() -> None:
    assert len(TSM(2, backbone="resnet50").shifted_blocks) == 3 + 4 + 6 + 3
    assert len(TSM(2, backbone="resnet101").shifted_blocks) == 2 + 2 + 12 + 2


@pytest.mark.parametrize("family", [TSN, TSM])
def test_tsn_and_tsm_load_a_plain_torchvision_resnet_state_dict(family: type, tmp_path: Path) -> None:
    resnet = torchvision.models.resnet18(num_classes=1000)
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    model = family(7, backbone="resnet18", pretrained=str(tmp_path / "resnet18.pth"))
    for key, value in resnet.state_dict().items():
        if not key.startswith("fc."):  # torchvision's ImageNet classifier is not ours
            assert torch.equal(model.backbone.state_dict()[key], value), key
    assert model.cls_head.fc.weight.shape == (7, 512)  # the classifier is new for the new classes
    assert model.state_dict().keys() == TSN(7, backbone="resnet18").state_dict().keys()


# --- weights in and out ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", SMALL)
def test_weights_round_trip_through_a_file(family: str, tmp_path: Path) -> None:
    build, clip = SMALL[family]
    source = build().eval()
    randomize_bn(source)
    torch.save({"state_dict": {f"student.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "m.ckpt")
    as_pretrained = build(pretrained=str(tmp_path / "m.ckpt"))
    loaded = build()
    load_weights(loaded, tmp_path / "m.ckpt")
    x = torch.randn(*clip)
    with torch.no_grad():
        expected = source(x).logits
        assert torch.equal(as_pretrained.eval()(x).logits, expected)
        assert torch.equal(loaded.eval()(x).logits, expected)


def test_pretrained_file_of_another_dataset_keeps_the_backbone_and_renews_the_classifier(tmp_path: Path) -> None:
    source = SlowOnly(10, base_channels=8)
    torch.save(source.state_dict(), tmp_path / "k10.pth")
    model = SlowOnly(4, base_channels=8, pretrained=str(tmp_path / "k10.pth"))
    assert torch.equal(model.backbone.blocks[4].res_blocks[0].branch2.conv_a.weight,
                       source.backbone.blocks[4].res_blocks[0].branch2.conv_a.weight)
    assert model.cls_head.fc.weight.shape == (4, 256)
    wrong_head = r"wrong shapes \(2\): cls_head.fc.weight: file \(10, 256\) vs model \(4, 256\)"
    with pytest.raises(ValueError, match=wrong_head):
        load_weights(SlowOnly(4, base_channels=8), tmp_path / "k10.pth")  # a full checkpoint must match
    wrong_stem = (r"k10.pth do not match SlowOnly:\n  wrong shapes \(\d+\): "
                  r"backbone.blocks.0.conv.weight: file \(8, 3, 1, 7, 7\) vs model \(16, 3, 1, 7, 7\)")
    with pytest.raises(ValueError, match=wrong_stem):
        SlowOnly(4, base_channels=16, pretrained=str(tmp_path / "k10.pth"))


# --- pytorchvideo's model zoo: Kinetics weights by name, offline errors --------------------------------------


@pytest.fixture()
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache, and no network: any download fails as it does offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(url: str, *args, **kwargs) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.mark.parametrize(
    "build, url",
    [
        (lambda: SlowOnly(400, pretrained="kinetics400"), "kinetics/SLOW_8x8_R50.pyth"),
        (lambda: X3D(400, variant="s", pretrained="kinetics400"), "kinetics/X3D_S.pyth"),
        (lambda: SlowFast(400, pretrained="kinetics400"), "kinetics/SLOWFAST_8x8_R50.pyth"),
        (lambda: R2Plus1D(400, pretrained="KINETICS400_V1"), "r2plus1d_18-91a641e6.pth"),
    ],
    ids=["SlowOnly", "X3D", "SlowFast", "R2Plus1D"],
)
def test_offline_download_says_which_url_and_where_to_put_the_file(build, url: str, torch_home: Path) -> None:
    with pytest.raises(RuntimeError) as info:
        build()
    message = str(info.value)
    assert "could not download" in message and url in message
    assert f"place it at {torch_home / Path(url).name}" in message


def test_slowonly_kinetics400_maps_pytorchvideos_slow_r50_file(torch_home: Path) -> None:
    from pytorchvideo.models.hub.resnet import slow_r50

    hub = slow_r50().eval()  # the zoo's architecture, random weights: no download
    randomize_bn(hub)
    torch_home.mkdir(parents=True)
    torch.save({"model_state": hub.state_dict(), "epoch": 196}, torch_home / "SLOW_8x8_R50.pyth")
    model = SlowOnly(400, pretrained="kinetics400").eval()
    x = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        y = x
        for block in hub.blocks[:5]:
            y = block(y)
        torch.testing.assert_close(model(x).logits, hub.blocks[5].proj(y.mean((2, 3, 4))), rtol=1e-4, atol=1e-4)
    renewed = SlowOnly(5, pretrained="kinetics400")  # another dataset: the backbone only
    assert torch.equal(renewed.backbone.blocks[0].conv.weight, hub.blocks[0].conv.weight)


def test_x3d_kinetics400_maps_pytorchvideos_x3d_file_up_to_conv5(torch_home: Path) -> None:
    from pytorchvideo.models.hub.x3d import x3d_xs

    hub = x3d_xs().eval()
    randomize_bn(hub)
    torch_home.mkdir(parents=True)
    torch.save({"model_state": hub.state_dict()}, torch_home / "X3D_XS.pyth")
    model = X3D(400, variant="xs", pretrained="kinetics400").eval()
    x = torch.randn(1, 3, 4, 96, 96)
    with torch.no_grad():
        y = x
        for block in hub.blocks[:5]:
            y = block(y)
        pool = hub.blocks[5].pool
        expected = pool.pre_act(pool.pre_norm(pool.pre_conv(y)))
        torch.testing.assert_close(model.forward_features(x), expected, rtol=1e-4, atol=1e-4)
    assert model.cls_head.fc.weight.shape == (400, 432)  # X3D's 2048-d post-pool projection is not ours


def test_slowfast_kinetics400_maps_pytorchvideos_slowfast_file(torch_home: Path) -> None:
    from pytorchvideo.models.hub.slowfast import slowfast_r50

    hub = slowfast_r50().eval()
    randomize_bn(hub)
    torch_home.mkdir(parents=True)
    torch.save({"model_state": hub.state_dict()}, torch_home / "SLOWFAST_8x8_R50.pyth")
    model = SlowFast(400, pretrained="kinetics400").eval()
    x = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        slow, fast = x[:, :, ::4], x
        for block in hub.blocks[:5]:
            slow, fast = block([slow, fast])
        pooled = torch.cat([slow.mean((2, 3, 4)), fast.mean((2, 3, 4))], dim=1)
        torch.testing.assert_close(model(x).logits, hub.blocks[6].proj(pooled), rtol=1e-4, atol=1e-4)


def test_r2plus1d_kinetics400_name_gives_torchvisions_model(torch_home: Path) -> None:
    reference = torchvision.models.video.r2plus1d_18().eval()
    randomize_bn(reference)
    weights = torchvision.models.video.R2Plus1D_18_Weights.KINETICS400_V1
    torch_home.mkdir(parents=True)
    torch.save(reference.state_dict(), torch_home / Path(weights.url).name)
    model = R2Plus1D(400, pretrained="KINETICS400_V1").eval()
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, reference(x), rtol=1e-4, atol=1e-4)


# --- errors that show the bad value ------------------------------------------------------------------------------


def test_bad_arguments_name_the_value_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown X3D variant 'xxl'; choose one of \['l', 'm', 's', 'xs'\]"):
        X3D(2, variant="xxl")
    with pytest.raises(ValueError, match="unknown TSM backbone 'resnet20'; choose one of"):
        TSM(2, backbone="resnet20")
    with pytest.raises(ValueError, match="unknown TSN backbone 'vgg16'; choose one of"):
        TSN(2, backbone="vgg16")
    with pytest.raises(ValueError, match="shift_div must be at least 2.*got 1"):
        TSM(2, backbone="resnet18", shift_div=1)
    with pytest.raises(ValueError, match="base_channels must be a positive multiple of 8, got 12"):
        SlowFast(2, base_channels=12)
    with pytest.raises(ValueError, match=r"SlowFast depth must be one of \[50, 101, 152\], got 34"):
        SlowFast(2, depth=34)
    with pytest.raises(ValueError, match="unknown inflation 'mean'; choose 'average' or 'center'"):
        SlowOnly(2, base_channels=8, inflation="mean")
    with pytest.raises(ValueError, match="unknown X3D weights 'imagenet'; pass 'kinetics400' or a local file"):
        X3D(2, variant="xs", pretrained="imagenet")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        SlowFast(2, base_channels=8, pretrained="missing.pth")
