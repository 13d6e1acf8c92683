"""Transformers: Video Swin (torchvision swin3d_*) and MViT v2 at the paper's resolutions, and their weights."""

from __future__ import annotations

import functools
import http.server
import inspect
import re
import threading
import urllib.error
from pathlib import Path
from typing import Iterator

import pytest
import torch
import torchvision

from reskd_lightning.models import build_model, build_model_for_input, list_models
from reskd_lightning.models.backbones.mvit import MViTv2, resize_rel_pos
from reskd_lightning.models.backbones.swin import VideoSwin
from reskd_lightning.models.weights import load_state_dict_checked, load_weights

SIDE = {224: 7, 112: 4, 96: 3}  # last-stage map side: 224/32, padded 112/32 and 96/32


@pytest.fixture(autouse=True)
def two_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache: a file placed in ``checkpoints/`` is what a torchvision weight name loads."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    return tmp_path / "hub" / "checkpoints"


def clip(resolution: int, frames: int = 8, batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, frames, resolution, resolution)


def jitter_(module: torch.nn.Module, std: float = 0.05) -> torch.nn.Module:
    """Move every parameter off its initial value (LayerNorms at 1/0, position tables near 0), so a weight loaded
    into the wrong place changes the output."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * std)
    return module


# ----------------------------------------------------------------------------------------------- shapes, training
@pytest.mark.parametrize("name, dim", [("swin3d_t", 768), ("swin3d_s", 768), ("swin3d_b", 1024), ("mvit_v2_s", 768)])
def test_full_size_models_give_a_feature_map_and_logit_map_at_224_112_and_96_px_with_8_frames(
    name: str, dim: int
) -> None:
    model = None
    for resolution, side in SIDE.items():
        if model is None or name.startswith("mvit"):  # MViT is built for its clip size
            model = build_model_for_input(name, num_classes=5, resolution=resolution, frames=8).eval()
        assert model.feature_dim == dim and model.num_classes == 5
        with torch.no_grad():
            out = model(clip(resolution))
            logit_map = model.cls_head.logit_map(out.features)
        assert out.features.shape == (1, dim, 4, side, side), (resolution, out.features.shape)
        assert out.logits.shape == (1, 5)
        assert logit_map.shape == (1, 5, 4, side, side)
        assert torch.allclose(logit_map.mean((2, 3, 4)), out.logits, atol=1e-5)  # the head is the pooled map


def test_tiny_swin_and_mvit_train_at_low_resolution() -> None:
    swin = VideoSwin(3, embed_dim=8, depths=(1, 1, 2, 1), num_heads=(1, 1, 2, 2))
    mvit = MViTv2(3, spatial_size=112, temporal_size=4, embed_dim=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))
    for model, resolution in ((swin, 112), (swin, 96), (mvit, 112)):
        out = model(clip(resolution, frames=4, batch=2))
        assert out.features.shape == (2, 64, 2, SIDE[resolution], SIDE[resolution])
        torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 2])).backward()
    assert swin.backbone.patch_embed.proj.weight.grad is not None
    assert swin.backbone.features[0][0].attn.relative_position_bias_table.grad.abs().sum() > 0
    assert mvit.backbone.blocks[0].attn.rel_pos_h.grad.abs().sum() > 0
    assert mvit.backbone.blocks[0].attn.rel_pos_h.shape[0] == 2 * 28 - 1  # sized for 112 px: 28 tokens a side


def test_swin_classifier_starts_as_the_papers_head_std_0_01_and_zero_bias() -> None:
    # official: mmaction/models/heads/grkd_3d_head.py:35 (CVMI-Lab/ResKD): init_std=0.01 (the configs keep it), and
    # :65 normal_init(self.fc_cls, std=self.init_std): mmcv's normal_init draws N(0, std) weights and sets bias=0.
    assert inspect.signature(VideoSwin).parameters["init_std"].default == 0.01
    tiny = dict(embed_dim=32, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))
    for model in (VideoSwin(400, **tiny), build_model("swin3d_s", num_classes=400, **tiny)):
        weight, bias = model.cls_head.fc.weight, model.cls_head.fc.bias
        assert weight.shape == (400, 256)
        assert weight.std().item() == pytest.approx(0.01, rel=0.02) and abs(weight.mean().item()) < 1e-3
        assert torch.equal(bias, torch.zeros(400))


def test_swin_stochastic_depth_follows_the_papers_rule_and_is_active_in_train_mode_only() -> None:
    model = VideoSwin(3, embed_dim=8, depths=(1, 1, 2, 1), num_heads=(1, 1, 2, 2), stochastic_depth_prob=0.5)
    # official: mmaction/models/backbones/swin_transformer.py:526 (CVMI-Lab/ResKD):
    # dpr = torch.linspace(0, drop_path_rate, sum(depths)), one rate per block in order (DropPath per sample).
    rates = [m.p for m in model.modules() if isinstance(m, torchvision.ops.StochasticDepth)]
    assert rates == pytest.approx(torch.linspace(0, 0.5, 5).tolist())
    assert all(m.mode == "row" for m in model.modules() if isinstance(m, torchvision.ops.StochasticDepth))
    # official: configs/_base_/models/rkd_swinb_swins.py:21,36 (CVMI-Lab/ResKD): drop_path_rate=0.1 for both.
    assert inspect.signature(VideoSwin).parameters["stochastic_depth_prob"].default == 0.1
    x = clip(64, frames=4, batch=4)
    with torch.no_grad():
        model.train()
        assert not torch.equal(model.forward_features(x), model.forward_features(x))
        model.eval()
        assert torch.equal(model.forward_features(x), model.forward_features(x))


def test_registry_and_constructors_name_the_bad_value_and_the_known_ones() -> None:
    assert list_models("swin3d_*") == ["swin3d_b", "swin3d_s", "swin3d_t"] and "mvit_v2_s" in list_models()
    assert isinstance(build_model("swin3d_t", num_classes=2), VideoSwin)
    with pytest.raises(ValueError, match=r"unknown Video Swin backbone 'swin3d_l'; choose one of \['swin3d_b', "):
        VideoSwin(2, backbone="swin3d_l")
    with pytest.raises(ValueError, match=r"unknown MViT v2 backbone 'mvit_v2_b'; choose one of \['mvit_v2_s'\]"):
        MViTv2(2, backbone="mvit_v2_b")
    with pytest.raises(ValueError, match=r"spatial_size must be \(H, W\) of at least 32 px each, got \(16, 16\)"):
        MViTv2(2, spatial_size=(16, 16))
    with pytest.raises(ValueError, match="stage 1 has 16 channels, not divisible by num_heads 3"):
        VideoSwin(2, embed_dim=8, depths=(1, 1, 1, 1), num_heads=(1, 3, 1, 1))
    with pytest.raises(ValueError, match=r"unknown pretrained weights 'KINETICS600_V1' for swin3d_b; .*"
                       r"IMAGENET1K_V1, KINETICS400_IMAGENET22K_V1, KINETICS400_V1"):
        VideoSwin(2, backbone="swin3d_b", pretrained="KINETICS600_V1")
    with pytest.raises(ValueError, match=r"unknown pretrained weights 'IMAGENET1K_V1' for mvit_v2_s; .*KINETICS400_V1"):
        MViTv2(2, pretrained="IMAGENET1K_V1")


# ----------------------------------------------------------------------------------------------- Swin weights
def test_swin_loads_torchvision_kinetics_weights_by_name_and_matches_torchvision(hub_dir: Path) -> None:
    reference = jitter_(torchvision.models.video.swin3d_t()).eval()
    torch.save(reference.state_dict(), hub_dir / "swin3d_t-7615ae03.pth")  # where the name downloads to
    model = VideoSwin(400, backbone="swin3d_t", pretrained="KINETICS400_V1").eval()
    x = clip(112)
    with torch.no_grad():
        assert torch.allclose(model(x).logits, reference(x), atol=1e-4)  # same classes: torchvision's head is kept
    other = VideoSwin(5, backbone="swin3d_t", pretrained="Swin3D_T_Weights.KINETICS400_V1")
    assert torch.equal(other.backbone.norm.weight, reference.norm.weight)
    assert other.cls_head.fc.weight.shape == (5, 768) and other.cls_head.fc.weight.abs().max() < 0.2  # new


def test_swin_offline_download_error_says_which_file_to_place_where(
    hub_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError, match=re.escape(f"place it at {hub_dir / 'swin3d_t-7615ae03.pth'}")):
        VideoSwin(2, backbone="swin3d_t", pretrained="KINETICS400_V1")


def to_mmaction_key(key: str, final_norm: str) -> str:
    """Our (torchvision) Video Swin key -> the key mmaction2 writes, rule by rule."""
    def block(m: re.Match) -> str:
        return f"backbone.layers.{int(m[1]) // 2}.blocks.{m[2]}."

    rules = [
        (r"^backbone\.features\.(\d+)\.(\d+)\.mlp\.0\.", lambda m: block(m) + "mlp.fc1."),
        (r"^backbone\.features\.(\d+)\.(\d+)\.mlp\.3\.", lambda m: block(m) + "mlp.fc2."),
        (r"^backbone\.features\.(\d*[02468])\.(\d+)\.", block),
        (r"^backbone\.features\.(\d*[13579])\.", lambda m: f"backbone.layers.{int(m[1]) // 2}.downsample."),
        (r"^backbone\.norm\.", lambda m: f"backbone.{final_norm}."),
        (r"^cls_head\.fc\.", lambda m: "cls_head.fc_cls."),
    ]
    for pattern, replacement in rules:
        key, count = re.subn(pattern, replacement, key)
        if count:
            break
    return key


@pytest.mark.parametrize("final_norm", ["norm", "norm3"])  # Video Swin / mmaction2 0.x, mmaction2 1.x
def test_swin_loads_an_mmaction2_video_swin_checkpoint(tmp_path: Path, final_norm: str) -> None:
    source = jitter_(VideoSwin(7, backbone="swin3d_t")).eval()
    state = {to_mmaction_key(k, final_norm): v for k, v in source.state_dict().items()}
    for key in (
        "backbone.patch_embed.proj.weight",
        "backbone.layers.0.blocks.1.attn.relative_position_index",
        "backbone.layers.3.blocks.1.mlp.fc2.weight",
        "backbone.layers.2.downsample.reduction.weight",
        "backbone.layers.2.downsample.norm.bias",
        f"backbone.{final_norm}.weight",
        "cls_head.fc_cls.bias",
    ):
        assert key in state, key
    assert not any(k.startswith(("backbone.features.", "cls_head.fc.")) for k in state)
    state["data_preprocessor.mean"] = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1, 1)
    torch.save({"meta": {"epoch": 30}, "state_dict": state}, tmp_path / "swin_tiny_k400.pth")
    x = clip(112)
    with torch.no_grad():
        expected = source(x).logits
        by_pretrained = VideoSwin(7, backbone="swin3d_t", pretrained=str(tmp_path / "swin_tiny_k400.pth")).eval()
        assert torch.allclose(by_pretrained(x).logits, expected, atol=1e-5)
        by_converter = VideoSwin(7, backbone="swin3d_t").eval()
        load_state_dict_checked(by_converter, by_converter.convert_mmaction_state_dict(state), "mmaction2")
        assert torch.allclose(by_converter(x).logits, expected, atol=1e-5)
        by_load_weights = VideoSwin(7, backbone="swin3d_t").eval()
        load_weights(by_load_weights, tmp_path / "swin_tiny_k400.pth")
        assert torch.allclose(by_load_weights(x).logits, expected, atol=1e-5)


def test_swin_mismatched_weights_name_the_missing_unexpected_and_misshapen_keys(tmp_path: Path) -> None:
    small = VideoSwin(3, embed_dim=8, depths=(1, 1, 2, 1), num_heads=(1, 1, 2, 2))
    state = {to_mmaction_key(k, "norm"): v for k, v in small.state_dict().items()}
    del state["backbone.layers.1.blocks.0.attn.qkv.weight"]
    state["backbone.layers.2.blocks.2.norm1.weight"] = torch.ones(32)
    torch.save({"state_dict": state}, tmp_path / "broken.pth")
    with pytest.raises(ValueError) as err:
        VideoSwin(3, embed_dim=8, depths=(1, 1, 2, 1), num_heads=(1, 1, 2, 2), pretrained=str(tmp_path / "broken.pth"))
    assert "broken.pth do not match VideoSwin" in str(err.value)
    assert "missing keys (1): backbone.features.2.0.attn.qkv.weight" in str(err.value)
    assert "unexpected keys (1): backbone.features.4.2.norm1.weight" in str(err.value)
    shapes = r"wrong shapes \(\d+\): backbone.patch_embed.proj.weight: file \(8, 3, 2, 4, 4\) vs model \(96, "
    with pytest.raises(ValueError, match=shapes):
        VideoSwin(3, pretrained=str(tmp_path / "broken.pth"))


def test_inflated_imagenet_swin_matches_the_2d_network_on_a_static_clip(hub_dir: Path) -> None:
    """ImageNet Swin-T inflated to Video Swin-T, loaded by its torchvision name.

    On a clip of one repeated image, the patch embedding (kernel repeated over the 2 temporal taps and halved)
    gives the image's embedding at every time step; every window then holds each image token T' times with the
    same bias (the 2-D table repeated over the temporal offsets), so attention, and the whole network, give the
    2-D result at every time step. That holds where the 2-D and 3-D windows agree: at 224 px, where every stage's
    side is a multiple of 7 (at 112 px Video Swin shrinks the last stage's window to its 4x4 map, 2-D Swin pads
    it to 7x7).
    """
    image_swin = torchvision.models.swin_t()
    with torch.no_grad():
        for name, p in image_swin.named_parameters():
            p.add_(torch.randn_like(p) * (1.0 if "relative_position_bias_table" in name else 0.05))
    image_swin.eval()
    torch.save(image_swin.state_dict(), hub_dir / "swin_t-704ceda3.pth")
    video_swin = VideoSwin(5, backbone="swin3d_t", pretrained="IMAGENET1K_V1").eval()

    table = video_swin.backbone.features[0][0].attn.relative_position_bias_table
    assert table.shape == (15 * 13 * 13, 3)
    assert torch.equal(table[13 * 13 * 9 : 13 * 13 * 10], image_swin.features[1][0].attn.relative_position_bias_table)
    assert video_swin.cls_head.fc.weight.shape == (5, 768)  # the ImageNet classifier is not kept

    image = torch.randn(1, 3, 224, 224)
    static = image.unsqueeze(2).expand(-1, -1, 8, -1, -1)
    with torch.no_grad():
        embedded_2d = image_swin.features[0](image)  # [1, 56, 56, 96]
        embedded_3d = video_swin.backbone.patch_embed(static)  # [1, 4, 56, 56, 96]
        assert torch.allclose(embedded_3d, embedded_2d.unsqueeze(1).expand_as(embedded_3d), atol=1e-5)
        features_2d = image_swin.norm(image_swin.features(image)).permute(0, 3, 1, 2)  # [1, 768, 7, 7]
        features_3d = video_swin.forward_features(static)  # [1, 768, 4, 7, 7]
    assert torch.allclose(features_3d, features_2d.unsqueeze(2).expand_as(features_3d), atol=1e-4)


def test_swin_inflates_a_2d_swin_state_dict_and_an_original_swin_checkpoint_from_files(tmp_path: Path) -> None:
    tiny = dict(embed_dim=8, depths=[1, 1, 2, 1], num_heads=[1, 1, 2, 2])
    image_swin = jitter_(torchvision.models.SwinTransformer(patch_size=[4, 4], window_size=[7, 7], **tiny))
    torch.save(image_swin.state_dict(), tmp_path / "swin2d_torchvision.pth")
    from_torchvision = VideoSwin(3, pretrained=str(tmp_path / "swin2d_torchvision.pth"), **tiny)
    # The same weights as the original Swin release writes them: {"model": ...}, layers.*, attn_mask buffers.
    original = {}
    for key, value in image_swin.state_dict().items():
        key = re.sub(r"^features\.0\.0\.", "patch_embed.proj.", key)
        key = re.sub(r"^features\.0\.2\.", "patch_embed.norm.", key)
        key = re.sub(r"^features\.(\d*[13579])\.(\d+)\.mlp\.([03])\.",
                     lambda m: f"layers.{int(m[1]) // 2}.blocks.{m[2]}.mlp.fc{1 if m[3] == '0' else 2}.", key)
        key = re.sub(r"^features\.(\d*[13579])\.(\d+)\.", lambda m: f"layers.{int(m[1]) // 2}.blocks.{m[2]}.", key)
        key = re.sub(r"^features\.(\d*[02468])\.", lambda m: f"layers.{int(m[1]) // 2 - 1}.downsample.", key)
        original[key] = value
    original["layers.0.blocks.0.attn_mask"] = torch.zeros(64, 49, 49)
    torch.save({"model": original}, tmp_path / "swin_tiny_patch4_window7_224.pth")
    from_original = VideoSwin(3, pretrained=str(tmp_path / "swin_tiny_patch4_window7_224.pth"), **tiny)
    for key, value in from_torchvision.state_dict().items():
        if not key.startswith("cls_head."):
            assert torch.equal(from_original.state_dict()[key], value), key
    proj = from_original.backbone.patch_embed.proj.weight
    assert torch.allclose(proj, image_swin.features[0][0].weight.unsqueeze(2).expand_as(proj) / 2)

    # The same file by its address, as the Swin-B teacher recipe names the Swin release's ImageNet-22K weights:
    # downloaded (here from a server on loopback) into torch's hub cache, then loaded as the local file.
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
            url = f"http://127.0.0.1:{server.server_address[1]}/swin_tiny_patch4_window7_224.pth"
            from_url = VideoSwin(3, pretrained=url, **tiny)
    finally:
        server.shutdown()
    assert (tmp_path / "torch_home" / "hub" / "checkpoints" / "swin_tiny_patch4_window7_224.pth").is_file()
    for key, value in from_original.state_dict().items():
        if not key.startswith("cls_head."):
            assert torch.equal(from_url.state_dict()[key], value), key


# ----------------------------------------------------------------------------------------------- MViT weights
def test_tiny_mvit_features_are_torchvisions_tokens_at_its_build_size() -> None:
    model = jitter_(MViTv2(3, spatial_size=96, temporal_size=4, embed_dim=8, depths=(1, 1, 1, 1),
                           num_heads=(1, 1, 1, 1))).eval()
    tokens = {}
    model.backbone.norm.register_forward_hook(lambda module, args, out: tokens.setdefault("out", out))
    x = clip(96, frames=4)
    with torch.no_grad():
        model.backbone(x)  # torchvision's own forward, built for 96x96x4
        features = model.forward_features(x)
    expected = tokens["out"][:, 1:].transpose(1, 2).reshape(1, 64, 2, 3, 3)
    assert torch.equal(features, expected)


def test_mvit_built_for_112_px_8_frames_loads_224_px_16_frame_weights(tmp_path: Path, hub_dir: Path) -> None:
    """torchvision's mvit_v2_s weights are made for 224x224x16; a 112x8 model resizes every relative position
    table when loading, which is the resize MViT itself applies at run time to a 224-built model fed 112x8."""
    reference = jitter_(torchvision.models.video.mvit_v2_s(), std=0.02)
    torch.save(reference.state_dict(), tmp_path / "mvit_v2_s_k400.pth")
    torch.save(reference.state_dict(), hub_dir / "mvit_v2_s-ae3be167.pth")
    small = MViTv2(5, spatial_size=112, temporal_size=8, pretrained=str(tmp_path / "mvit_v2_s_k400.pth")).eval()
    attn, reference_attn = small.backbone.blocks[0].attn, reference.blocks[0].attn
    assert reference_attn.rel_pos_h.shape[0] == 111 and reference_attn.rel_pos_t.shape[0] == 15
    assert attn.rel_pos_h.shape[0] == 55 and attn.rel_pos_t.shape[0] == 7
    assert torch.equal(attn.rel_pos_w, resize_rel_pos(reference_attn.rel_pos_w, 55))
    # The last stage sees 4x4 tokens at 112 px (torchvision's size // stride says 3x3): its tables fit 4x4.
    assert small.backbone.blocks[15].attn.rel_pos_h.shape[0] == 2 * 4 - 1
    assert torch.equal(small.backbone.blocks[5].attn.qkv.weight, reference.blocks[5].attn.qkv.weight)

    big = MViTv2(5, pretrained="KINETICS400_V1").eval()  # built for 224x16, as the weights; loaded by name
    big.cls_head.load_state_dict(small.cls_head.state_dict())  # torchvision's classifier reads the class token
    x = clip(112)
    with torch.no_grad():
        assert torch.allclose(small(x).logits, big(x).logits, atol=1e-4)
        assert small(clip(96)).features.shape == (1, 768, 4, 3, 3)  # and still runs at other sizes

    # A checkpoint of our own 112x8 model goes back into a 224x16 one the same way.
    torch.save({"state_dict": {f"student.{k}": v for k, v in small.state_dict().items()}}, tmp_path / "small.ckpt")
    back = MViTv2(5, pretrained=str(tmp_path / "small.ckpt"))
    assert back.backbone.blocks[0].attn.rel_pos_h.shape[0] == 111
    assert torch.equal(back.cls_head.fc.weight, small.cls_head.fc.weight)
