"""``finenet deblur``: the command line and ``run``, which ties decoding, the face tracks
(``tracking``), FineNet (``model``), the paste-back (``paste``) and encoding together.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from pathlib import Path

from tqdm import tqdm

from .compare import CompareSink, check_compare, parse_labels, temp_outputs
from ..errors import FineNetError
from ..params import DEFAULT_PARAMS
from ..device import pick_device
from ..video.stream import (CONTAINERS, CRF_MAX, DEFAULT_CRF, DEFAULT_PRESET, X264_PRESETS, VideoSink,
                       VideoSource, output_format, parse_encoding, remove_stale_temps)
from .model import KEEP_BIAS, TTA, Loaded, check_keep_bias, load, restore_residuals
from .paste import CONTEXT, FEATHER, context_crop
from .tracking import (DETECT_MAX_SIDE, FACES, MAX_GAP, BufferStats, bridge_gaps, crop_faces,
                       deblur_faces, five_frame_windows, smooth_windows)


def add_arguments(p) -> None:
    p.add_argument("input", help="input video (any length and resolution), or a folder of videos "
                                 "(each deblurred into the -o folder)")
    p.add_argument("-o", "--output", required=True,
                   help=f"output video ({', '.join(CONTAINERS)}); written atomically. With a "
                        f"folder input, the output folder (not the input folder): OUTDIR/<the "
                        f"input's name>, .mp4 where the input's container is not one of these, "
                        f"and OUTDIR/deblur_summary.json")
    p.add_argument("--checkpoint", default=None,
                   help="a models folder: predeblur/, enhance/full/, interp/full/, combine/late/ "
                        "model.pt. Default: the release model installed with the package (the "
                        "bench tier's FineNet, checked against its manifest); `--checkpoint "
                        "models`: what `dvc repro` just trained")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CUDA when available (default)")
    p.add_argument("--params", default=str(DEFAULT_PARAMS), help="parameter file (default: params.yaml)")
    p.add_argument("--profile", default=None, help="override params.yaml's profile (e.g. paper)")
    p.add_argument("--crf", default=None, metavar="N",
                   help=f"x264 constant rate factor, 0 to {CRF_MAX}, fractions allowed (default: "
                        f"{DEFAULT_CRF}). 0 is mathematically lossless (written as x264 qp 0): the "
                        f"pixels FineNet leaves alone come out bit-identical to the decoded input. "
                        f"Higher values give smaller, lossier files: CRF 1 already costs those "
                        f"pixels 1.5-8 dB of PSNR; CRF 18 files are 1/7-1/20 the lossless size "
                        f"(see README)")
    p.add_argument("--lossless", action="store_true",
                   help="mathematically lossless H.264 (x264 qp 0, the same as --crf 0) in the "
                        "output pixel format, whatever the default CRF; not with another --crf")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=X264_PRESETS,
                   help=f"x264 speed / size trade-off (default: {DEFAULT_PRESET}); slower presets give "
                        f"smaller files at the same quality")
    p.add_argument("--compare", default=None, metavar="PATH",
                   help="also write a comparison video: the input and the output side by side "
                        "(same frames, rate and encoder settings; written atomically with the "
                        "output). With a folder input, a folder for them (neither the input nor "
                        "the output folder), one per video under the output's name")
    p.add_argument("--labels", default=None, metavar="LEFT,RIGHT",
                   help="with --compare: label its halves, e.g. \"input,FineNet\" (small text bars "
                        "above the video; default: no text)")
    p.add_argument("--faces", choices=FACES, default="all",
                   help="all: deblur every face, each tracked with its own ID (default); largest: "
                        "only the largest face where a track starts, then the one nearest it")
    p.add_argument("--batch", default="1", metavar="N",
                   help="run FineNet on N consecutive five-frame windows per call (default: 1): "
                        "fewer, larger model calls, meant for a GPU; the same output; the "
                        "streaming buffer grows by N-1 frames")
    p.add_argument("--tta", choices=TTA, default="none",
                   help="test-time augmentation. flip: average FineNet's output with the mirrored "
                        "output of the mirrored crops (twice the model's time; see README for what "
                        "it gains on the held-out clips); none: one pass (default)")
    p.add_argument("--context", type=float, default=CONTEXT, metavar="R",
                   help=f"FineNet runs on a crop R times the face crop's side (data.crop_margin x "
                        f"the face box), at the same scale, so that the paste-back's feather band "
                        f"({FEATHER * 100:.0f}%% of the crop side) lies around the face rather than on it "
                        f"(default: {CONTEXT}, chosen on validation clips; 1: the face crop only; "
                        f"the crop's cost grows as R squared)")
    p.add_argument("--keep-bias", type=float, default=KEEP_BIAS, metavar="B",
                   help=f"lean towards leaving frames alone: a frame is returned unchanged where "
                        f"FineNet's keep model (do no harm) scores it above -B, not above 0 "
                        f"(default: {KEEP_BIAS:g}, chosen on validation clips; 0 to 10)")


def encode_options(args) -> dict:
    """All of ``run``'s keyword options from the parsed command line (the encoder's, the
    comparison video's and the window batch): ``finenet.cli`` passes them as ``**`` keywords."""
    return {"crf": args.crf, "lossless": args.lossless, "preset": args.preset,
            "compare": args.compare, "labels": args.labels, "batch": args.batch, "faces": args.faces,
            "tta": args.tta, "context": args.context, "keep_bias": args.keep_bias}


def parse_batch(batch) -> int:
    """``--batch``: a whole number of windows, 1 or more; else a one-line ``FineNetError``."""
    text = str(batch).strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise FineNetError("--batch", f"must be a whole number of five-frame windows, 1 or more, "
                                      f"got {batch!r}")
    return int(text)


def check_output(path: Path, source: Path | None = None) -> str:
    """The output's container format; an error now if its folder cannot be written, or if it is
    the input ``source`` itself under any name (the same path, ``./`` or absolute, a symbolic or a
    hard link: the same device and inode), which writing the output would replace."""
    if source is not None:
        try:
            same = os.path.samefile(path, source)
        except OSError:                         # either is missing: they cannot be one file
            same = False
        if same:
            alias = "" if str(path) == str(source) else f" ({source}, under another name)"
            raise FineNetError(path, f"is the input video{alias}: writing the output there would "
                                     f"replace the original; give the output another name")
    fmt = output_format(path)
    if path.is_dir():
        raise FineNetError(path, "is a folder: give the output video's file name")
    folder = path.absolute().parent
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise FineNetError(folder, f"output folder cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise FineNetError(folder, "output folder is not writable")
    return fmt


# ------------------------------------------------------------------------------------ run

def run(params: dict, source, output, checkpoint=None, device: str = "auto",
        progress: bool = True, stats: BufferStats | None = None, *, crf=None, lossless: bool = False,
        preset: str | None = None, compare=None, labels=None, batch=1, faces: str = "all",
        tta: str = "none", context: float = CONTEXT, keep_bias: float = KEEP_BIAS,
        loaded: Loaded | None = None) -> dict:
    """Deblur ``source`` into ``output``; returns a summary (frames, timings, buffer peaks, the
    output's pixel format and encoder settings). ``crf`` (x264, 0..51; default
    ``video.stream.DEFAULT_CRF``) or ``lossless`` (x264 qp 0), ``preset`` (x264). ``compare``: also
    write the side-by-side comparison video there (``finenet.deblur.compare``; ``labels``: "left,right"
    text above its halves), atomically with the output: a failure leaves neither. ``batch``:
    windows per model call (``restore``). ``faces``: "all" or "largest" (``deblur_faces``).
    ``tta``: "none" or "flip" (``predict``). ``context``: FineNet's crop side over the face
    crop's (``paste.context_crop``). ``keep_bias``: see ``model.output``.
    ``loaded``: the model and detectors, already loaded.

    A folder ``source`` deblurs each of its videos into the folder ``output``
    (``finenet.deblur.folder.run_folder``, which returns its summary)."""
    if Path(source).is_dir():
        from .folder import run_folder

        return run_folder(params, source, output, checkpoint, device, progress, crf=crf,
                          lossless=lossless, preset=preset, compare=compare, labels=labels,
                          batch=batch, faces=faces, tta=tta, context=context, keep_bias=keep_bias)
    source, output = Path(source), Path(output)
    d, lm = params["data"], params["landmarks"]
    m = params["model"]
    keep_bias = check_keep_bias(keep_bias)
    crop = context_crop(d["crop_size"], lm["heatmap_size"], context,
                        m["input_stride"] * 2 ** (m["levels"] - 1))
    size, margin = crop.size, d["crop_margin"] * crop.ratio
    encoding = parse_encoding(crf, lossless, preset)
    batch, labels = parse_batch(batch), parse_labels(labels, compare)
    if faces not in FACES:
        raise FineNetError("--faces", f"must be one of {', '.join(FACES)}, got {faces!r}")
    if tta not in TTA:
        raise FineNetError("--tta", f"must be one of {', '.join(TTA)}, got {tta!r}")
    comparison = check_compare(compare, source, output, check_output)   # (path, format) or None
    dev = pick_device(device, "--device")
    fmt = check_output(output, source)               # also: not the input under another name
    remove_stale_temps(output.absolute().parent)     # left by killed runs, for any output name
    note = lambda msg: tqdm.write(msg, file=sys.stderr)  # noqa: E731
    # damaged frames, an end short of the declared length: warned when decoding gets to the end
    video = VideoSource(source, warn=lambda problem: note(f"finenet: warning: {source}: {problem}"))
    stats = stats or BufferStats()
    try:
        loaded = loaded or load(params, checkpoint, dev)
        model, face_detector, landmark_detector = (loaded.model, loaded.face_detector,
                                                   loaded.landmark_detector)
        scale = min(1.0, DETECT_MAX_SIDE / max(video.width, video.height))
        layout = video.layout
        if video.note:
            note(f"finenet: note: {source}: {video.note}")
        timing = video.check_timing()
        if timing:
            note(f"finenet: warning: {source}: {timing}")
        out_size = layout.padded_size(video.width, video.height)
        if out_size != (video.width, video.height):
            odd = [side for side, n, m in (("width", out_size[0], video.width),
                                           ("height", out_size[1], video.height)) if n != m]
            note(f"finenet: note: {source}: {video.width}x{video.height} padded to "
                 f"{out_size[0]}x{out_size[1]} ({layout.pix_fmt} needs an even {' and '.join(odd)}; "
                 f"last column/row repeated)")
        pictures: deque = deque()       # decoded frames (YUV planes + RGB) not yet written

        def decoded():
            for picture in video:
                pictures.append(picture)
                yield picture.rgb

        def stages(feed, track: int):
            """One face track's steps 2-5 (its buffers reported under its own names)."""
            st = stats.for_track(track)
            frames = bridge_gaps(feed, MAX_GAP, st)
            frames = smooth_windows(frames, d["box_smoothing"], margin, st)
            frames = crop_faces(frames, landmark_detector, size, margin, crop.heatmap_size, lm["sigma"])
            windows = five_frame_windows(frames, st, params["loader"]["num_frames"])
            return restore_residuals(windows, model, dev, size, st, checkpoint, batch, tta, crop.face,
                                     keep_bias)

        images = deblur_faces(decoded(), face_detector, scale, faces, stages, size, stats)
        start = time.perf_counter()
        if comparison is not None:
            remove_stale_temps(comparison[0].absolute().parent)
        try:
            with temp_outputs(output, comparison and comparison[0]) as (tmp, compare_tmp):
                sink = VideoSink(tmp, video.width, video.height, video.fps, fmt,
                                 audio_from=source if video.has_audio else None, notify=note,
                                 layout=layout, encoding=encoding,
                                 time_base=video.time_base if video.variable_rate else None)
                beside = None               # the comparison video's writer
                try:
                    if comparison is not None:
                        beside = CompareSink(compare_tmp, sink, comparison[1], labels,
                                             where=comparison[0])
                    with tqdm(total=video.frames_hint or None, desc=f"deblur {source.name}",
                              unit="frame", disable=not progress, leave=False) as bar:
                        for index, image, rect in images:
                            picture = pictures.popleft()
                            assert picture.index == index, (picture.index, index)
                            sink.write(picture, image, rect)    # rect None: the planes as decoded
                            if beside is not None:
                                beside.write(picture, image, rect)
                            bar.update(1)
                    if stats.detected == 0:
                        raise FineNetError(source, f"no face detected in any of the {video.count} frames")
                except BaseException:
                    sink.abort()
                    if beside is not None:
                        beside.abort()
                    raise
                sink.close()
                if beside is not None:
                    beside.close()
        except OSError as exc:
            raise FineNetError(output.absolute().parent,
                               f"cannot write the output here ({exc.strerror or exc})") from None
        seconds = time.perf_counter() - start
    finally:
        video.close()
    return {"input": str(source), "output": str(output), "frames": video.count,
            "rotation": layout.rotation, "shortfall": video.shortfall,
            "corrupt_frames": len(video.corrupt),
            "fps": float(video.fps), "size": [video.width, video.height], "output_size": list(out_size),
            "input_pix_fmt": layout.input_pix_fmt, "pix_fmt": layout.pix_fmt,
            "color_range": "full" if layout.full_range else "limited", "matrix": layout.matrix_name,
            **encoding.describe(),
            "faces": faces, "tracks": stats.tracks, "faces_detected": stats.detected,
            "deblurred": stats.deblurred, "faces_deblurred": stats.faces_deblurred,
            "passed_through": stats.passed, "audio": sink.audio_mode, "device": dev.type,
            "seconds": round(seconds, 3), "frames_per_s": round(video.count / max(seconds, 1e-9), 3),
            "buffer_peak": dict(stats.peak), "buffer_peak_total": stats.peak_total,
            "batch": batch, "context": context, "keep_bias": keep_bias, "crop_size": size,
            "compare": str(comparison[0]) if comparison else None,
            "compare_size": [beside.width, beside.height] if beside else None}
