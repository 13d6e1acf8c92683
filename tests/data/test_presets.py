"""Dataset presets: the paper's defaults by name, and what a preset refuses."""

from __future__ import annotations

import pytest

from reskd_lightning.data import PRESETS, VideoDataModule, get_preset
from reskd_lightning.data.presets import CROP_SIZE


def test_presets_carry_the_papers_defaults() -> None:
    anet = VideoDataModule(preset="activitynet", train_list="anet_train.txt")
    assert anet.num_classes == 200 and anet.metric == "mAP"
    assert anet.settings["num_segments"] == 16 and anet.settings["multi_label"]
    assert anet.settings["list_format"] == "rawframes" and anet.settings["train_crop"] == "multiscale"
    assert VideoDataModule(preset="fcvid", train_list="x.txt").num_classes == 239  # not the 200 of one config
    ssv2 = VideoDataModule(preset="sthv2", train_list="train.json", labels_file="labels.json")
    assert ssv2.num_classes == 174 and ssv2.settings["flip"] is False and ssv2.metric == "accuracy"
    k400 = VideoDataModule(preset="kinetics400", train_list="train.csv").settings
    assert (k400["num_segments"], k400["clip_len"], k400["frame_interval"]) == (1, 8, 8)
    assert (k400["num_test_clips"], k400["test_crop"], k400["train_crop"]) == (10, "three", "random_resized")
    assert VideoDataModule(preset="minikinetics", train_list="x.txt").settings["num_segments"] == 8
    assert set(PRESETS) == {"activitynet", "fcvid", "minikinetics", "sthv2", "kinetics400", "list", "folder"}


def test_given_values_override_the_preset() -> None:
    dm = VideoDataModule(preset="activitynet", train_list="x.txt", num_segments=8, list_format="videos", flip=False)
    assert dm.settings["num_segments"] == 8 and dm.settings["list_format"] == "videos"
    assert dm.settings["flip"] is False and dm.num_classes == 200


def test_sthv2_refuses_horizontal_flip() -> None:
    with pytest.raises(ValueError, match=r"preset 'sthv2' refuses flip=true: its labels name directions"):
        VideoDataModule(preset="sthv2", train_list="train.json", flip=True)


def test_unknown_preset_and_wrong_format_are_named() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset preset 'anet'; known presets are \['activitynet'"):
        VideoDataModule(preset="anet", train_list="x.txt")
    with pytest.raises(ValueError, match=r"preset 'activitynet' reads list_format \['rawframes', 'videos'\], got 'sthv2'"):
        VideoDataModule(preset="activitynet", train_list="x.txt", list_format="sthv2")
    with pytest.raises(ValueError, match="metric must be one of"):
        VideoDataModule(train_list="x.txt", metric="top1")
    assert get_preset("list").num_classes is None


def test_multi_label_implies_map_and_back() -> None:
    assert VideoDataModule(train_list="x.txt", multi_label=True).metric == "mAP"
    assert VideoDataModule(train_list="x.txt", metric="mAP").settings["multi_label"] is True
    assert VideoDataModule(preset="activitynet", train_list="x.txt", metric="accuracy").settings["multi_label"] is False


def test_kinetics400_tests_on_the_crop_size_short_side() -> None:
    # official: Kinetics-400 test_pipeline Resize(scale=(-1, 224)) + ThreeCrop(crop_size=224)
    # (configs/myconfig/rkd/rkd_slowonly_8x8x1_150e_k400.py:55-56, rkd_swins_32x2x1_60e_k400.py:58-59 (CVMI-Lab/ResKD));
    # the 112-pixel Swin config follows the crop: Resize(scale=(-1, 112)) + ThreeCrop(crop_size=112)
    # (configs/myconfig/swin/swin_small_112p_32x2x1_30e_k400.py:54-55). Validation keeps short_side (256).
    k400 = VideoDataModule(preset="kinetics400", train_list="train.csv")
    assert k400.settings["test_short_side"] == 224 and k400.hparams.short_side == 256
    assert get_preset("kinetics400").test_short_side == CROP_SIZE
    small = VideoDataModule(preset="kinetics400", train_list="train.csv", short_side=128, crop_size=112)
    assert small.settings["test_short_side"] == 112
    given = VideoDataModule(preset="kinetics400", train_list="train.csv", test_short_side=256)
    assert given.settings["test_short_side"] == 256  # a given value wins
    for name in ("activitynet", "fcvid", "minikinetics", "sthv2", "list", "folder"):
        assert get_preset(name).test_short_side is None  # Resize(-1, 256) + CenterCrop(224) in their test_pipeline
    anet = VideoDataModule(preset="activitynet", train_list="x.txt", short_side=128, crop_size=112)
    assert anet.settings["test_short_side"] == 128
