"""Decoding videos (decord) and images with one-line errors for every kind of bad file."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from pathlib import Path

import numpy as np

from ..errors import FineNetError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv"}


def to_rgb(frames: np.ndarray, where) -> np.ndarray:
    """Grayscale (…,H,W) or (…,H,W,1) and RGBA become RGB uint8; anything else is an error."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        if np.issubdtype(frames.dtype, np.integer) and frames.max(initial=0) > 255:
            frames = (frames / (frames.max() / 255.0)).astype(np.uint8)
        else:
            frames = frames.astype(np.uint8)
    if frames.ndim >= 3 and frames.shape[-1] == 4:
        frames = frames[..., :3]
    if frames.ndim >= 3 and frames.shape[-1] == 1:
        frames = frames[..., 0]
    if frames.ndim == 2 or (frames.ndim == 3 and frames.shape[-1] not in (3,)):
        frames = np.repeat(frames[..., None], 3, axis=-1)
    if frames.shape[-1] != 3:
        raise FineNetError(where, f"unsupported pixel layout {frames.shape}")
    return np.ascontiguousarray(frames)


def read_video(path, start: int = 0, length: int | None = None) -> tuple[np.ndarray, float]:
    """Frames ``[start, start+length)`` as (T,H,W,3) uint8 RGB, and the frame rate."""
    path = Path(path)
    if not path.is_file():
        raise FineNetError(path, "video file not found")
    if path.stat().st_size == 0:
        raise FineNetError(path, "empty file (0 bytes)")
    _check_riff_size(path)
    import decord

    decord.logging.set_level(decord.logging.QUIET)  # ffmpeg's log lines would bury the one-line error
    try:
        with _stderr_muted():  # decord also logs "ERROR opening: …" itself before it raises
            reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    except Exception as exc:  # decord raises its own DECORDError for every container problem
        raise FineNetError(path, f"not a decodable video ({_first_line(exc)})") from None
    n = len(reader)
    if n == 0:
        raise FineNetError(path, "video has no frames")
    if start >= n:
        raise FineNetError(path, f"start frame {start} is past the end ({n} frames)")
    fps = float(reader.get_avg_fps() or 25.0)
    warning = _check_reaches_end(path, reader, n, fps)
    stop = n if length is None else min(n, start + length)
    frames = []
    for i in range(start, stop):
        try:
            with _stderr_muted():    # decord logs a failed seek itself, then raises
                frames.append(reader[i].asnumpy())
        except Exception as exc:
            raise FineNetError(path, f"truncated or corrupt video: decoding failed at frame {i} "
                                     f"of {n} ({_first_line(exc)})") from None
    if warning:                        # only for a file that is read: a refusal is the one line
        print(f"finenet: {path}: warning: {warning}", file=sys.stderr)
    return to_rgb(np.stack(frames), path), fps


def _declared_duration(path: Path) -> tuple[float | None, bool]:
    """(seconds the file declares for its video, whether that is the video stream's own figure)
    from the container (PyAV); (None, False) when it declares none."""
    try:
        import av

        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base), True
            if container.duration:
                # the container's figure covers every stream: the video's, unless there are others
                return container.duration / 1e6, len(container.streams) == 1
    except Exception:          # PyAV cannot say: decord's own checks are all there is
        pass
    return None, False


def _check_reaches_end(path: Path, reader, n: int, fps: float) -> str | None:
    """A Matroska/WebM (or MP4) file cut or damaged inside can decode as fewer frames than it has,
    with no error: its frames then end well before the duration its header declares. Allowed: 1.5
    frames (a variable-rate webcam file's last frame ends on its declared duration too, whatever
    frames it dropped), and 0.5 s more where the figure is the container's and audio may outlast
    the video. Returns a warning for a stretch missing inside (or None)."""
    declared, own = _declared_duration(path)
    if not declared:
        return None
    try:
        with _stderr_muted():
            first, last = reader.get_frame_timestamp(0)[0], reader.get_frame_timestamp(n - 1)[1]
    except Exception:
        return None
    covered = float(last - first)      # one frame: its own start to end
    if covered <= 0:                   # no usable frame times (some muxers leave them 0): cannot tell
        return None
    slack = 1.5 / fps + (0 if own else 0.5)
    if covered + slack < declared:
        frames = "1 frame ends" if n == 1 else f"{n} frames end"
        raise FineNetError(path, f"truncated or corrupt video: its {frames} at {covered:.2f} s, "
                                 f"the file declares {declared:.2f} s")
    slots = round(covered * fps)
    if n < SHORT_OF_SLOTS * slots:        # the end is there, a stretch before it is not
        return (f"{n} frames decode over {covered:.2f} s at {fps:g} fps, which hold {slots}: "
                "frames dropped when recorded, or a damaged stretch")
    return None


SHORT_OF_SLOTS = 0.9   # a warning below this share of the frame slots (a webcam file drops ~2 %)


def read_image(path_or_bytes, where=None) -> np.ndarray:
    """An image file (or its bytes) as (H,W,3) uint8 RGB."""
    from PIL import Image, UnidentifiedImageError

    where = where or path_or_bytes
    try:
        src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
        with Image.open(src) as im:
            return to_rgb(np.asarray(im.convert("RGB")), where)
    except FileNotFoundError:
        raise FineNetError(where, "image file not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise FineNetError(where, f"not a readable image ({_first_line(exc)})") from None


def _check_riff_size(path: Path) -> None:
    """An AVI cut short still decodes, as fewer frames and no error: its RIFF header tells."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        declared, size = int.from_bytes(head[4:8], "little") + 8, path.stat().st_size
        if declared > size:
            raise FineNetError(path, f"truncated video: the AVI header announces {declared} bytes, "
                                     f"the file has {size}")


@contextlib.contextmanager
def _stderr_muted():
    """Send file descriptor 2 (where C++ libraries log) to /dev/null for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    line = re.sub(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ", "", line).strip()  # dmlc's "[time] file.cc:N: "
    return (line or type(exc).__name__)[:200]
