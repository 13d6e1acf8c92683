"""2-D ImageNet weights inflated into 3-D networks (the paper initialises its 3-D students this way)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from reskd_lightning.models.backbones import TSN, SlowOnly
from reskd_lightning.models.weights import inflate_conv_weight, inflate_state_dict

torch.set_num_threads(2)


def test_average_inflation_repeats_the_kernel_and_divides_by_time() -> None:
    w2d = torch.randn(4, 3, 3, 3)
    w3d = inflate_conv_weight(w2d, 3)
    assert w3d.shape == (4, 3, 3, 3, 3)
    assert torch.allclose(w3d.sum(2), w2d) and torch.allclose(w3d[:, :, 0], w2d / 3)


def test_center_inflation_puts_the_kernel_at_the_middle_tap() -> None:
    w2d = torch.randn(4, 3, 1, 1)
    w3d = inflate_conv_weight(w2d, 5, mode="center")
    assert torch.equal(w3d[:, :, 2], w2d) and w3d[:, :, [0, 1, 3, 4]].abs().sum() == 0
    assert torch.equal(inflate_conv_weight(w2d, 1), w2d.unsqueeze(2))


def test_inflation_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="unknown inflation mode 'mean'; choose 'average' or 'center'"):
        inflate_conv_weight(torch.randn(2, 2, 3, 3), 3, mode="mean")
    with pytest.raises(ValueError, match=r"expected a 2-D convolution weight \[O, I, kh, kw\], got shape \(2, 3\)"):
        inflate_conv_weight(torch.randn(2, 3), 3)
    with pytest.raises(ValueError, match="temporal kernel size must be positive, got 0"):
        inflate_conv_weight(torch.randn(2, 2, 3, 3), 0)


def test_inflate_state_dict_inflates_only_kernels_that_are_3d_in_the_target() -> None:
    state = {"conv.weight": torch.randn(2, 2, 3, 3), "bn.weight": torch.randn(2), "fc.weight": torch.randn(5, 2)}
    target = {"conv.weight": torch.zeros(2, 2, 3, 3, 3), "bn.weight": torch.zeros(2)}
    out = inflate_state_dict(state, target)
    assert out["conv.weight"].shape == (2, 2, 3, 3, 3)
    assert torch.equal(out["bn.weight"], state["bn.weight"]) and torch.equal(out["fc.weight"], state["fc.weight"])


@pytest.fixture(scope="module")
def resnet50() -> torchvision.models.ResNet:
    """A ResNet-50 standing in for ImageNet weights, with non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    net = torchvision.models.resnet50().eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net


def resnet_res5(resnet: torchvision.models.ResNet, image: torch.Tensor) -> torch.Tensor:
    """The 2-D network's res5 feature map of one image batch ``[N, 3, H, W]``."""
    r = resnet
    with torch.no_grad():
        y = r.maxpool(r.relu(r.bn1(r.conv1(image))))
        return r.layer4(r.layer3(r.layer2(r.layer1(y))))


def static_clip(image: torch.Tensor, t: int) -> torch.Tensor:
    return image.unsqueeze(2).expand(-1, -1, t, -1, -1).contiguous()


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    # Relative to the whole map: a random ResNet-50's res5 values reach the hundreds.
    return ((actual - expected).norm() / expected.norm()).item()


def test_inflation_keeps_2d_behaviour_on_a_static_clip(resnet50, tmp_path: Path) -> None:
    torch.save(resnet50.state_dict(), tmp_path / "resnet50_imagenet.pth")
    model = SlowOnly(5, base_channels=64, pretrained=str(tmp_path / "resnet50_imagenet.pth"), inflation="center")
    image = torch.randn(1, 3, 64, 64)
    expected = resnet_res5(resnet50, image)
    with torch.no_grad():
        features = model.eval().forward_features(static_clip(image, 4))
    assert features.shape == (1, 2048, 4, 2, 2)
    for t in range(4):
        assert relative_error(features[:, :, t], expected) < 1e-5, t


def test_average_inflation_keeps_2d_behaviour_out_of_reach_of_the_temporal_padding(
    resnet50, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ImageNet weights by torchvision name, from torch's cache as after a first download.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url
    cached = tmp_path / "torch" / "hub" / "checkpoints" / Path(url).name
    cached.parent.mkdir(parents=True)
    torch.save(resnet50.state_dict(), cached)
    model = SlowOnly(5, pretrained="IMAGENET1K_V1").eval()  # I3D inflation: kernel / 3 on three taps
    assert torch.allclose(model.backbone.blocks[3].res_blocks[0].branch2.conv_a.weight[:, :, 1],
                          resnet50.layer3[0].conv1.weight / 3)
    # res4 and res5 hold 6 + 3 temporal 3x1x1 convolutions: zero padding reaches 9 frames in from either end,
    # so on a clip of 20 identical frames frames 9 and 10 see only the 2-D response.
    image = torch.randn(1, 3, 64, 64)
    expected = resnet_res5(resnet50, image)
    with torch.no_grad():
        features = model.forward_features(static_clip(image, 20))
    for t in (9, 10):
        assert relative_error(features[:, :, t], expected) < 1e-5, t
    assert relative_error(features[:, :, 0], expected) > 0.1  # the clip's ends see the padding


def test_a_2d_tsn_checkpoint_of_ours_initialises_a_slowonly_student(tmp_path: Path) -> None:
    tsn = TSN(5, backbone="resnet50")
    torch.save({"state_dict": {f"student.{k}": v for k, v in tsn.state_dict().items()}}, tmp_path / "tsn.ckpt")
    model = SlowOnly(5, pretrained=str(tmp_path / "tsn.ckpt"))
    res5 = model.backbone.blocks[4].res_blocks[2]
    assert torch.equal(res5.branch2.conv_a.weight, inflate_conv_weight(tsn.backbone.layer4[2].conv1.weight, 3))
    assert torch.equal(res5.branch2.norm_c.running_var, tsn.backbone.layer4[2].bn3.running_var)
    assert torch.equal(model.cls_head.fc.weight, tsn.cls_head.fc.weight)  # 2048 -> 5 in both
