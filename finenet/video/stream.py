"""Streamed video decoding and encoding with PyAV, for ``finenet deblur``: one frame in memory at a
time on each side, the input's audio carried over.

- ``VideoSource``: opens and checks the input (one-line ``FineNetError`` for a missing, empty, or
  undecodable file, no video stream, no frames, a still image; a decode error or fewer frames than
  the container advertises when decoding gets there), then yields ``Picture`` objects one by one: the
  frame's planar YUV samples as decoded (``planes``, in the output's pixel format) and its RGB view
  (``rgb``, what the deblurring works on; PyAV's default conversion, the same as decord's, which
  the training data went through). A stream with a display matrix (a phone's portrait clip,
  stored sideways) gives its RGB view as displayed (``Layout.to_display``: turned by a multiple
  of 90 degrees, mirrored), its planes as stored. What decoding finds wrong without stopping is
  in ``warnings()``: frames the decoder flagged as damaged (errors it concealed), and a Matroska /
  WebM / FLV / ASF file whose frames end well before the duration its header declares (a file cut
  short there decodes without an error, as fewer frames: ``shortfall``).
- ``VideoSink``: H.264 (libx264) in the input's own pixel format where libx264 writes it
  (yuv420p, yuv422p, yuv444p; yuvj* as the matching yuv* tagged full range), else the closest
  8-bit one (``output_layout``; a note says so), with the input's colour tags (range, matrix,
  primaries, transfer). x264 CRF ``DEFAULT_CRF`` unless told otherwise; ``lossless`` (and CRF 0,
  which x264 treats the same at 8 bits) is x264 qp 0: mathematically lossless in the output
  pixel format. One output frame per input frame,
  timestamps 0, 1, 2, … in units of 1/fps; a variable-frame-rate input (``VideoSource.check_timing``:
  frame timestamps that disagree with the stream's nominal rate) keeps its own timestamps instead.
  Chroma subsampled by 2 needs an even side: an odd width (4:2:0, 4:2:2) or height (4:2:0) is
  padded by repeating the last column / row (the output is then one pixel wider / taller); 4:4:4
  is never padded. The input's first audio stream is copied packet by packet (interleaved with
  the video by time); when the output container cannot hold its codec, it is re-encoded to AAC.
  The input's display matrix is written back as it is, on the planes as stored: the output plays
  in the input's orientation, and ``write`` takes the image and rectangle as displayed.

Untouched pixels are bit-exact: ``VideoSink.write(picture)`` encodes the decoded planes as they
are; ``write(picture, image, rect)`` changes only the pixels of ``rect`` whose RGB differs from the
picture's, by the YUV difference of the RGB change (``yuv + M (rgb_new - rgb_old)``, M the
stream's BT.601/709/... matrix in its range; 4:2:0 / 4:2:2 chroma by the mean change over the
samples it covers; where the decoded colour lies outside the RGB cube, the change is measured from
that colour, not from its clipped RGB). Converting the whole RGB frame back instead would round
every pixel again, and PyAV's default 4:2:0 -> RGB conversion is off by up to ~3 levels (a ~1 level
mean bias), which an absolute RGB -> YUV conversion would bake into the output; the difference
form cancels it.
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import re
import stat
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..atomic import _umask
from ..data.video import _check_riff_size, _first_line
from ..errors import FineNetError

try:
    import fcntl
except ImportError:                     # no flock (Windows): stale temporary files are not reaped
    fcntl = None

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}

# What a still image is decoded through: FFmpeg's image-file demuxers (besides the "<codec>_pipe"
# ones, which every image format has), and the image codecs whose single frame is a picture.
IMAGE_DEMUXERS = frozenset({"image2", "image2pipe", "apng", "gif", "webp_anim"})
STILL_CODECS = frozenset({"png", "apng", "mjpeg", "jpegls", "jpeg2000", "jpegxl", "bmp", "tiff",
                          "webp", "gif", "ppm", "pgm", "pgmyuv", "pbm", "pam", "pfm", "phm", "qoi",
                          "targa", "sgi", "dpx", "exr", "hdr", "pcx", "sunrast", "xbm", "xpm",
                          "xwd", "psd", "dds", "pictor", "pgx", "fits", "photocd", "vbn", "wbmp"})

# Demuxers whose duration is written in the file's header (not measured from the last timestamps, as
# MPEG-TS / Ogg do, nor guessed from the bit rate): a file cut short still declares its whole length
HEADER_DURATION = frozenset({"matroska", "webm", "flv", "asf"})
MAX_PLAUSIBLE_FPS = 240  # above it the rate is a guess from the time base (a damaged header)
SHORT_TOLERANCE = 0.05   # VideoSource.shortfall: decoded frames may end this share of the declared
                         # duration (at least 2 frames) early before the input counts as cut short

TIMING_TOLERANCE = 0.03  # VideoSource.check_timing: the timestamps' span may differ this much from
                         # frames / fps before the input counts as variable frame rate

# ------------------------------------------------------------------------- encoder settings
# x264 CRF when none is given. 0 is mathematically lossless at 8 bits (x264 turns CRF 0 into qp 0;
# written as qp 0 here). benchmarks/bench_encode.py: on real clips every CRF above 0 costs the
# untouched pixels of a near-lossless (53.5 dB) input 1.5-8 dB (CRF 1) to 9-17 dB (CRF 18), against
# a budget of 0.2 dB; lossless files are 7-20x the size of CRF 18 ones.
DEFAULT_CRF = 0
DEFAULT_PRESET = "medium"
CRF_MAX = 51              # x264's CRF scale, 8-bit: 0 (best) .. 51 (worst)
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")

# The 8-bit planar YUV formats libx264 writes, and the full-range (JPEG) aliases that map to them.
WRITABLE = ("yuv420p", "yuv422p", "yuv444p")
FULL_RANGE_ALIASES = {"yuvj420p": "yuv420p", "yuvj422p": "yuv422p", "yuvj444p": "yuv444p"}

# FFmpeg's AVColorRange / AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic values
RANGE_UNSPECIFIED, RANGE_LIMITED, RANGE_FULL = 0, 1, 2
SPC_BT709, SPC_UNSPECIFIED = 1, 2
# (Kr, Kb) of each YCbCr matrix swscale implements; anything else it decodes as BT.601
KR_KB = {1: (0.2126, 0.0722), 4: (0.30, 0.11), 5: (0.299, 0.114), 6: (0.299, 0.114),
         7: (0.212, 0.087), 9: (0.2627, 0.0593)}
MATRIX_NAMES = {1: "BT.709", 4: "FCC", 5: "BT.601", 6: "BT.601", 7: "SMPTE 240M", 9: "BT.2020"}


@dataclass(frozen=True)
class Encoding:
    """x264 rate control: ``crf`` (0..51) or ``lossless`` (qp 0), and the ``preset``."""

    crf: float = DEFAULT_CRF
    lossless: bool = False
    preset: str = DEFAULT_PRESET

    @property
    def is_lossless(self) -> bool:
        return self.lossless or self.crf == 0

    def options(self) -> dict:
        rate = {"qp": "0"} if self.is_lossless else {"crf": f"{self.crf:g}"}
        return {**rate, "preset": self.preset}

    def describe(self) -> dict:
        return {"crf": None if self.lossless else self.crf, "lossless": self.is_lossless,
                "preset": self.preset}


def parse_encoding(crf=None, lossless: bool = False, preset: str | None = None) -> Encoding:
    """``Encoding`` from the CLI's values; a one-line ``FineNetError`` naming the bad option."""
    value = DEFAULT_CRF
    if crf is not None:
        try:
            value = float(crf)
        except (TypeError, ValueError):
            value = math.nan
        if not 0 <= value <= CRF_MAX:            # also NaN
            raise FineNetError("--crf", f"must be a number from 0 (lossless) to {CRF_MAX} (worst), "
                                        f"got {crf!r}")
        if lossless and value != 0:
            raise FineNetError("--lossless", f"cannot be combined with --crf {crf} (lossless is "
                                             f"x264 qp 0)")
    preset = DEFAULT_PRESET if preset is None else preset
    if preset not in X264_PRESETS:
        raise FineNetError("--preset", f"unknown x264 preset {preset!r} "
                                       f"(use {', '.join(X264_PRESETS)})")
    return Encoding(int(value) if float(value).is_integer() else value, bool(lossless), preset)


def _av():
    import av
    import av.logging

    av.logging.set_level(None)   # ffmpeg's own log lines would bury the one-line error
    return av


# ---------------------------------------------------------------------------- pixel layout

@dataclass(frozen=True)
class Layout:
    """The output's pixel format and colour tags, and how a decoded frame's planes are made.

    ``source``: "native" (the decoded planes as they are), "reformat" (swscale to ``pix_fmt``, same
    range and matrix: other subsamplings, packings), "depth" (planar YUV of 9-16 bits with the
    output's subsampling: each sample rounded to 8 bits), "rgb" (an RGB or palette input,
    converted with ``rgb_to_planes``), "gray" (the gray plane as full-range luma, neutral chroma).
    """

    pix_fmt: str
    color_range: int = RANGE_UNSPECIFIED      # tag written; full range iff RANGE_FULL
    colorspace: int = SPC_UNSPECIFIED
    color_primaries: int = 2
    color_trc: int = 2
    source: str = "native"
    input_pix_fmt: str = ""
    display_matrix: tuple[int, ...] | None = None   # the stream's, written back as it is

    # ---------------------------------------------------------------------------- orientation
    @property
    def orientation(self) -> tuple[bool, bool, bool]:
        """(transpose, flip rows, flip columns): how the stored picture becomes the displayed one
        (transposed first, then flipped), from ``display_matrix`` (FFmpeg's layout: a displayed
        pixel is ``x' = a x + c y``, ``y' = b x + d y`` of the stored pixel ``(x, y)``)."""
        return _orientation(self.display_matrix)

    @property
    def rotation(self) -> int:
        """Degrees the display turns the stored picture counter-clockwise (FFmpeg's sign), 0..270."""
        if self.display_matrix is None:
            return 0
        a, b = self.display_matrix[0], self.display_matrix[1]
        return round(math.degrees(math.atan2(-b, a))) % 360

    def to_display(self, stored: np.ndarray) -> np.ndarray:
        """The (H,W,...) array as it is displayed (a view)."""
        transpose, rows, cols = self.orientation
        out = stored.swapaxes(0, 1) if transpose else stored
        return out[::-1 if rows else 1, ::-1 if cols else 1]

    def to_stored(self, displayed: np.ndarray) -> np.ndarray:
        """``to_display`` undone (a view)."""
        transpose, rows, cols = self.orientation
        out = displayed[::-1 if rows else 1, ::-1 if cols else 1]
        return out.swapaxes(0, 1) if transpose else out

    def rect_to_stored(self, rect, height: int, width: int) -> tuple[int, int, int, int]:
        """A (y0, y1, x0, x1) rectangle of the displayed (``height`` x ``width``) picture, clipped
        to it, in stored coordinates."""
        transpose, rows, cols = self.orientation
        y0, y1, x0, x1 = (int(v) for v in rect)
        y0, y1, x0, x1 = max(0, y0), min(height, y1), max(0, x0), min(width, x1)
        if rows:
            y0, y1 = height - y1, height - y0
        if cols:
            x0, x1 = width - x1, width - x0
        return (x0, x1, y0, y1) if transpose else (y0, y1, x0, x1)

    def stored_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the stored picture whose display is ``width`` x ``height``."""
        return (height, width) if self.orientation[0] else (width, height)

    @property
    def full_range(self) -> bool:
        return self.color_range == RANGE_FULL

    @property
    def shift(self) -> tuple[int, int]:
        """(log2 horizontal, log2 vertical) chroma subsampling."""
        return {"yuv420p": (1, 1), "yuv422p": (1, 0), "yuv444p": (0, 0)}[self.pix_fmt]

    def padded_size(self, width: int, height: int) -> tuple[int, int]:
        """The displayed size of a ``width`` x ``height`` (displayed) picture once its stored
        picture is padded to whole chroma samples."""
        padded = self.stored_padded_size(*self.stored_size(width, height))
        return self.stored_size(*padded)

    def stored_padded_size(self, width: int, height: int) -> tuple[int, int]:
        sx, sy = self.shift
        return width + (width % 2 if sx else 0), height + (height % 2 if sy else 0)

    def chroma_size(self, width: int, height: int) -> tuple[int, int]:
        sx, sy = self.shift
        return -(-width // (1 << sx)), -(-height // (1 << sy))

    @property
    def matrix_name(self) -> str:
        return MATRIX_NAMES.get(self.colorspace, "BT.601")

    def describe(self) -> str:
        return f"{self.pix_fmt} ({'full' if self.full_range else 'limited'} range, {self.matrix_name})"

    def yuv_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(3x3 matrix taking RGB in 0..255 to Y, Cb, Cr sample units, offsets): swscale's."""
        kr, kb = KR_KB.get(self.colorspace, KR_KB[5])
        kg = 1 - kr - kb
        m = np.array([[kr, kg, kb],
                      [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
                      [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))]])
        if self.full_range:
            scale, offset = np.array([255.0, 255, 255]), np.array([0.0, 128, 128])
        else:
            scale, offset = np.array([219.0, 224, 224]), np.array([16.0, 128, 128])
        return (m * (scale / 255)[:, None]).astype(np.float32), offset.astype(np.float32)

    def subsample(self, chroma: np.ndarray) -> np.ndarray:
        """Mean over the luma samples each chroma sample covers (an odd last row / column: its own)."""
        sx, sy = self.shift
        if not (sx or sy):
            return chroma
        fy, fx = 1 << sy, 1 << sx
        h, w = chroma.shape
        chroma = np.pad(chroma, ((0, -h % fy), (0, -w % fx)), mode="edge")
        return chroma.reshape(chroma.shape[0] // fy, fy, chroma.shape[1] // fx, fx).mean((1, 3))

    def rgb_to_planes(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The whole (H,W,3) uint8 RGB frame as (Y, Cb, Cr) uint8 planes (unpadded)."""
        m, offset = self.yuv_matrix()
        yuv = rgb.astype(np.float32) @ m.T + offset
        return tuple(_to_u8(p) for p in (yuv[..., 0], self.subsample(yuv[..., 1]),
                                         self.subsample(yuv[..., 2])))


def _orientation(matrix) -> tuple[bool, bool, bool]:
    """(transpose, flip rows, flip columns) of an axis-aligned display matrix (None: as stored)."""
    if matrix is None:
        return False, False, False
    a, b, c, d = matrix[0], matrix[1], matrix[3], matrix[4]
    if a == 0 and d == 0:
        return True, b < 0, c < 0
    return False, d < 0, a < 0


def side_data(frame) -> list:
    """The frame's side-data entries, across PyAV's two forms of ``frame.side_data``: iterating it
    yields the entries (PyAV <= 18.1.0) or their types, keys of the entries (PyAV >= 18.1.1)."""
    entries = frame.side_data
    return [e if hasattr(e, "type") else entries[e] for e in entries]


def display_matrix(frame) -> tuple[tuple[int, ...] | None, str | None]:
    """(the decoded frame's display matrix when it turns or mirrors the picture by a multiple of 90
    degrees, else None; a note when it does something else, which is then ignored)."""
    data = next((d for d in side_data(frame) if getattr(d.type, "name", "") == "DISPLAYMATRIX"), None)
    if data is None or data.buffer_size != 36:
        return None, None
    matrix = tuple(int(v) for v in np.frombuffer(bytes(data), "<i4"))
    a, b, c, d = matrix[0], matrix[1], matrix[3], matrix[4]
    if (a == 0) == (b == 0) or (c == 0) == (d == 0) or (a == 0) != (d == 0) or \
            len({abs(v) for v in (a, b, c, d) if v}) != 1:
        return None, (f"display matrix {list(matrix[:2])}/{list(matrix[3:5])} is not a turn by a "
                      f"multiple of 90 degrees; frames processed as stored")
    if _orientation(matrix) == (False, False, False):
        return None, None
    return matrix, None


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _subsampling(fmt) -> tuple[int, int]:
    return (int(round(math.log2(16 / fmt.chroma_width(16)))),
            int(round(math.log2(16 / fmt.chroma_height(16)))))


def output_layout(frame) -> tuple[Layout, str | None]:
    """(the output's ``Layout`` for a stream whose first decoded frame is ``frame``, a note when
    its pixel format cannot be kept)."""
    matrix, turn = display_matrix(frame)
    layout, note = _output_layout(frame, matrix)
    return layout, "; ".join(n for n in (note, turn) if n) or None


def _output_layout(frame, matrix) -> tuple[Layout, str | None]:
    fmt = frame.format
    name = fmt.name
    tags = dict(colorspace=int(frame.colorspace), color_primaries=int(frame.color_primaries),
                color_trc=int(frame.color_trc), input_pix_fmt=name, display_matrix=matrix)
    rng = int(frame.color_range)
    if name in WRITABLE:
        return Layout(name, color_range=rng, **tags), None
    if name in FULL_RANGE_ALIASES:
        return Layout(FULL_RANGE_ALIASES[name], color_range=RANGE_FULL, **tags), None
    why = f"pixel format '{name}' is not 8-bit yuv420p/yuv422p/yuv444p"
    if fmt.is_rgb or fmt.has_palette or fmt.is_bayer:
        tags.update(colorspace=SPC_BT709)
        layout = Layout("yuv444p", color_range=RANGE_FULL, source="rgb", **tags)
        return layout, f"{why}; written as {layout.describe()}, converted from its RGB"
    luma = [c for c in fmt.components if not c.is_alpha]
    if len(luma) == 1:
        layout = Layout("yuv420p", color_range=RANGE_FULL, source="gray", **tags)
        return layout, (f"{why}; written as {layout.describe()}: the gray samples as full-range luma "
                        f"(8-bit), neutral chroma")
    sx, sy = _subsampling(fmt)
    target = "yuv420p" if sx and sy else "yuv422p" if sx else "yuv444p"
    full = rng == RANGE_FULL or name.startswith("yuvj")
    bits = max(c.bits for c in fmt.components)
    same_planes = (fmt.is_planar and not fmt.is_big_endian and 8 < bits <= 16 and
                   Layout(target).shift == (sx, sy))
    layout = Layout(target, color_range=RANGE_FULL if full else rng,
                    source="depth" if same_planes else "reformat", **tags)
    detail = [f"{bits}-bit samples rounded to 8" if bits > 8 else "",
              "alpha dropped" if len(luma) < len(fmt.components) else ""]
    detail = "; ".join(d for d in detail if d)
    return layout, f"{why}; written as {layout.describe()}" + (f" ({detail})" if detail else "")


# ------------------------------------------------------------------------------------ source

@dataclass(eq=False)
class Picture:
    """One decoded frame: its YUV ``planes`` in the output layout (Y at (H,W), chroma at the
    subsampled size, unpadded, uint8; as stored) and its (H,W,3) uint8 ``rgb`` view (as displayed:
    turned upright by the stream's display matrix, ``Layout.to_display``)."""

    index: int
    rgb: np.ndarray
    planes: tuple[np.ndarray, np.ndarray, np.ndarray]
    pts: int | None = None          # presentation time in the source stream's time base


def _plane_arrays(frame, count: int = 3) -> tuple[np.ndarray, ...]:
    return tuple(np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width].copy()
                 for p in frame.planes[:count])


def _cover_art(stream) -> bool:
    """A picture attached to the file (AV_DISPOSITION_ATTACHED_PIC), not a video."""
    flags = getattr(stream, "disposition", 0)
    return bool(int(getattr(flags, "value", flags) or 0) & 0x0400)


class VideoSource:
    """The first video stream of ``path`` (cover art skipped), decoded frame by frame into
    ``Picture`` objects.

    Refused with a one-line ``FineNetError`` before any frame is handed out: a still image (one
    picture: an image file such as a PNG or JPEG whatever its name, one frame of an image codec, or
    one frame with no duration), and a video whose first frames do not decode. A decode error later
    on, or a video that ends before the frame count its container advertises (``stream.frames``;
    frames an edit list hides are not missing), raises ``decoding stopped at frame N of M
    (truncated or corrupt...)`` when the iteration reaches it. Decoding is slice-threaded only:
    FFmpeg's frame threading swallows decode errors (a truncated file then just ends early).
    ``width`` / ``height`` and each ``Picture.rgb`` are as displayed (the display matrix applied).
    """

    def __init__(self, path, warn=None):
        """``warn(problem)``: told each of ``warnings()`` once decoding reaches the end (or None)."""
        self.path = Path(path)
        self._warn = warn
        if not self.path.is_file():
            raise FineNetError(self.path, "video file not found")
        if self.path.stat().st_size == 0:
            raise FineNetError(self.path, "empty file (0 bytes)")
        _check_riff_size(self.path)
        av = _av()
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            why = getattr(exc, "strerror", None) or _first_line(exc)    # not the path again
            raise FineNetError(self.path, f"not a decodable video ({why})") from None
        streams = self._container.streams.video
        moving = [s for s in streams if not _cover_art(s)]
        if not moving:
            self._container.close()
            raise FineNetError(self.path, "no video stream in this file (not a video)" if not streams
                               else "no video stream in this file, only a still image (cover art): "
                                    "not a video")
        self._stream = moving[0]
        self._stream.thread_type = "SLICE"      # not FRAME: frame threads hide decode errors
        rate = self._stream.average_rate or self._stream.guessed_rate or Fraction(25)
        self.fps = Fraction(rate).limit_denominator(1_000_000)
        self.frames_hint = int(self._stream.frames or 0)   # 0 when the container does not say
        self.time_base = self._stream.time_base
        self.variable_rate = False                         # set by check_timing
        self.has_audio = bool(self._container.streams.audio)
        self.count = 0
        self.layout: Layout | None = None
        self.note: str | None = None                       # set when the pixel format changes
        self.shortfall: str | None = None                  # set when decoding ends early (below)
        self.corrupt: list[int] = []                       # frames the decoder flagged damaged
        self.decoded = 0                                   # frames decoded so far
        self._frames = self._decode()
        try:                                     # two frames ahead: a video with no frames, or a
            self._ahead = [p for p in (next(self._frames, None), next(self._frames, None))
                           if p is not None]    # still image, fails here, before any output
        except FineNetError:
            self.close()
            raise
        if not self._ahead:
            self.close()
            raise FineNetError(self.path, "video has no frames")
        why = self._still_image()
        if why:
            self.close()
            raise FineNetError(self.path, f"is a still image, not a video ({why})")
        self.height, self.width = self._ahead[0].rgb.shape[:2]

    @property
    def pix_fmt(self) -> str:
        return self.layout.input_pix_fmt

    def _still_image(self) -> str | None:
        """Why the file is a still image (one decoded picture: from an image file format, of an
        image codec, or without a duration), else None."""
        if len(self._ahead) > 1:
            return None
        fmt, codec = self._container.format.name, self._stream.codec_context.name
        if fmt in IMAGE_DEMUXERS or fmt.endswith("_pipe"):
            return f"a single {codec} image"
        if codec in STILL_CODECS:
            return f"a single {codec} picture"
        if not (self._stream.duration or self._container.duration):
            return f"a single {codec} frame with no duration"
        return None

    def _stopped(self, decoded: int, reason: str | None = None) -> str:
        of = f" of {self.frames_hint}" if self.frames_hint else ""
        return f"decoding stopped at frame {decoded}{of} (truncated or corrupt" + \
            (f": {reason})" if reason else ")")

    def _reaches_end(self, end, timed: bool = False) -> bool:
        """Whether the last decoded frame (``end``: where it ends, in the stream's time base; None
        when unknown) reaches the stream's advertised end: to within a frame where the frame's
        duration is unknown (``end`` is then where it starts), to within half a frame where it is
        known (``timed``; a whole frame's slack would let a file missing its last frame through)."""
        duration = self._stream.duration
        if not duration or end is None:
            return False
        last = 1 / (self.fps * self._stream.time_base)     # one frame, in the stream's time base
        return end + (last / 2 if timed else last) >= (self._stream.start_time or 0) + duration

    def _decode(self):
        av = _av()
        index = discarded = 0
        end, timed = None, False
        gap = None              # (from, to): the first stretch of presentation time with no frame
        step = 1 / (self.fps * self.time_base) if self.time_base else None   # a frame, in ticks
        try:
            for packet in self._container.demux(self._stream):
                if packet.size and getattr(packet, "is_discard", False):   # hidden by an edit list
                    discarded += 1
                for frame in packet.decode():
                    if self.layout is None:
                        self.layout, self.note = output_layout(frame)
                        self._size = (frame.width, frame.height)
                    elif (frame.width, frame.height) != self._size:
                        raise FineNetError(self.path, f"the frame size changes at frame {index} "
                                                      f"({self._size[0]}x{self._size[1]} to "
                                                      f"{frame.width}x{frame.height})")
                    if frame.is_corrupt:          # decoded with errors, concealed
                        self.corrupt.append(index)
                    if frame.pts is not None:
                        if gap is None and end is not None and step and \
                                frame.pts > end + (0 if timed else step) + step / 2:
                            gap = (end if timed else end + step, frame.pts)
                        timed = bool(getattr(frame, "duration", 0))
                        end = frame.pts + (getattr(frame, "duration", 0) or 0)
                    rgb = frame.to_ndarray(format="rgb24")
                    planes = self._planes(frame, rgb)              # as stored
                    if self.layout.display_matrix is not None:     # the picture as displayed
                        rgb = np.ascontiguousarray(self.layout.to_display(rgb))
                    yield Picture(index, rgb, planes, frame.pts)
                    index += 1
        except (av.FFmpegError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or _first_line(exc)
            raise FineNetError(self.path, self._stopped(index, reason)) from None
        if index < self.frames_hint - discarded:
            if not self._reaches_end(end, timed):
                raise FineNetError(self.path, self._stopped(index))
            if gap:                     # the end is there, a frame before it is not
                start = self._stream.start_time or 0
                raise FineNetError(self.path, self._stopped(index, (
                    f"no frame from {float((gap[0] - start) * self.time_base):.3f} s to "
                    f"{float((gap[1] - start) * self.time_base):.3f} s")))
        self.decoded = index
        self.shortfall = self._short_of_duration(index, end)
        for problem in self.warnings() if self._warn else ():
            self._warn(problem)

    def warnings(self) -> list[str]:
        """What decoding to the end found wrong without stopping (empty before that): frames the
        decoder flagged as damaged (it conceals the errors: they may show artefacts), an end short
        of the declared duration (``shortfall``)."""
        out = []
        if self.corrupt:
            shown = ", ".join(str(i) for i in self.corrupt[:8]) + (", ..." if len(self.corrupt) > 8 else "")
            out.append(f"{len(self.corrupt)} of {self.decoded} frames decoded with errors (damaged "
                       f"data, concealed by the decoder; they may show artefacts): frame"
                       f"{'s' if len(self.corrupt) > 1 else ''} {shown}")
        if self.shortfall:
            out.append(self.shortfall)
        return out

    def _declared_seconds(self) -> float | None:
        """The video's duration as the file's header declares it, where it declares no frame count
        (``HEADER_DURATION`` formats: the stream's duration, its DURATION tag, or, with no audio
        beside it, the container's); else None."""
        if self.frames_hint or not HEADER_DURATION & set(self._container.format.name.split(",")):
            return None
        stream = self._stream
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
        tag = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d*)?)", str(stream.metadata.get("DURATION", "")))
        if tag:
            return int(tag[1]) * 3600 + int(tag[2]) * 60 + float(tag[3])
        if self._container.duration and not self.has_audio:
            return self._container.duration / 1_000_000
        return None

    def _short_of_duration(self, decoded: int, end) -> str | None:
        """Why the decoded frames look cut short of the declared duration (a Matroska / WebM file
        cut short decodes without an error, as fewer frames), else None. Measured by the time the
        last frame ends (variable frame rates are fine), counted in frames at the nominal rate."""
        seconds = self._declared_seconds()
        if not seconds or seconds <= 0 or not self.fps:
            return None
        frame = 1 / float(self.fps)
        if end is not None and self.time_base:
            done = float((end - (self._stream.start_time or 0)) * self.time_base)
        else:
            done = decoded * frame
        if done >= seconds - max(2 * frame, SHORT_TOLERANCE * seconds):
            return None
        if float(self.fps) <= MAX_PLAUSIBLE_FPS:
            return (f"{decoded} frames decoded of about {round(seconds / frame)} the container "
                    f"declares ({seconds:.2f} s at {float(self.fps):.4g} fps; the decoded frames end "
                    f"at {max(done, 0):.2f} s): truncated?")
        return (f"{decoded} frames decoded, ending at {max(done, 0):.2f} s of the {seconds:.2f} s the "
                f"container declares (frame rate unknown): truncated?")

    def check_timing(self, tolerance: float = TIMING_TOLERANCE) -> str | None:
        """Whether the frame timestamps disagree with the nominal rate ``fps`` (a variable frame
        rate, or a wrong rate in the header): the span from the first to the last frame off by more
        than ``tolerance`` of ``(frames - 1) / fps``, or a frame interval off by more than a quarter
        of ``1 / fps``. Then sets ``variable_rate`` (the writer should keep the source timestamps:
        ``VideoSink(time_base=...)``) and returns a one-line note; else None. Reads the packets'
        timestamps only (a second demux of the file, no decoding); a stream without timestamps on
        every packet, or fewer packets than the container advertises (a truncated file: decoding
        reports it), is taken as constant rate."""
        av = _av()
        pts, discarded = [], 0
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams[self._stream.index]
                for packet in container.demux(stream):
                    if not packet.size:
                        continue
                    if getattr(packet, "is_discard", False):
                        discarded += 1
                        continue
                    if packet.pts is None:
                        return None
                    pts.append(packet.pts)
        except (av.FFmpegError, ValueError):
            return None                           # damage is reported by the decoding itself
        if len(pts) < 3 or not self.time_base or len(pts) < self.frames_hint - discarded:
            return None
        pts.sort()
        times = (np.array(pts, dtype=np.float64) - pts[0]) * float(self.time_base)
        nominal = 1 / float(self.fps)
        expected = (len(times) - 1) * nominal
        worst = float(np.max(np.abs(np.diff(times) / nominal - 1)))
        if abs(times[-1] / expected - 1) <= tolerance and worst <= 0.25:
            return None
        self.variable_rate = True
        return (f"frame timestamps disagree with the stream's nominal {float(self.fps):.4g} fps "
                f"({len(times)} frames over {times[-1] + nominal:.3f} s, not {expected + nominal:.3f} s; "
                f"frame intervals {np.diff(times).min() * 1000:.1f}-{np.diff(times).max() * 1000:.1f} ms): "
                f"variable frame rate, the output keeps the source timestamps")

    def _planes(self, frame, rgb: np.ndarray) -> tuple[np.ndarray, ...]:
        layout = self.layout
        if layout.source == "native" and frame.format.name in (layout.pix_fmt, layout.input_pix_fmt):
            return _plane_arrays(frame)
        if layout.source == "rgb":
            return layout.rgb_to_planes(rgb)
        if layout.source == "gray":
            luma = _plane_arrays(frame.reformat(format="gray", dst_color_range=RANGE_FULL), 1)[0]
            cw, ch = layout.chroma_size(frame.width, frame.height)
            neutral = np.full((ch, cw), 128, np.uint8)
            return luma, neutral, neutral.copy()
        if layout.source == "depth" and frame.format.name == layout.input_pix_fmt:
            bits = max(c.bits for c in frame.format.components)
            half, shift = 1 << (bits - 9), bits - 8
            return tuple(np.minimum((np.frombuffer(p, "<u2").reshape(p.height, p.line_size // 2)
                                     [:, :p.width].astype(np.uint32) + half) >> shift, 255)
                         .astype(np.uint8) for p in frame.planes[:3])
        rng = RANGE_FULL if layout.full_range else RANGE_LIMITED
        return _plane_arrays(frame.reformat(format=layout.pix_fmt, src_color_range=rng,
                                            dst_color_range=rng))

    def __iter__(self):
        ahead, self._ahead = self._ahead, []
        for picture in ahead:
            self.count += 1
            yield picture
        for picture in self._frames:
            self.count += 1
            yield picture

    def close(self) -> None:
        self._container.close()


def output_format(path) -> str:
    path = Path(path)
    fmt = CONTAINERS.get(path.suffix.lower())
    if fmt is None:
        raise FineNetError(path, f"unsupported output container '{path.suffix}' "
                                 f"(use {', '.join(CONTAINERS)})")
    return fmt


# -------------------------------------------------------------------------------------- sink

class VideoSink:
    """Encode frames to ``path`` (container from ``fmt``) in ``layout`` (default: yuv420p,
    limited range, untagged) with ``encoding`` (default: CRF ``DEFAULT_CRF``), copying
    ``audio_from``'s audio."""

    def __init__(self, path, width: int, height: int, fps: Fraction, fmt: str,
                 audio_from: Path | None = None, notify=None, *, layout: Layout | None = None,
                 encoding: Encoding | None = None, time_base: Fraction | None = None):
        """``time_base``: keep the pictures' own timestamps (``Picture.pts``, in this time base,
        shifted to start at 0) instead of numbering the frames 0, 1, 2, … at ``fps``."""
        av = _av()
        self.fps = Fraction(fps)
        self.count = 0
        self.time_base = Fraction(time_base) if time_base else None
        self._first_pts = self._last_pts = None
        self.width, self.height = width, height
        self.layout = layout or Layout("yuv420p")
        self.encoding = encoding or Encoding()
        self.audio_mode = None          # None, "copy" or "aac"
        self._matrix, self._offset = self.layout.yuv_matrix()
        self._inverse = np.linalg.inv(self._matrix).astype(np.float32)
        self._container = av.open(str(path), "w", format=fmt)
        self._video = self._container.add_stream("libx264", rate=self.fps)
        self._video.width, self._video.height = self.layout.stored_padded_size(
            *self.layout.stored_size(width, height))
        self._video.pix_fmt = self.layout.pix_fmt
        if self.layout.display_matrix is not None:       # stored as the input is, displayed alike
            self._video.set_display_matrix(self.layout.display_matrix)
        self._video.options = self.encoding.options()
        cc = self._video.codec_context
        cc.time_base = self.time_base or 1 / self.fps
        cc.color_range = self.layout.color_range
        cc.colorspace = self.layout.colorspace
        cc.color_primaries = self.layout.color_primaries
        cc.color_trc = self.layout.color_trc
        self._audio_in = self._audio_out = self._audio_packets = None
        if audio_from is not None:
            self._open_audio(audio_from, fmt, notify or (lambda msg: print(msg, file=sys.stderr)))

    # ------------------------------------------------------------------------------------ audio
    def _open_audio(self, source: Path, fmt: str, notify) -> None:
        av = _av()
        self._audio_in = av.open(str(source))
        stream = self._audio_in.streams.audio[0]
        name = stream.codec_context.name
        try:
            if name not in self._container.supported_codecs:
                raise ValueError(name)
            self._audio_out = self._container.add_stream_from_template(stream)
            self.audio_mode = "copy"
        except ValueError:
            self._audio_out = self._container.add_stream("aac", rate=stream.rate or 48000)
            if stream.layout is not None and stream.layout.nb_channels:
                self._audio_out.layout = stream.layout.name if stream.layout.nb_channels <= 2 else "stereo"
            self.audio_mode = "aac"
            notify(f"finenet: note: {source}: audio codec '{name}' cannot go into a {fmt} container; "
                   f"re-encoded to AAC")
        self._audio_stream = stream
        self._audio_packets = self._audio_in.demux(stream)
        self._pending = None            # the first packet past the video written so far

    def _audio_until(self, seconds: float | None) -> None:
        """Mux the input's audio up to ``seconds`` (all of it when None)."""
        if self._audio_packets is None:
            return
        av = _av()
        while True:
            packet = self._pending if self._pending is not None else next(self._audio_packets, None)
            self._pending = None
            if packet is None:
                self._audio_packets = None
                if self.audio_mode == "aac":
                    for out in self._audio_out.encode(None):
                        self._container.mux(out)
                return
            if packet.dts is None and packet.pts is None:   # the demuxer's final empty packet
                continue
            ts = packet.pts if packet.pts is not None else packet.dts
            if seconds is not None and ts * packet.time_base > seconds:
                self._pending = packet
                return
            if self.audio_mode == "copy":
                packet.stream = self._audio_out
                self._container.mux(packet)
                continue
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                continue                                     # a damaged audio packet: skip it
            for frame in decoded:
                frame.pts = None                             # the encoder numbers its own samples
                for out in self._audio_out.encode(frame):
                    self._container.mux(out)

    # ------------------------------------------------------------------------------------ video
    def write(self, picture, image: np.ndarray | None = None, rect=None) -> None:
        """Encode one frame: ``picture``'s planes as decoded, or with the pixels of ``rect``
        (y0, y1, x0, x1) that ``image`` (the full RGB frame) changes from ``picture.rgb`` replaced.
        A bare (H,W,3) RGB array is converted whole."""
        if isinstance(picture, np.ndarray):
            planes = self.layout.rgb_to_planes(np.ascontiguousarray(self.layout.to_stored(picture)))
        elif image is None or rect is None:
            planes = picture.planes
        else:
            planes = self.changed_planes(picture, image, rect)
        self._encode(planes, getattr(picture, "pts", None))

    def changed_planes(self, picture: Picture, image: np.ndarray, rect) -> tuple[np.ndarray, ...]:
        """``picture.planes`` plus the YUV difference of ``image - picture.rgb`` inside ``rect``;
        a pixel (chroma sample) whose RGB (whose covered pixels' RGB) did not change keeps its
        decoded value exactly. ``image`` and ``rect`` are as displayed, like ``picture.rgb``; the
        planes as stored."""
        rgb = picture.rgb
        if self.layout.display_matrix is not None:
            rect = self.layout.rect_to_stored(rect, *rgb.shape[:2])
            rgb, image = self.layout.to_stored(rgb), self.layout.to_stored(image)
        h, w = rgb.shape[:2]
        sx, sy = self.layout.shift
        fx, fy = 1 << sx, 1 << sy
        y0, y1, x0, x1 = (int(v) for v in rect)
        y0, x0 = max(0, y0) // fy * fy, max(0, x0) // fx * fx     # whole chroma samples
        y1, x1 = min(h, -(-y1 // fy) * fy), min(w, -(-x1 // fx) * fx)
        if y0 >= y1 or x0 >= x1:
            return picture.planes
        old = rgb[y0:y1, x0:x1]
        delta = image[y0:y1, x0:x1].astype(np.float32) - old
        changed = delta.any(-1)
        if not changed.any():
            return picture.planes
        cy0, cy1, cx0, cx1 = y0 // fy, -(-y1 // fy), x0 // fx, -(-x1 // fx)
        if ((old == 0) | (old == 255))[changed].any():
            # a decoded colour outside the RGB cube was clipped in ``old``: measure the change from
            # the colour the samples really hold there, or the clipped part would come back
            luma, cb, cr = picture.planes
            yuv = np.stack([luma[y0:y1, x0:x1]] + [
                np.repeat(np.repeat(p[cy0:cy1, cx0:cx1], fy, 0), fx, 1)[:y1 - y0, :x1 - x0]
                for p in (cb, cr)], -1).astype(np.float32)
            true = (yuv - self._offset) @ self._inverse.T
            delta -= (true - np.clip(true, 0, 255)) * changed[..., None]
        dyuv = delta @ self._matrix.T                          # exactly 0 where nothing changed
        luma, cb, cr = (p.copy() for p in picture.planes)
        luma[y0:y1, x0:x1] = _to_u8(luma[y0:y1, x0:x1] + dyuv[..., 0])
        for plane, c in ((cb, 1), (cr, 2)):
            plane[cy0:cy1, cx0:cx1] = _to_u8(plane[cy0:cy1, cx0:cx1] +
                                             self.layout.subsample(dyuv[..., c]))
        return luma, cb, cr

    def _next_pts(self, pts: int | None) -> tuple[int, float]:
        """(this frame's pts in the codec time base, the time its display ends, in seconds)"""
        if self.time_base is None:
            return self.count, float((self.count + 1) / self.fps)
        step = max(1, round(1 / (self.fps * self.time_base)))     # one nominal frame, in ticks
        if pts is not None and self._first_pts is None:
            self._first_pts = pts
        if pts is None or self._first_pts is None:
            out = 0 if self._last_pts is None else self._last_pts + step
        else:
            out = pts - self._first_pts
        if self._last_pts is not None and out <= self._last_pts:   # x264 needs increasing pts
            out = self._last_pts + 1
        self._last_pts = out
        return out, float((out + step) * self.time_base)

    def _encode(self, planes, pts: int | None = None) -> None:
        av = _av()
        width, height = self._video.width, self._video.height
        vf = av.VideoFrame(width, height, self.layout.pix_fmt)
        for plane, data in zip(vf.planes, planes):
            h, w = plane.height, plane.width
            if data.shape != (h, w):           # an odd side of a subsampled format: repeat the last
                data = np.pad(data, ((0, h - data.shape[0]), (0, w - data.shape[1])), mode="edge")
            np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)[:, :w] = data
        vf.color_range, vf.colorspace = self.layout.color_range, self.layout.colorspace
        vf.pts, until = self._next_pts(pts)
        vf.time_base = self.time_base or 1 / self.fps
        for packet in self._video.encode(vf):
            self._container.mux(packet)
        self.count += 1
        self._audio_until(until)

    def close(self) -> None:
        """Flush the encoder and the rest of the audio; close the files."""
        for packet in self._video.encode(None):
            self._container.mux(packet)
        self._audio_until(None)
        self._container.close()
        self.abort()

    def abort(self) -> None:
        if self._audio_in is not None:
            self._audio_in.close()
            self._audio_in = None
        self._container.close()


def encode_frames(path, frames, codec: str = "libx264", pix_fmt: str = "yuv420p", rate=25,
                  options: dict | None = None, in_format: str | None = None, repeat: int = 1,
                  display_rotation: float | None = None) -> Path:
    """Write ``frames`` ((T,H,W,3) RGB or (T,H,W) grey uint8, looped ``repeat`` times) as an encoded
    video with PyAV: the one writer the tests and benchmarks make their input clips with.
    ``display_rotation``: a display matrix turning the stored frames by that many degrees
    counter-clockwise when played (as a phone writes a portrait clip)."""
    av = _av()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    in_format = in_format or ("gray" if frames.ndim == 3 else "rgb24")
    rate = Fraction(rate).limit_denominator(1001) if isinstance(rate, float) else rate
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        if options:
            stream.options = options
        if display_rotation is not None:
            stream.set_display_rotation(display_rotation)
        for _ in range(repeat):
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format=in_format)):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# ------------------------------------------------------------------------- temporary output

TEMP_MARK = ".deblur.tmp"     # .<output name>.<random>.deblur.tmp<suffix>, next to the output


@contextlib.contextmanager
def temp_output(path):
    """Yield a hidden temporary path next to ``path``, renamed onto ``path`` when the block
    succeeds, deleted when it fails. While the block runs this process holds an exclusive
    ``flock`` on the file; the kernel drops it when the process dies, however it dies, so a
    temporary file nobody holds a lock on was left by a killed run (``remove_stale_temps``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _locked_temp(path)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        for old in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
            if TEMP_MARK not in old.name:       # this output's temps as earlier versions named them
                old.unlink(missing_ok=True)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        os.close(fd)


def _locked_temp(path: Path) -> tuple[int, Path]:
    """(an open descriptor holding the flock, the new temporary file's path)."""
    for _ in range(100):
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_MARK + path.suffix,
                                    dir=path.parent)
        if fcntl is None:
            return fd, Path(name)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:     # another run's reaper took it for stale in the instant before
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(name)
            continue
        except OSError:             # a file system without locks: unlocked, and never reaped
            return fd, Path(name)
        with contextlib.suppress(OSError):
            if os.stat(name).st_ino == os.fstat(fd).st_ino:     # not reaped before the lock
                return fd, Path(name)
        os.close(fd)
    raise OSError(f"no temporary file could be made next to {path}")


def remove_stale_temps(folder) -> list[Path]:
    """Delete the temporary outputs (``temp_output``) in ``folder`` that no running process holds:
    those of killed runs, whatever output name they were for. Returns what was removed."""
    folder = Path(folder)
    if fcntl is None or not folder.is_dir():
        return []
    removed = []
    for tmp in sorted(folder.glob(f".*{TEMP_MARK}*")):
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)     # fails while its run is alive
            if os.stat(tmp, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                os.unlink(tmp)
                removed.append(tmp)
        except OSError:             # locked (a live run), renamed meanwhile, or no locks here
            continue
        finally:
            os.close(fd)
    return removed


# ------------------------------------------------------------------------------ folder input

def input_suffixes() -> frozenset[str]:
    """The file suffixes (lower case) a folder input (``finenet deblur DIR``) takes for videos:
    every container the output is written in (``CONTAINERS``) and the pipeline's video suffixes
    (``finenet.data.video.VIDEO_SUFFIXES``: .avi, .webm, .mpg, ...)."""
    from ..data.video import VIDEO_SUFFIXES

    return frozenset(CONTAINERS) | frozenset(s.lower() for s in VIDEO_SUFFIXES)
