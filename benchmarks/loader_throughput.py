"""Loader throughput per CPU core for the paper's ActivityNet clip, from long videos and from prepared data.

One ``VideoDataset`` item = 16 TSN segments, short side 256, ``MultiScaleCrop`` (13 offsets) resized to 224,
flip: the paper's ActivityNet training clip. In one process with one thread, interleaved repeat by repeat
(``reskd_lightning.efficiency.time_repeats``; the median of ``--repeats``), it times items read from

- (a) the original long videos (60 s, 30 fps, 640x360 H.264, a keyframe every 2 s), ``PyAVDecoder`` exact;
- (b) the same with ``fast_decode`` (each segment's frame snapped to a keyframe inside it);
- (c) frame folders written by ``reskd prepare``: PNG at 4 fps, short side 360 (``--preset anet``, the official
  frames), JPEG at 4 fps, short sides 360 and 256 (``--preset anet-jpg``);
- (d) the prepared MJPEG files at 4 fps, short side 256 (``--preset anet-video``),

and prints a markdown table of CPU ms per clip, clips/s per core and the ratio to (a) (target: prepared data
>= 5x (a)), then the loader cores one GPU needs: ``--step-rate`` (student clips/s per GPU; measured here when a
GPU is present, else an assumed rate, printed with its source) / clips/s per core.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/loader_throughput.py [--videos 3] [--seconds 60] [--clips 2]
        [--repeats 5] [--out runs/bench_data] [--step-rate CLIPS_PER_S]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning OpenMP threads distort timings

import argparse  # noqa: E402
import statistics  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from data_throughput import ensure_videos  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from reskd_lightning.data import (  # noqa: E402
    PyAVDecoder,
    RawFrameDecoder,
    SampleFrames,
    VideoDataset,
    VideoRecord,
    build_train_transform,
    load_rawframe_list,
    load_video_list,
)
from reskd_lightning.data.prepare import prepare_videos  # noqa: E402
from reskd_lightning.data.prepare_layouts import (  # noqa: E402
    PREPARE_PRESETS,
    PrepareSettings,
    as_rgb,
    decoded_frames,
    frames_at_fps,
)
from reskd_lightning.efficiency import time_repeats  # noqa: E402

SEGMENTS, SHORT_SIDE, CROP = 16, 256, 224  # the paper's ActivityNet TSN clip

#: Prepared layouts: row name -> (folder under the cache, settings).
LAYOUTS: dict[str, tuple[str, PrepareSettings]] = {
    "(c) PNG frames, 4 fps, 360 (anet)": ("png_360", PREPARE_PRESETS["anet"]),
    "(c) JPEG frames, 4 fps, 360": ("jpg_360", PrepareSettings(image_format="jpg", fps=4, short_side=360)),
    "(c) JPEG frames, 4 fps, 256 (anet-jpg)": ("jpg_256", PREPARE_PRESETS["anet-jpg"]),
    "(d) MJPEG video, 4 fps, 256 (anet-video)": ("mjpeg_256", PREPARE_PRESETS["anet-video"]),
}

# Assumed when no GPU is present: NVIDIA's published ResNet-50 v1.5 training throughput on one A100 80GB in
# TF32 (the paper's CNN recipes are fp32), 938 images/s at 224 px (DeepLearningExamples,
# PyTorch/Classification/ConvNets/resnet50v1.5/README.md), times 3.8 for 112 px (the MACs ratio, `reskd flops`),
# over 16 segments per clip: the student step alone, the fastest consumer (a ResKD step also runs the teacher).
ASSUMED_STEP_RATE = 938 * 3.8 / SEGMENTS
ASSUMED_SOURCE = "assumed: A100 TF32 ResNet-50 938 img/s at 224 px (NVIDIA) x 3.8 at 112 px / 16 segments"


@dataclass
class Source:
    """One row: the records a ``VideoDataset`` reads, its decoder, the MB they take on disk and, for prepared
    data, the mean absolute difference (0-255) of its frames from the frames they were made from."""

    records: list[VideoRecord]
    decoder: Any
    mb: float
    error: float | None = None


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def fidelity(video: Path, record: VideoRecord, decoder: Any, settings: PrepareSettings) -> float:
    """Mean absolute difference between the prepared frames of ``video`` (``record``) and the frames they were
    made from, resized as ``reskd prepare`` resizes (so 0 for lossless PNG)."""
    kept = frames_at_fps(decoded_frames(video), settings.fps)
    reference = [as_rgb(frame, settings.short_side, settings.antialias) for frame in kept]
    with decoder.open(record.path) as handle:
        frames = handle.get_frames(np.arange(len(reference))).numpy()
    return float(np.mean([np.abs(a.astype(np.float32) - b).mean() for a, b in zip(frames, reference)]))


def prepare_layouts(videos: Sequence[Path], out: Path) -> dict[str, Source]:
    """Each layout of ``LAYOUTS`` prepared from ``videos`` into ``out`` (once: reruns skip finished videos)."""
    listed = out / "videos.txt"
    listed.parent.mkdir(parents=True, exist_ok=True)
    listed.write_text("".join(f"{Path(v).resolve()} 0\n" for v in videos))
    sources = {}
    for row, (name, settings) in LAYOUTS.items():
        print(f"preparing {row} ...", flush=True)
        report = prepare_videos(listed, out / name, settings, workers=os.cpu_count() or 1, progress=True)
        if report.failed:
            raise RuntimeError(f"preparing {row} failed: {report.failed}")
        if settings.layout == "frames":
            records = load_rawframe_list(report.list_file)
            decoder: Any = RawFrameDecoder(settings.filename_tmpl)
        else:
            records, decoder = load_video_list(report.list_file), PyAVDecoder()
        mb = sum(_size_mb(Path(r.path)) for r in records)
        sources[row] = Source(records, decoder, mb, fidelity(videos[0], records[0], decoder, settings))
    return sources


def clip_loaders(videos: Sequence[Path], out: Path, clips: int) -> dict[str, tuple[Callable[[], None], Source]]:
    """``{row: (a function loading `clips` items of every video, its Source)}`` for every source."""
    originals = [VideoRecord(str(v), 0) for v in videos]
    size = sum(_size_mb(Path(v)) for v in videos)
    sources = {
        "(a) long videos, exact (PyAVDecoder)": Source(originals, PyAVDecoder(), size),
        "(b) long videos, fast_decode": Source(originals, PyAVDecoder(snap_to_keyframe=True), size),
        **prepare_layouts(videos, out),
    }
    sampler = SampleFrames(clip_len=1, frame_interval=1, num_clips=SEGMENTS)
    transform = build_train_transform(SHORT_SIDE, CROP, flip=True, crop="multiscale")
    loaders = {}
    for row, source in sources.items():
        dataset = VideoDataset(source.records, sampler, transform, source.decoder, source=row, max_retries=0)

        def load(dataset: VideoDataset = dataset) -> None:
            torch.manual_seed(0)  # every source draws the same segments, crops and flips
            for _ in range(clips):
                for i in range(len(dataset)):
                    assert dataset[i]["video"].shape == (3, SEGMENTS, CROP, CROP)

        loaders[row] = (load, source)
    return loaders


def measured_step_rate() -> tuple[float, str]:
    """The student's training-step clips/s on this machine's GPU (TSN-R50, 112 px, 16 segments, batch 32,
    fp32), or the assumed rate without a GPU."""
    if not torch.cuda.is_available():
        return ASSUMED_STEP_RATE, ASSUMED_SOURCE
    from reskd_lightning import ResKDModule
    from reskd_lightning.benchmark import measure_training_step, synthetic_batch
    from reskd_lightning.models import TSN

    module = ResKDModule(student=TSN(200, backbone="resnet50"), student_resolution=112).cuda()
    batch = synthetic_batch(32, SEGMENTS, CROP, 200, device="cuda")
    timing = measure_training_step(module, batch, warmup=3, iters=10)["student_step"]
    return timing.clips_per_s, f"measured: {torch.cuda.get_device_name()} student step, batch 32, fp32"


def print_table(ms: dict[str, float], sources: dict[str, Source], step_rate: float, rate_source: str) -> bool:
    """The markdown table (from CPU ms per clip) and the loader cores a GPU needs; returns whether every
    prepared layout at the training short side meets the target, >= 5x (a) per core."""
    base = ms["(a) long videos, exact (PyAVDecoder)"]
    print(f"| source | MB on disk | mean abs. error | CPU ms / clip | clips/s per core | vs (a) | "
          f"cores per GPU at {step_rate:.0f} clips/s |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |")  # fmt: skip
    for row, value in ms.items():
        error = sources[row].error
        print(f"| {row} | {sources[row].mb:.1f} | {'-' if error is None else f'{error:.2f}'} | {value:.1f} | "
              f"{1e3 / value:.1f} | {base / value:.2f}x | {step_rate * value / 1e3:.1f} |")  # fmt: skip
    print(f"\nstudent step rate: {step_rate:.0f} clips/s per GPU ({rate_source})")
    ok = True
    for row in (r for r in ms if "256" in r):
        ratio = base / ms[row]
        ok &= ratio >= 5
        print(f"target {row} >= 5x (a): {ratio:.2f}x {'PASS' if ratio >= 5 else 'FAIL'}")
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=3, help="long videos")
    parser.add_argument("--seconds", type=int, default=60, help="length of each video")
    parser.add_argument("--clips", type=int, default=2, help="clips per video in each timed call")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per source (median), after one warm-up")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_data"), help="cache of videos and prepared data")
    parser.add_argument("--step-rate", type=float, help="student clips/s per GPU (default: measured, or assumed)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    videos = ensure_videos(args.out, args.videos, args.seconds)[2]  # a keyframe every 2 s, as web videos
    loaders = clip_loaders(videos, args.out / f"loader_{args.seconds}s", args.clips)
    step_rate, source = (args.step_rate, "given") if args.step_rate else measured_step_rate()
    times = time_repeats({row: fn for row, (fn, _) in loaders.items()}, "cpu", warmup=1, iters=args.repeats)
    clips = len(videos) * args.clips
    ms = {row: 1e3 * statistics.median(times[row][1]) / clips for row in loaders}  # [1]: CPU seconds
    print(f"\n{len(videos)} x {args.seconds} s videos, {SEGMENTS} segments, short side {SHORT_SIDE}, MultiScaleCrop "
          f"-> {CROP}, flip; one process, one thread; median of {args.repeats} x {clips} clips (CPU)\n")  # fmt: skip
    return 0 if print_table(ms, {row: s for row, (_, s) in loaders.items()}, step_rate, source) else 1


if __name__ == "__main__":
    raise SystemExit(main())
