"""mmaction2 checkpoints (the paper's released teachers are in this format) load into our CNNs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from reskd_lightning import ResKDModule
from reskd_lightning.models import load_weights
from reskd_lightning.models.backbones import TSM, TSN, X3D, SlowOnly
from reskd_lightning.models.mmaction import is_mmaction_state_dict
from model_helpers import randomize_bn

torch.set_num_threads(2)

META = {"mmaction_version": "1.2.0", "epoch": 100, "config": "model = dict(type='Recognizer2D', ...)"}


def mmaction_2d_layout(resnet_state: dict[str, torch.Tensor], tsm: bool = False) -> dict[str, torch.Tensor]:
    """A torchvision ResNet's tensors under the names mmaction2's ``ResNet``/``ResNetTSM`` + head save."""
    out = {}
    for key, value in resnet_state.items():
        parts = key.split(".")
        if parts[0] == "fc":
            out["cls_head.fc_cls." + parts[1]] = value
            continue
        if parts[0] in ("conv1", "bn1"):  # the stem: ConvModule conv1 with .conv and .bn
            new = ["conv1", "conv" if parts[0] == "conv1" else "bn", *parts[1:]]
        else:
            layer, block, name, *rest = parts
            if name == "downsample":  # downsample.0 (conv) / downsample.1 (bn) -> ConvModule
                new = [layer, block, "downsample", "conv" if rest[0] == "0" else "bn", *rest[1:]]
            elif name.startswith("conv"):  # TSM wraps the first conv: conv1.conv -> TemporalShift(net=conv)
                new = [layer, block, name, "conv", *(["net"] if tsm and name == "conv1" else []), *rest]
            else:  # bnK belongs to ConvModule convK
                new = [layer, block, "conv" + name[len("bn"):], "bn", *rest]
        out["backbone." + ".".join(new)] = value
    return out


@pytest.fixture()
def resnet18() -> torchvision.models.ResNet:
    net = torchvision.models.resnet18(num_classes=10).eval()
    randomize_bn(net)
    return net


def frame_average_logits(resnet: torchvision.models.ResNet, clip: torch.Tensor) -> torch.Tensor:
    """TSN by hand: the 2-D network on every frame, scores averaged over frames."""
    n, c, t, h, w = clip.shape
    with torch.no_grad():
        return resnet(clip.transpose(1, 2).reshape(n * t, c, h, w)).view(n, t, -1).mean(1)


def test_tsn_loads_an_mmaction2_tsn_checkpoint_and_computes_the_same_scores(resnet18, tmp_path: Path) -> None:
    state = mmaction_2d_layout(resnet18.state_dict())
    assert "backbone.layer1.0.conv1.bn.running_var" in state and "backbone.layer2.0.downsample.conv.weight" in state
    torch.save({"state_dict": state, "meta": META}, tmp_path / "tsn_r18_anet.pth")
    clip = torch.randn(2, 3, 3, 64, 64)

    model = TSN(10, backbone="resnet18")
    load_weights(model, tmp_path / "tsn_r18_anet.pth")
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(clip).logits, frame_average_logits(resnet18, clip))
    as_pretrained = TSN(10, backbone="resnet18", pretrained=str(tmp_path / "tsn_r18_anet.pth")).eval()
    assert torch.equal(as_pretrained.cls_head.fc.weight, resnet18.fc.weight)  # same classes: the head is kept


def test_tsm_loads_mmaction2_keys_with_the_temporal_shift_wrapper(resnet18, tmp_path: Path) -> None:
    state = mmaction_2d_layout(resnet18.state_dict(), tsm=True)
    assert "backbone.layer3.1.conv1.conv.net.weight" in state
    torch.save({"state_dict": state, "meta": META}, tmp_path / "tsm_r18.pth")
    torch.save(resnet18.state_dict(), tmp_path / "resnet18.pth")

    reference = TSM(10, backbone="resnet18", pretrained=str(tmp_path / "resnet18.pth")).eval()
    reference.cls_head.fc.load_state_dict(resnet18.fc.state_dict())
    model = TSM(10, backbone="resnet18").eval()
    load_weights(model, tmp_path / "tsm_r18.pth")
    clip = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(clip).logits, reference(clip).logits)


#: Our SlowOnly names (pytorchvideo's ``create_resnet``) -> mmaction2 ``ResNet3dSlowOnly`` names, by hand.
SLOWONLY_TO_MMACTION = {
    "branch2.conv_a": "conv1.conv", "branch2.norm_a": "conv1.bn", "branch2.conv_b": "conv2.conv",
    "branch2.norm_b": "conv2.bn", "branch2.conv_c": "conv3.conv", "branch2.norm_c": "conv3.bn",
    "branch1_conv": "downsample.conv", "branch1_norm": "downsample.bn",
}


def mmaction_slowonly_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if key.startswith("cls_head.fc."):
            out["cls_head.fc_cls." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("backbone.blocks.0."):
            _, _, _, module, param = key.split(".")
            out[f"backbone.conv1.{'conv' if module == 'conv' else 'bn'}.{param}"] = value
        else:
            _, _, stage, _, block, *name, param = key.split(".")
            out[f"backbone.layer{stage}.{block}.{SLOWONLY_TO_MMACTION['.'.join(name)]}.{param}"] = value
    return out


def test_slowonly_loads_an_mmaction2_resnet3d_slowonly_checkpoint(tmp_path: Path) -> None:
    source = SlowOnly(7, base_channels=8).eval()
    randomize_bn(source)
    state = mmaction_slowonly_layout(source.state_dict())
    assert state["backbone.layer3.0.conv1.conv.weight"].shape == (32, 64, 3, 1, 1)  # res4: 3x1x1, as mmaction2
    state["data_preprocessor.mean"] = torch.zeros(3, 1, 1, 1)  # mmaction2 1.x may keep its pre-processor's buffers
    torch.save({"state_dict": state, "meta": META}, tmp_path / "slowonly.pth")

    model = SlowOnly(7, base_channels=8)
    load_weights(model, tmp_path / "slowonly.pth")
    clip = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.eval()(clip).logits, source(clip).logits)


def test_classifier_is_kept_when_classes_match_and_reported_when_they_do_not(resnet18, tmp_path: Path) -> None:
    torch.save({"state_dict": mmaction_2d_layout(resnet18.state_dict())}, tmp_path / "k10.pth")
    wrong_head = r"wrong shapes \(2\): cls_head.fc.weight: file \(10, 512\) vs model \(4, 512\)"
    with pytest.raises(ValueError, match=wrong_head):
        load_weights(TSN(4, backbone="resnet18"), tmp_path / "k10.pth")
    fine_tuned = TSN(4, backbone="resnet18", pretrained=str(tmp_path / "k10.pth"))  # a backbone init
    assert torch.equal(fine_tuned.backbone.layer4[1].conv2.weight, resnet18.layer4[1].conv2.weight)
    assert fine_tuned.cls_head.fc.weight.shape == (4, 512)


def test_mismatching_mmaction2_checkpoint_names_the_keys_in_our_names(tmp_path: Path) -> None:
    state = mmaction_2d_layout(torchvision.models.resnet34(num_classes=3).state_dict())
    torch.save({"state_dict": state}, tmp_path / "tsn_r34.pth")
    unexpected = r"tsn_r34.pth do not match TSN:\n  unexpected keys \(\d+\): backbone.layer1.2.bn1"
    with pytest.raises(ValueError, match=unexpected):
        load_weights(TSN(3, backbone="resnet18"), tmp_path / "tsn_r34.pth")


def test_a_model_without_an_mmaction2_mapping_says_so(resnet18, tmp_path: Path) -> None:
    torch.save({"state_dict": mmaction_2d_layout(resnet18.state_dict())}, tmp_path / "tsn.pth")
    with pytest.raises(ValueError, match="tsn.pth is an mmaction2 checkpoint but X3D has no mmaction2 key mapping"):
        X3D(10, variant="xs", pretrained=str(tmp_path / "tsn.pth"))


def test_mmaction2_layout_is_told_apart_from_ours(resnet18) -> None:
    assert is_mmaction_state_dict(mmaction_2d_layout(resnet18.state_dict()))
    assert is_mmaction_state_dict({"cls_head.fc_cls.weight": torch.zeros(1)})  # e.g. a Swin recognizer
    for ours in (TSN(2, backbone="resnet18"), TSM(2, backbone="resnet18"), SlowOnly(2, base_channels=8)):
        assert not is_mmaction_state_dict(ours.state_dict())
    assert not is_mmaction_state_dict(resnet18.state_dict())


def test_papers_released_teacher_loads_as_teacher_ckpt(resnet18, tmp_path: Path) -> None:
    torch.save({"state_dict": mmaction_2d_layout(resnet18.state_dict()), "meta": META}, tmp_path / "teacher.pth")
    module = ResKDModule(
        student=TSN(10, backbone="resnet18"), teacher=TSN(10, backbone="resnet18"),
        teacher_ckpt=str(tmp_path / "teacher.pth"),
    )
    assert torch.equal(module.teacher.backbone.conv1.weight, resnet18.conv1.weight)
    assert torch.equal(module.teacher.backbone.layer2[0].downsample[1].running_var,
                       resnet18.layer2[0].downsample[1].running_var)
    assert torch.equal(module.teacher.cls_head.fc.bias, resnet18.fc.bias)
