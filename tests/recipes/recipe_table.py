"""A recipe, value by value, as the official ResKD configs state them: what the table of configs/README.md shows.

``describe`` reads a config built by ``load_config(..., build_trainer=True)`` and the config as the CLI's parser
reads it without the test's CPU overrides; every value is rendered in the form of ``official.py``'s strings.
"""

from __future__ import annotations

import re
from typing import Any

from reskd_lightning.global_batch import GlobalBatch, plan_global_batch

from official import (  # type: ignore[import-not-found]
    ACC,
    COSINE,
    FEATURE_KD,
    LOGIT_MAP_KD,
    MAP,
    MSC,
    ONE_GROUP,
    OFFICIAL,
    RRC,
    TSM_GROUPS,
    Fact,
    sampling,
    views,
)

ROWS = (
    "classes", "metrics", "input", "train sampling", "train pipeline", "val pipeline", "test pipeline", "student",
    "student resolution", "teacher", "teacher mode", "head", "drop path", "distillation", "optimizer",
    "param groups", "global batch", "schedule", "epochs", "gradient clipping", "precision",
)  # fmt: skip

#: Rows where a recipe differs from its official config on purpose, with the reason shown in the table.
DEVIATIONS: dict[tuple[str, str], str] = {
    ("tsm_r50-224_8x1_50e_sthv2", "test pipeline"): (
        "the official test crops 256 px squares at short side 256 and feeds them to the network at 256 px; the "
        "module evaluates at its training size, so the same field of view is taken at 224 (short side 224)"
    ),
}

#: Derived recipes: the rows their derivation changes from the recipe they are derived from.
DERIVED_CHANGES: dict[str, set[str]] = {
    "reskd_tsn_r50-96_from_tsn_r152-224_16x1_200e_anet": {"student resolution"},
    "reskd_tsn_r50-72_from_tsn_r152-224_16x1_200e_anet": {"student resolution"},
    "reskd_tsn_r50-96_from_tsn_r152-224_8x1_100e_minik": {"student resolution"},
    "reskd_tsn_r50-72_from_tsn_r152-224_8x1_100e_minik": {"student resolution"},
    "tsn_r50-112_16x1_50e_fcvid": {"classes"},
    "tsn_r50-96_8x1_50e_minik": {"train pipeline", "val pipeline", "test pipeline", "student resolution"},
    "tsn_r50-72_8x1_50e_minik": {"train pipeline", "val pipeline", "test pipeline", "student resolution"},
}

NETWORK_NAMES = {
    ("TSN", "resnet152"): "TSN ResNet-152", ("TSN", "resnet50"): "TSN ResNet-50", ("TSM", "resnet50"): "TSM ResNet-50",
    ("SlowOnly", 50): "SlowOnly ResNet-50", ("VideoSwin", "swin3d_b"): "Video Swin-B",
    ("VideoSwin", "swin3d_s"): "Video Swin-S",
}  # fmt: skip


def network_name(net: Any) -> str:
    size = getattr(net, "backbone_name", None) or getattr(net, "depth", None)
    return NETWORK_NAMES[(type(net).__name__, size)]


def initialisation(net: Any, pretrained: str | None) -> str:
    if type(net).__name__ == "VideoSwin":
        if pretrained and pretrained.endswith("swin_base_patch4_window7_224_22k.pth"):
            return "ImageNet-22K 2-D weights inflated"
        if pretrained and pretrained.endswith(("swin_small_patch4_window7_224.pth", "swin_base_patch4_window7_224.pth")):
            return "ImageNet-1K 2-D weights inflated"
        return f"{pretrained} (torchvision)"
    if pretrained == "IMAGENET1K_V1":
        return "ImageNet (torchvision)" + (" inflated" if type(net).__name__ == "SlowOnly" else "")
    return str(pretrained)


def precision_name(precision: Any) -> str:
    return {"32-true": "fp32", "32": "fp32", "16-mixed": "fp16 mixed", "bf16-mixed": "bf16 mixed"}[str(precision)]


def param_groups_text(groups: Any) -> str:
    if groups is None:
        return ONE_GROUP
    if groups.custom_keys:
        parts = []
        for key in groups.custom_key_order():
            mults = groups.custom_keys[key]
            text = []
            if mults.get("lr_mult", 1.0) != 1.0:
                text.append(f"lr x{mults['lr_mult']:g}")
            if mults.get("decay_mult", 1.0) != 1.0:
                text.append("wd 0" if mults["decay_mult"] == 0 else f"wd x{mults['decay_mult']:g}")
            parts.append(f"{key} {', '.join(text)}")
        return "custom_keys, longest first, first match: " + "; ".join(parts)
    if (groups.bias_lr_mult, groups.bias_decay_mult, groups.norm_decay_mult) == (2.0, 0.0, 0.0) and not (
        groups.lr_mults or groups.no_decay_keys
    ):
        return TSM_GROUPS
    return repr(groups)


def schedule_text(scheduler: Any) -> str:
    kind = type(scheduler).__name__
    if kind == "LambdaLR":
        return COSINE  # the module's default, checked to reach 0 by test_recipes
    warmup = f"linear warm-up {scheduler.warmup_epochs:g} epochs (per iteration, from x{scheduler.warmup_start_factor:g})"
    if kind == "WarmupMultiStepLR":
        return f"{warmup}, x{scheduler.gamma:g} at epochs {scheduler.milestones}"
    if kind == "WarmupCosineLR" and scheduler.eta_min_factor == 0:
        return f"{warmup}, cosine to 0 per epoch"
    return kind


def global_batch_text(callbacks: list[Any], per_device: int) -> str:
    """The recipe's global batch as the official run made it on 8 GPUs (GlobalBatch keeps it on any number)."""
    keep = [c for c in callbacks if isinstance(c, GlobalBatch)]
    if len(keep) != 1:
        return f"no GlobalBatch callback ({len(keep)}): {per_device} videos per device"
    plan = plan_global_batch(keep[0].size, per_device, 8)
    return f"{plan.per_device} videos x 8 GPUs x {plan.accumulate} = {plan.global_batch}"


def distillation_text(callbacks: list[Any]) -> str:
    texts = []
    for c in callbacks:
        kind = type(c).__name__
        if kind == "FeatureMapKD" and c.weight == 100 and c.mode == "bilinear":
            texts.append(FEATURE_KD)
        elif kind == "LogitMapKD" and (c.weight, c.temperature, c.reduction) == (200, 2.0, "mean"):
            texts.append(LOGIT_MAP_KD)
        elif kind.endswith("KD"):
            texts.append(f"{kind}(weight={c.weight:g})")
    return " + ".join(texts) or "none"


def describe(cli: Any, original: Any, optimizer: Any, scheduler: Any) -> dict[str, str]:
    """The table rows of a built config, its optimiser and schedule (from ``configure_optimizers``); ``original`` is
    the config as the CLI's parser reads it without the CPU overrides."""
    model, data, trainer = cli.model, cli.datamodule, cli.trainer
    hp, cfg = data.hparams, data.settings
    crop = hp.crop_size
    if cfg["train_crop"] == "multiscale":
        scales = ", ".join(f"{s:g}" for s in hp.scales)
        msc = MSC.format(hp.multiscale_input_size or crop).replace("1, 0.875, 0.75, 0.66", scales)
        msc = msc.replace("num_fixed_crops=13", f"num_fixed_crops={hp.num_fixed_crops}")
        train = [f"Resize(-1, {hp.short_side})", msc, f"Resize({crop}, {crop})"]
    elif cfg["train_crop"] == "random_resized":
        train = [f"Resize(-1, {hp.short_side})", RRC, f"Resize({crop}, {crop})"]
    else:
        train = [f"Resize(-1, {hp.short_side})", f"RandomCrop({crop})"]
    if cfg["flip"]:
        train.append("Flip(0.5)")
    test_crop = f"ThreeCrop({crop})" if cfg["test_crop"] == "three" else f"CenterCrop({crop})"
    teacher = model.teacher
    get = original.get
    rows = {
        "classes": str(model.num_classes),
        "metrics": MAP if data.metric == "mAP" else ACC,
        "input": f"frame folders, {hp.filename_tmpl}" if cfg["list_format"] == "rawframes" else "videos",
        "train sampling": sampling(cfg["clip_len"], cfg["frame_interval"], cfg["num_segments"]),
        "train pipeline": " > ".join(train),
        "val pipeline": views(cfg["num_segments"], hp.val_short_side or hp.short_side, f"CenterCrop({crop})"),
        "test pipeline": views(
            cfg["num_segments"] * cfg["num_test_clips"], hp.test_short_side or hp.short_side, test_crop,
            twice=bool(hp.twice_sample),
        ),
        "student": f"{network_name(model.student)}, "
        + initialisation(model.student, get("model.student.init_args.pretrained")),
        "student resolution": f"{model.student_resolution} px",
        "teacher": "-",
        "teacher mode": "-",
        "head": f"dropout {get('model.student.init_args.dropout'):g}, "
        f"init_std {get('model.student.init_args.init_std'):g}",
        "drop path": "-",
        "distillation": distillation_text(trainer.callbacks),
        "optimizer": optimizer_text(optimizer),
        "param groups": param_groups_text(model.param_groups),
        "global batch": global_batch_text(trainer.callbacks, hp.batch_size),
        "schedule": schedule_text(scheduler),
        "epochs": str(trainer.max_epochs),
        "gradient clipping": f"norm {trainer.gradient_clip_val:g}" if trainer.gradient_clip_val else "none",
        "precision": precision_name(get("trainer.precision")),
    }
    if teacher is not None:
        views_ = model.view_options
        same_pixels = views_["mode"] == "bilinear" and not views_["antialias"]
        rows["student resolution"] += ", bilinear resize of the teacher's normalised clip" if same_pixels else ""
        stage = re.fullmatch(r"work_dirs/[^/]+/teacher\.ckpt", str(get("model.teacher_ckpt")))
        weights = "the teacher stage's weights" if stage else str(get("model.teacher_ckpt"))
        rows["teacher"] = f"{network_name(teacher)} at {model.teacher_resolution} px, {weights}"
        rows["teacher mode"] = model.teacher_mode
    drop = [get(f"model.{r}.init_args.stochastic_depth_prob") for r in ("student", "teacher")]
    if drop[0] is not None:
        rows["drop path"] = f"student {drop[0]:g}, teacher {drop[1]:g}" if teacher is not None else f"{drop[0]:g}"
    return rows


def optimizer_text(optimizer: Any) -> str:
    defaults = optimizer.defaults
    if type(optimizer).__name__ == "SGD":
        return f"SGD(lr={defaults['lr']:g}, momentum={defaults['momentum']:g}, weight_decay={defaults['weight_decay']:g})"
    betas = ", ".join(f"{b:g}" for b in defaults["betas"])
    return f"AdamW(lr={defaults['lr']:g}, betas=({betas}), weight_decay={defaults['weight_decay']:g})"


# ------------------------------------------------------------------------------------------------ markdown
BEGIN = "<!-- recipe tables: generated by `python tests/recipes/test_recipe_tables.py --regenerate` -->"
END = "<!-- end of recipe tables -->"
OFFICIAL_REPO = "https://github.com/CVMI-Lab/ResKD/blob/c6b85a3"


def official_of(name: str) -> tuple[str | None, str | None, dict[str, Fact]]:
    """(official config, derived-from recipe, facts) of a recipe."""
    config, facts = OFFICIAL[name]
    if config is None:
        base = str(facts)
        return OFFICIAL[base][0], base, OFFICIAL[base][1]  # type: ignore[return-value]
    return config, None, facts  # type: ignore[return-value]


def expected_difference(name: str, row: str) -> str | None:
    """Why ``row`` of ``name`` differs from the official value, or None where it must be equal."""
    if (name, row) in DEVIATIONS:
        return DEVIATIONS[(name, row)]
    config, base, _ = official_of(name)
    if base is not None and row in DERIVED_CHANGES.get(name, set()):
        return f"derived from `{base}`"
    return None


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(name: str, rows: dict[str, str]) -> str:
    config, base, facts = official_of(name)
    lines = [f"### `{name}`", ""]
    if base is not None:
        lines.append(f"No official config: derived from [`{base}`](#{base.replace('.', '')}), whose official values "
                     f"are shown; the rows the derivation changes say so.")
    else:
        lines.append(f"Official: [`configs/{config}`]({OFFICIAL_REPO}/configs/{config}).")
    lines += ["", "| setting | this recipe | official | where (official) |", "| --- | --- | --- | --- |"]
    for row in ROWS:
        ours = rows[row]
        fact = facts.get(row, Fact("-", "-"))
        why = expected_difference(name, row)
        mark = "" if ours == fact.value else f" **(differs: {why})**"
        lines.append(f"| {row} | {cell(ours)}{mark} | {cell(fact.value)} | {cell(fact.where)} |")
    return "\n".join(lines) + "\n"


def render(all_rows: dict[str, dict[str, str]]) -> str:
    return "\n".join([BEGIN, ""] + [table(name, all_rows[name]) for name in OFFICIAL] + [END])
