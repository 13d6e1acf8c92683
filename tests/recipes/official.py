"""The official ResKD recipes, value by value, with the file and line each value is set at.

Facts read from github.com/CVMI-Lab/ResKD (commit c6b85a3, a fork of mmaction2 v0.20.0 on mmcv 1.4.0). Paths are
relative to that repository's ``configs/`` folder unless they start with ``mmaction/`` (its code) or ``mmcv/``
(mmcv v1.4.0). Each recipe of ``configs/`` maps to the official config it reproduces, or to ``None`` with the
official recipe it is derived from (a resolution or dataset the official code has no config for).

The strings are in the form ``test_recipe_tables.py`` renders a built config in, so that a value of ours and the
official one compare as text; ``DEVIATIONS`` lists, with the reason, every row where they differ on purpose.
``python tests/recipes/test_recipe_tables.py --regenerate`` rewrites the tables of ``configs/README.md``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple


class Fact(NamedTuple):
    value: str
    where: str


MSC = "MultiScaleCrop(input_size={}, scales=(1, 0.875, 0.75, 0.66), num_fixed_crops=13)"
RRC = "RandomResizedCrop(area_range=(0.08, 1.0), aspect_ratio_range=(3/4, 4/3))"


def train_2d(short: int, input_size: int, crop: int, flip: bool) -> str:
    steps = [f"Resize(-1, {short})", MSC.format(input_size), f"Resize({crop}, {crop})"]
    return " > ".join(steps + (["Flip(0.5)"] if flip else []))


def train_3d(short: int, crop: int, flip: bool) -> str:
    steps = [f"Resize(-1, {short})", RRC, f"Resize({crop}, {crop})"]
    return " > ".join(steps + (["Flip(0.5)"] if flip else []))


def views(num_clips: int, short: int, crop: str, twice: bool = False) -> str:
    sampling = f"SampleFrames(num_clips={num_clips}{', twice_sample' if twice else ''}, test_mode)"
    return f"{sampling} > Resize(-1, {short}) > {crop}"


def sampling(clip_len: int, frame_interval: int, num_clips: int) -> str:
    return f"SampleFrames(clip_len={clip_len}, frame_interval={frame_interval}, num_clips={num_clips})"


def sgd(lr: float, wd: float) -> str:
    return f"SGD(lr={lr:g}, momentum=0.9, weight_decay={wd:g})"


def adamw(lr: float, wd: float) -> str:
    return f"AdamW(lr={lr:g}, betas=(0.9, 0.999), weight_decay={wd:g})"


def batch(per_gpu: int, accumulate: int) -> str:
    return f"{per_gpu} videos x 8 GPUs x {accumulate} = {per_gpu * 8 * accumulate}"


ACC = "top_k_accuracy, mean_class_accuracy"
MAP = "mean_average_precision"
PNG = "frame folders, img_{:05}.png"
VIDEOS = "videos"
TSM_GROUPS = "conv/linear weights lr x1; biases lr x2, wd 0; norms wd 0"
ONE_GROUP = "one group"
SWIN_GROUPS = (
    "custom_keys, longest first, first match: relative_position_bias_table wd 0; absolute_pos_embed wd 0; "
    "backbone lr x0.1; norm wd 0"
)
COSINE = "cosine to 0, per epoch"
STEP = "linear warm-up 10 epochs (per iteration, from x0.1), x0.1 at epochs [90, 130]"
SWIN_COSINE = "linear warm-up 2.5 epochs (per iteration, from x0.1), cosine to 0 per epoch"
FEATURE_KD = "FeatureMapKD(weight=100): MSE(student map bilinearly upsampled, teacher map)"
LOGIT_MAP_KD = "LogitMapKD(weight=200, temperature=2): T^2 x KL(per-location class distributions), mean"
TSN_HEAD = "dropout 0.5, init_std 0.001"
I3D_HEAD = "dropout 0.5, init_std 0.01"

# -------------------------------------------------------------------------------- pieces shared by configs
SGD_RKD = "_base_/schedules/sgd_rkd_50e.py"
SGD_TSM = "_base_/schedules/sgd_tsm_50e.py"
SGD_50E = "_base_/schedules/sgd_50e.py"
RKD_CONSTRUCTOR = "mmaction/core/optimizer/rkd_optimizer_constructor.py:61-71"
TSM_CONSTRUCTOR = "mmaction/core/optimizer/tsm_optimizer_constructor.py (fc_lr5=False)"
RKD_BACKBONE = "mmaction/models/backbones/rkd.py"


def rkd_cnn_schedule(cfg: str) -> dict[str, Fact]:
    """What the CNN ResKD configs take from sgd_rkd_50e.py (all but SlowOnly)."""
    return {
        "optimizer": Fact(sgd(0.01, 1e-4), f"{SGD_RKD}:2-7"),
        "param groups": Fact(TSM_GROUPS, f"{SGD_RKD}:4, {RKD_CONSTRUCTOR}"),
        "schedule": Fact(COSINE, f"{SGD_RKD}:10"),
        "gradient clipping": Fact("norm 20", f"{SGD_RKD}:8"),
        "precision": Fact("fp32", f"{cfg}: no fp16 key"),
    }


def student_view(cfg_model: str, res: int = 112) -> dict[str, Fact]:
    return {
        "student resolution": Fact(
            f"{res} px, bilinear resize of the teacher's normalised clip", f"{RKD_BACKBONE}:12, 45-53"
        ),
        "teacher mode": Fact("train", f"{RKD_BACKBONE}:57-60 (teacher .eval() commented out)"),
    }


def reskd_tsn(cfg: str, model: str, teacher: str, classes: int, clips: int, msc_input: int, epochs: int,
              metric: str, lines: dict[str, str], data: str) -> dict[str, Fact]:
    """A TSN ResKD config: cfg and its model base, with the lines of the values that move between files."""
    return {
        "classes": Fact(str(classes), f"{cfg}:7"),
        "metrics": Fact(metric, f"{cfg}:{lines['metrics']}"),
        "input": Fact(data, f"{cfg}:{lines['input']}"),
        "train sampling": Fact(sampling(1, 1, clips), f"{cfg}:{lines['sampling']}"),
        "train pipeline": Fact(train_2d(256, msc_input, 224, True), f"{cfg}:{lines['train']}"),
        "val pipeline": Fact(views(clips, 256, "CenterCrop(224)"), f"{cfg}:{lines['val']}"),
        "test pipeline": Fact(views(clips, 256, "CenterCrop(224)"), f"{cfg}:{lines['test']}"),
        "student": Fact("TSN ResNet-50, ImageNet (torchvision)", f"{model}:8-12"),
        **student_view(model),
        "teacher": Fact(f"TSN {teacher} at 224 px, the teacher stage's weights", f"{model}:13-17, {cfg}:6"),
        "head": Fact(TSN_HEAD, f"{model}:25-26"),
        "distillation": Fact(FEATURE_KD, f"{model}:24, mmaction/models/heads/rkd_2d_head.py:43,123, {RKD_BACKBONE}:62-69"),
        **rkd_cnn_schedule(cfg),
        "global batch": Fact(batch(8, 1), f"{cfg}:{lines['batch']}, {SGD_RKD}:5"),
        "epochs": Fact(str(epochs), f"{cfg}:{lines['epochs']}"),
    }


ANET_LINES = dict(metrics="95", input="75", sampling="19", train="21-30", val="37-45", test="51-60", batch="67",
                  epochs="97")
MINIK_LINES = dict(metrics="89", input="10", sampling="20", train="22-31", val="39-47", test="55-63", batch="70",
                   epochs="93")


def teacher_tsn(cfg: str, model: str, net: str, classes: int, clips: int, metric: str, lines: dict[str, str],
                data: str, tsm: bool = False) -> dict[str, Fact]:
    """A TSN/TSM teacher stage: cfg with its model base and sgd_tsm_50e.py."""
    facts = {
        "classes": Fact(str(classes), f"{cfg}:{lines['classes']}"),
        "metrics": Fact(metric, f"{cfg}:{lines['metrics']}"),
        "input": Fact(data, f"{cfg}:{lines['input']}"),
        "train sampling": Fact(sampling(1, 1, clips), f"{cfg}:{lines['sampling']}"),
        "train pipeline": Fact(train_2d(256, 224, 224, not tsm), f"{cfg}:{lines['train']}"),
        "val pipeline": Fact(views(clips, 256, "CenterCrop(224)"), f"{cfg}:{lines['val']}"),
        "test pipeline": Fact(views(clips, 256, "CenterCrop(224)"), f"{cfg}:{lines['test']}"),
        "student": Fact(f"{net}, ImageNet (torchvision)", f"{model}:4-9"),
        "student resolution": Fact("224 px", f"{cfg}:{lines['train']}"),
        "head": Fact(TSN_HEAD, f"{model}:15-16"),
        "distillation": Fact("none", f"{cfg}"),
        "optimizer": Fact(sgd(0.01, 1e-4), f"{SGD_TSM}:2-8"),
        "param groups": Fact(TSM_GROUPS, f"{SGD_TSM}:4-5, {TSM_CONSTRUCTOR}"),
        "schedule": Fact(COSINE, f"{SGD_TSM}:12"),
        "gradient clipping": Fact("norm 20", f"{SGD_TSM}:9"),
        "precision": Fact("fp32", f"{cfg}: no fp16 key"),
        "global batch": Fact(batch(8, 1), f"{cfg}:{lines['batch']}, {SGD_TSM}:6"),
        "epochs": Fact("50", f"{SGD_TSM}:13"),
    }
    return facts


TEACHER_ANET_LINES = dict(classes="5", metrics="92", input="72", sampling="16", train="18-27", val="35-42",
                          test="50-57", batch="64")
TEACHER_MINIK_LINES = dict(classes="5", metrics="87", input="7", sampling="18", train="20-29", val="38-45",
                           test="54-61", batch="68")


def baseline_tsn(cfg: str, res: int, short: int, classes: int, clips: int, metric: str, lines: dict[str, str],
                 data: str) -> dict[str, Fact]:
    """A low-resolution TSN baseline: decoded at a low short side, one optimiser group (sgd_50e.py)."""
    model = "_base_/models/tsn_r50.py"
    return {
        "classes": Fact(str(classes), f"{cfg}:5"),
        "metrics": Fact(metric, f"{cfg}:{lines['metrics']}"),
        "input": Fact(data, f"{cfg}:{lines['input']}"),
        "train sampling": Fact(sampling(1, 1, clips), f"{cfg}:{lines['sampling']}"),
        "train pipeline": Fact(train_2d(short, short, res, True), f"{cfg}:{lines['train']}"),
        "val pipeline": Fact(views(clips, short, f"CenterCrop({res})"), f"{cfg}:{lines['val']}"),
        "test pipeline": Fact(views(clips, short, f"CenterCrop({res})"), f"{cfg}:{lines['test']}"),
        "student": Fact("TSN ResNet-50, ImageNet (torchvision)", f"{model}:4-9"),
        "student resolution": Fact(f"{res} px", f"{cfg}:{lines['train']}"),
        "head": Fact(TSN_HEAD, f"{model}:15-16"),
        "distillation": Fact("none", cfg),
        "optimizer": Fact(sgd(0.01, 1e-4), f"{SGD_50E}:2-6"),
        "param groups": Fact(ONE_GROUP, f"{SGD_50E}:2-6 (no constructor: mmcv's default)"),
        "schedule": Fact(COSINE, f"{SGD_50E}:10"),
        "gradient clipping": Fact("norm 40", f"{SGD_50E}:7"),
        "precision": Fact("fp32", f"{cfg}: no fp16 key"),
        "global batch": Fact(batch(8, 1), f"{cfg}:{lines['batch']}, {SGD_50E}:4"),
        "epochs": Fact("50", f"{SGD_50E}:11"),
    }


BASE_ANET_LINES = dict(metrics="92", input="72", sampling="16", train="18-27", val="35-42", test="50-57", batch="64")
BASE_MINIK_LINES = dict(metrics="87", input="7", sampling="18", train="20-29", val="38-45", test="54-61", batch="68")


def slowonly(cfg: str, model: str, res: int, lines: dict[str, str], reskd: bool) -> dict[str, Fact]:
    short, test_short = (256, 224) if res == 224 else (128, 128)
    val_short = 256 if res == 224 else 112
    facts = {
        "classes": Fact("400", f"{cfg}:{lines['classes']}"),
        "metrics": Fact(ACC, f"{cfg}:{lines['metrics']}"),
        "input": Fact(VIDEOS, f"{cfg}:{lines['input']}"),
        "train sampling": Fact(sampling(8, 8, 1), f"{cfg}:{lines['sampling']}"),
        "train pipeline": Fact(train_3d(short, res, not reskd), f"{cfg}:{lines['train']}"),
        "val pipeline": Fact(views(1, val_short, f"CenterCrop({res})"), f"{cfg}:{lines['val']}"),
        "test pipeline": Fact(views(10, test_short, f"ThreeCrop({res})"), f"{cfg}:{lines['test']}"),
        "student": Fact("SlowOnly ResNet-50, ImageNet (torchvision) inflated", f"{model}:{lines['student']}"),
        "head": Fact(I3D_HEAD, f"{model}:{lines['head']}, mmaction/models/heads/i3d_head.py:30-31"),
        "optimizer": Fact(sgd(0.01, 1e-4), f"{cfg}:{lines['optimizer']}"),
        "param groups": Fact(ONE_GROUP, f"{cfg}:{lines['optimizer']} (no constructor: mmcv's default)"),
        "schedule": Fact(STEP, f"{cfg}:{lines['schedule']}"),
        "gradient clipping": Fact("norm 40", f"{cfg}:{lines['clip']}"),
        "precision": Fact("fp32", f"{cfg}: no fp16 key"),
        "global batch": Fact(batch(8, 1), f"{cfg}:{lines['batch']}"),
        "epochs": Fact("150", f"{cfg}:{lines['epochs']}"),
    }
    if reskd:
        facts.update(student_view(model))
        facts["teacher"] = Fact("SlowOnly ResNet-50 at 224 px, the teacher stage's weights", f"{model}:18-27, {cfg}:6")
        facts["distillation"] = Fact(FEATURE_KD, f"{model}:34, mmaction/models/heads/rkd_3d_head.py")
        facts["head"] = Fact(I3D_HEAD, f"{model}:33, mmaction/models/heads/rkd_3d_head.py:32-33")
    else:
        facts["student resolution"] = Fact(f"{res} px", f"{cfg}:{lines['train']}")
        facts["distillation"] = Fact("none", cfg)
    return facts


def swin(cfg: str, res: int, lines: dict[str, str], role: str) -> dict[str, Fact]:
    short = 256 if res == 224 else 128
    test_short = res
    fp16 = f"{cfg}:{lines['fp16']} (apex O1 with dynamic loss scaling)"
    facts = {
        "classes": Fact("400", f"{cfg}:{lines['classes']}"),
        "metrics": Fact(ACC, f"{cfg}:{lines['metrics']}"),
        "input": Fact(VIDEOS, f"{cfg}:{lines['input']}"),
        "train sampling": Fact(sampling(32, 2, 1), f"{cfg}:{lines['sampling']}"),
        "train pipeline": Fact(train_3d(short, res, True), f"{cfg}:{lines['train']}"),
        "val pipeline": Fact(views(1, short, f"CenterCrop({res})"), f"{cfg}:{lines['val']}"),
        "test pipeline": Fact(views(4, test_short, f"ThreeCrop({res})"), f"{cfg}:{lines['test']}"),
        "head": Fact("dropout 0.5, init_std 0.01", lines["head"]),
        "drop path": Fact(lines["drop_path_value"], lines["drop_path"]),
        "optimizer": Fact(adamw(float(lines["lr"]), float(lines["wd"])), f"{cfg}:{lines['optimizer']}"),
        "param groups": Fact(SWIN_GROUPS, f"{cfg}:{lines['keys']}, mmcv/runner/optimizer/default_constructor.py:155,181-190"),
        "schedule": Fact(SWIN_COSINE, f"{cfg}:{lines['schedule']}, mmcv/runner/hooks/lr_updater.py:129,137-155"),
        "gradient clipping": Fact("none", f"{cfg}:{lines['clip']}"),
        "precision": Fact("fp16 mixed", fp16),
        "global batch": Fact(batch(int(lines["per_gpu"]), int(lines["accumulate"])),
                             f"{cfg}:{lines['batch']},{lines['update_interval']}"),
        "epochs": Fact(lines["epochs_value"], f"{cfg}:{lines['epochs']}"),
    }
    if role == "reskd":
        model = "_base_/models/rkd_swinb_swins.py"
        facts.update(student_view(model))
        facts["student"] = Fact("Video Swin-S, ImageNet-1K 2-D weights inflated", f"{model}:9-22")
        facts["teacher"] = Fact("Video Swin-B at 224 px, the teacher stage's weights", f"{model}:23-37, {cfg}:6-7")
        facts["distillation"] = Fact(LOGIT_MAP_KD, f"{cfg}:7, mmaction/models/heads/grkd_3d_head.py:123-132")
    else:
        facts["student resolution"] = Fact(f"{res} px", f"{cfg}:{lines['train']}")
        facts["student"] = Fact(lines["student"], lines["student_where"])
        facts["distillation"] = Fact("none", cfg)
    return facts


def tsm_stage(cfg: str, res: int, short: int, msc_input: int, test_crop: str) -> dict[str, Fact]:
    """A TSM network trained alone (the teacher stage or the 112 px baseline): sgd_tsm_50e.py with the TSM
    overrides (lr 0.0075, weight decay 5e-4, 12 videos per GPU), no flip, twice-sampled three-crop tests."""
    facts = teacher_tsn(cfg, "_base_/models/tsm_r50.py", "TSM ResNet-50", 174, 8, ACC,
                        dict(classes="7", metrics="89", input="10", sampling="20", train="22-30 (no Flip)",
                             val="39-46", test="55-63", batch="70"), VIDEOS, tsm=True)
    facts.update(
        {
            "train pipeline": Fact(train_2d(short, msc_input, res, False), f"{cfg}:22-30 (no Flip)"),
            "val pipeline": Fact(views(8, short, f"CenterCrop({res})"), f"{cfg}:39-46"),
            "test pipeline": Fact(views(8, short, test_crop, twice=True), f"{cfg}:55-63"),
            "student resolution": Fact(f"{res} px", f"{cfg}:22-30"),
            "head": Fact(TSN_HEAD, "_base_/models/tsm_r50.py:16-17"),
            "optimizer": Fact(sgd(0.0075, 5e-4), f"{cfg}:92-94, {SGD_TSM}:7"),
            "global batch": Fact(batch(12, 1), f"{cfg}:70,93"),
        }
    )
    return facts


#: The lines of the official SlowOnly and Swin stage configs (the 224 px and 112 px files are laid out alike).
SLOW_STAGE_LINES = dict(classes="5", metrics="80", input="7", sampling="17", train="19-22", val="30-38",
                        test="46-54", student="4-13", head="14-19", optimizer="83-85", schedule="87-93", clip="86",
                        batch="61", epochs="94")
SWIN_STAGE_LINES = dict(classes="1-2 (_base_/models/swin_tiny.py:21)", metrics="89", input="7", sampling="17",
                        train="19-22", val="30-39", test="47-56",
                        head="_base_/models/swin_tiny.py:18-23, mmaction/models/heads/i3d_head.py:30-31",
                        optimizer="92", keys="93-96", schedule="98-104", clip="118", fp16="121", per_gpu="8",
                        accumulate="8", batch="63", update_interval="117", epochs="105")


def of(cfg: str, build: Callable[..., dict[str, Fact]], *args: Any) -> tuple[str, dict[str, Fact]]:
    """An ``OFFICIAL`` entry: the official config and the facts ``build(cfg, *args)`` reads from it."""
    return cfg, build(cfg, *args)


R = "myconfig/rkd/"
T = "myconfig/tsn/"

#: recipe (configs/<name>.yaml without .yaml) -> (official config, facts), or (None, derived-from recipe).
OFFICIAL: dict[str, tuple[str | None, dict[str, Fact] | str]] = {
    # ------------------------------------------------------------------------------------- ResKD, TSN / TSM
    "reskd_tsn_r50-112_from_tsn_r152-224_16x1_200e_anet": of(
        f"{R}rkd_r152_1x1x16_200e_actnet.py", reskd_tsn, "_base_/models/rkd_r152_r50.py", "ResNet-152", 200, 16, 256,
        200, MAP, ANET_LINES, PNG
    ),
    "reskd_tsn_r50-112_from_tsn_r50-224_16x1_200e_anet": of(
        f"{R}rkd_r50_1x1x16_200e_actnet.py", reskd_tsn, "_base_/models/rkd_r50_r50.py", "ResNet-50", 200, 16, 256,
        200, MAP, ANET_LINES, PNG
    ),
    "reskd_tsn_r50-96_from_tsn_r152-224_16x1_200e_anet": (None, "reskd_tsn_r50-112_from_tsn_r152-224_16x1_200e_anet"),
    "reskd_tsn_r50-72_from_tsn_r152-224_16x1_200e_anet": (None, "reskd_tsn_r50-112_from_tsn_r152-224_16x1_200e_anet"),
    "reskd_tsn_r50-112_from_tsn_r152-224_16x1_200e_fcvid": of(
        f"{R}rkd_r152_1x1x16_200e_fcvid.py", reskd_tsn, "_base_/models/rkd_r152_r50.py", "ResNet-152", 239, 16, 256,
        200, MAP, ANET_LINES, PNG
    ),
    "reskd_tsn_r50-112_from_tsn_r152-224_8x1_100e_minik": of(
        f"{R}rkd_r152_1x1x8_100e_minik.py", reskd_tsn, "_base_/models/rkd_r152_r50.py", "ResNet-152", 200, 8, 224,
        100, ACC, MINIK_LINES, VIDEOS
    ),
    "reskd_tsn_r50-112_from_tsn_r50-224_8x1_100e_minik": of(
        f"{R}rkd_r50_1x1x8_100e_minik.py", reskd_tsn, "_base_/models/rkd_r50_r50.py", "ResNet-50", 200, 8, 224,
        100, ACC, MINIK_LINES, VIDEOS
    ),
    "reskd_tsn_r50-96_from_tsn_r152-224_8x1_100e_minik": (None, "reskd_tsn_r50-112_from_tsn_r152-224_8x1_100e_minik"),
    "reskd_tsn_r50-72_from_tsn_r152-224_8x1_100e_minik": (None, "reskd_tsn_r50-112_from_tsn_r152-224_8x1_100e_minik"),
}

_tsm_cfg = f"{R}rkd_tsm_1x1x8_100e_sthv2.py"
_tsm_model = "_base_/models/rkd_tsm_tsm.py"
_tsm = reskd_tsn(_tsm_cfg, _tsm_model, "", 174, 8, 256, 100, ACC,
                 dict(metrics="89", input="10", sampling="20", train="22-30", val="39-46", test="55-62", batch="69",
                      epochs="91"), VIDEOS)
_tsm.update(
    {
        "train pipeline": Fact(train_2d(256, 256, 224, False), f"{_tsm_cfg}:22-30 (no Flip)"),
        "student": Fact("TSM ResNet-50, ImageNet (torchvision)", f"{_tsm_model}:9-13"),
        "teacher": Fact("TSM ResNet-50 at 224 px, the teacher stage's weights", f"{_tsm_model}:14-19, {_tsm_cfg}:6"),
        "head": Fact(TSN_HEAD, f"{_tsm_model}:27-28"),
        "distillation": Fact(FEATURE_KD, f"{_tsm_model}:26, mmaction/models/heads/rkd_2d_head.py:43,123"),
    }
)
OFFICIAL["reskd_tsm_r50-112_from_tsm_r50-224_8x1_100e_sthv2"] = (_tsm_cfg, _tsm)

_slow_cfg = f"{R}rkd_slowonly_8x8x1_150e_k400.py"
OFFICIAL["reskd_slowonly_r50-112_from_slowonly_r50-224_8x8_150e_k400"] = (
    _slow_cfg,
    slowonly(_slow_cfg, "_base_/models/rkd_slow_slow.py", 224,
             dict(classes="7", metrics="83", input="9", sampling="20", train="22-24 (no Flip)", val="32-40",
                  test="48-56", student="8-17", head="33", optimizer="85-87", schedule="89-95", clip="88",
                  batch="63", epochs="96"), reskd=True),
)

_swin_cfg = f"{R}rkd_swins_32x2x1_60e_k400.py"
OFFICIAL["reskd_swin3d_s-112_from_swin3d_b-224_32x2_60e_k400"] = (
    _swin_cfg,
    swin(_swin_cfg, 224, dict(classes="7", metrics="93", input="11", sampling="21", train="23-26", val="34-43",
                              test="51-60", head="_base_/models/rkd_swinb_swins.py:43, "
                              "mmaction/models/heads/grkd_3d_head.py:35,65", drop_path_value="student 0.1, teacher 0.1",
                              drop_path="_base_/models/rkd_swinb_swins.py:21,36", lr="1e-3", wd="0.02",
                              optimizer="96", keys="97-100", schedule="102-108", clip="122", fp16="125",
                              per_gpu="4", accumulate="16", batch="67", update_interval="121", epochs_value="60",
                              epochs="109"), "reskd"),
)

# ------------------------------------------------------------------------------------------ teacher stages
OFFICIAL.update(
    {
        "tsn_r152-224_16x1_50e_anet": of(
            f"{T}tsn_r152_1x1x16_50e_actnet_rgb.py", teacher_tsn, "_base_/models/tsn_r152.py", "TSN ResNet-152", 200,
            16, MAP, TEACHER_ANET_LINES, PNG
        ),
        "tsn_r50-224_16x1_50e_anet": of(
            f"{T}tsn_r50_1x1x16_50e_actnet_rgb.py", teacher_tsn, "_base_/models/tsn_r50.py", "TSN ResNet-50", 200, 16,
            MAP, TEACHER_ANET_LINES, PNG
        ),
        "tsn_r152-224_16x1_50e_fcvid": of(
            f"{T}tsn_r152_1x1x16_50e_fcvid_rgb.py", teacher_tsn, "_base_/models/tsn_r152.py", "TSN ResNet-152", 239,
            16, MAP, TEACHER_ANET_LINES, PNG
        ),
        "tsn_r152-224_8x1_50e_minik": of(
            f"{T}tsn_r152_1x1x8_50e_minik_rgb.py", teacher_tsn, "_base_/models/tsn_r152.py", "TSN ResNet-152", 200, 8,
            ACC, TEACHER_MINIK_LINES, VIDEOS
        ),
        "tsn_r50-224_8x1_50e_minik": of(
            f"{T}tsn_r50_1x1x8_50e_minik_rgb.py", teacher_tsn, "_base_/models/tsn_r50.py", "TSN ResNet-50", 200, 8,
            ACC, TEACHER_MINIK_LINES, VIDEOS
        ),
    }
)
# --------------------------------------------------------------------------------- low-resolution baselines
OFFICIAL.update(
    {
        "tsn_r50-112_16x1_50e_anet": of(
            f"{T}tsn_r50_112p_1x1x16_50e_actnet_rgb.py", baseline_tsn, 112, 128, 200, 16, MAP, BASE_ANET_LINES, PNG
        ),
        "tsn_r50-96_16x1_50e_anet": of(
            f"{T}tsn_r50_96p_1x1x16_50e_actnet_rgb.py", baseline_tsn, 96, 108, 200, 16, MAP, BASE_ANET_LINES, PNG
        ),
        "tsn_r50-72_16x1_50e_anet": of(
            f"{T}tsn_r50_72p_1x1x16_50e_actnet_rgb.py", baseline_tsn, 72, 80, 200, 16, MAP, BASE_ANET_LINES, PNG
        ),
        "tsn_r50-112_16x1_50e_fcvid": (None, "tsn_r50-112_16x1_50e_anet"),
        "tsn_r50-112_8x1_50e_minik": of(
            f"{T}tsn_r50_112p_1x1x8_50e_minik_rgb.py", baseline_tsn, 112, 128, 200, 8, ACC, BASE_MINIK_LINES, VIDEOS
        ),
        "tsn_r50-96_8x1_50e_minik": (None, "tsn_r50-112_8x1_50e_minik"),
        "tsn_r50-72_8x1_50e_minik": (None, "tsn_r50-112_8x1_50e_minik"),
    }
)

# ------------------------------------------------------ TSM, SlowOnly and Swin alone: teacher stage and baseline
_TSM, _SLOW, _SWIN = "myconfig/tsm/tsm_r50_", "myconfig/slowonly/slowonly_r50_", "myconfig/swin/swin_"
_SWIN_B = dict(drop_path_value="0.2", lr="5e-4", wd="0.05", epochs_value="50",
               student="Video Swin-B, ImageNet-22K 2-D weights inflated", student_where="_base_/models/swin_base.py:2-5")
_SWIN_S = dict(drop_path_value="0.1", lr="1e-3", wd="0.02", epochs_value="30",
               student="Video Swin-S, ImageNet-1K 2-D weights inflated", student_where="_base_/models/swin_small.py:2-6")
for _name, _cfg, _build in (
    ("tsm_r50-224_8x1_50e_sthv2", f"{_TSM}1x1x8_50e_sthv2_rgb.py",
     lambda cfg: tsm_stage(cfg, 224, 256, 224, "ThreeCrop(256)")),
    ("tsm_r50-112_8x1_50e_sthv2", f"{_TSM}112p_1x1x8_50e_sthv2_rgb.py",
     lambda cfg: tsm_stage(cfg, 112, 128, 112, "ThreeCrop(112)")),
    ("slowonly_r50-224_8x8_150e_k400", f"{_SLOW}8x8x1_150e_k400_rgb.py",
     lambda cfg: slowonly(cfg, "_base_/models/slowonly_r50.py", 224, SLOW_STAGE_LINES, reskd=False)),
    ("slowonly_r50-112_8x8_150e_k400", f"{_SLOW}112p_8x8x1_150e_k400_rgb.py",
     lambda cfg: slowonly(cfg, "_base_/models/slowonly_r50.py", 112, SLOW_STAGE_LINES, reskd=False)),
    ("swin3d_b-224_32x2_50e_k400", f"{_SWIN}base_32x2x1_50e_k400.py",
     lambda cfg: swin(cfg, 224, dict(SWIN_STAGE_LINES, drop_path=f"{cfg}:4", **_SWIN_B), "teacher")),
    ("swin3d_s-112_32x2_30e_k400", f"{_SWIN}small_112p_32x2x1_30e_k400.py",
     lambda cfg: swin(cfg, 112, dict(SWIN_STAGE_LINES, drop_path=f"{cfg}:4", **_SWIN_S), "baseline")),
):
    OFFICIAL[_name] = (_cfg, _build(_cfg))
