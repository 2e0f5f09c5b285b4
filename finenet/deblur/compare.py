"""The side-by-side comparison video of ``finenet deblur --compare PATH``: input | output.

Each frame is the decoded input (left) next to the frame as the main output encodes it (right),
composed from their YUV samples in the output's pixel format, so that nothing is converted or
rounded on the way: encoded losslessly (the default, like the main output) the left half decodes to
the decoded input and the right half to the decoded main output. ``--crf`` / ``--preset`` apply to
it as to the main output; it has the main output's frame rate, frame count, timestamps and colour
tags, and no audio.

Size: each half is the main output's frame, padded as the pixel format needs (an odd side of a
4:2:0 / 4:2:2 frame gets its last column / row repeated, as in the main output), so the width is
2 x the padded width and each half starts on a whole chroma sample. ``--labels "input,FineNet"``
adds a black bar above the video (``label_bar_height``: 6 % of the frame height, at least 16
pixels, even) with each label in white over its half (Pillow's bundled font, shrunk to fit the
half); the video part below the bar is the same as without labels. The halves sit side by side
as the video is displayed: a clip stored sideways with a display matrix gets a comparison video
stored the same way, with the same matrix, that plays upright (input left, output right).

Checked before any work (one line each): not a folder, not the input or the main output under any
name, a container and a folder the output could be written to. Written atomically with the main
output (``temp_outputs``): a failed run leaves neither file.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np

from ..errors import FineNetError
from ..video.stream import Layout, Picture, VideoSink, temp_output

LABEL_BAR = 0.06          # label bar height, as a fraction of the frame height ...
LABEL_BAR_MIN = 16        # ... and at least this many pixels (always even)
LABEL_FONT = 0.7          # font size, as a fraction of the bar height


def parse_labels(labels, compare) -> tuple[str, str] | None:
    """``"left,right"`` as two labels; a one-line ``FineNetError`` when malformed or given
    without ``--compare``."""
    if labels is None:
        return None
    if compare is None:
        raise FineNetError("--labels", "only with --compare (the labels go above its two halves)")
    parts = [part.strip() for part in str(labels).split(",")]
    if len(parts) != 2 or not any(parts):
        raise FineNetError("--labels", f"needs two comma-separated labels, left then right "
                                       f"(e.g. \"input,FineNet\"), got {labels!r}")
    return parts[0], parts[1]


def check_compare(compare, source, output, check_output) -> tuple[Path, str] | None:
    """(the comparison video's path, its container format), checked before any work: not a
    folder, not the input or the main output, a writable place (``check_output``, the main
    output's own check); None without ``--compare``."""
    if compare is None:
        return None
    path = Path(compare)
    for other, what in ((output, "the output (-o)"), (source, "the input")):
        if _same_file(path, Path(other)):
            raise FineNetError(path, f"--compare names {what}: give the comparison video its own "
                                     f"file name")
    return path, check_output(path)


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    with contextlib.suppress(OSError):
        return a.exists() and b.exists() and a.samefile(b)
    return False


@contextlib.contextmanager
def temp_outputs(output, compare=None):
    """``video.stream.temp_output`` for the main output and, when given, the comparison video:
    yields (temporary path, temporary comparison path or None); both are renamed into place when
    the block succeeds, and a failure leaves neither (also one in the last rename: the comparison
    video, renamed first, is then deleted again)."""
    if compare is None:
        with temp_output(output) as tmp:
            yield tmp, None
        return
    compare = Path(compare)
    committed = False
    try:
        with temp_output(output) as tmp:
            with contextlib.ExitStack() as stack:
                try:
                    compare_tmp = stack.enter_context(temp_output(compare))
                except OSError as exc:
                    raise FineNetError(compare.absolute().parent, f"cannot write the comparison "
                                       f"video here ({exc.strerror or exc})") from None
                yield tmp, compare_tmp
            committed = True
    except BaseException:
        if committed:
            with contextlib.suppress(OSError):
                compare.unlink()
        raise


def label_bar_height(height: int) -> int:
    """The label bar's height for a frame ``height`` pixels high: even, at least LABEL_BAR_MIN."""
    bar = max(LABEL_BAR_MIN, round(LABEL_BAR * height))
    return bar + bar % 2


def label_bar(labels: tuple[str, str], half_width: int, height: int) -> np.ndarray:
    """(height, 2 x half_width, 3) uint8 RGB: black, each label in white, centred over its half,
    the font shrunk until the label fits its half (at the smallest size, cut at the half's edge)."""
    from PIL import Image, ImageDraw, ImageFont

    halves = []
    for text in labels:
        half = Image.new("RGB", (half_width, height), (0, 0, 0))
        if text:
            draw = ImageDraw.Draw(half)
            size = max(6, math.floor(LABEL_FONT * height))
            while True:
                font = ImageFont.load_default(size=size)
                x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
                if x1 - x0 <= half_width - 4 or size <= 6:
                    break
                size -= 1
            x = (half_width - (x1 - x0)) // 2 - x0
            y = (height - (y1 - y0)) // 2 - y0
            draw.text((x, y), text, fill=(255, 255, 255), font=font)
        halves.append(np.asarray(half))
    return np.concatenate(halves, axis=1)


class CompareSink:
    """Writes the comparison video next to ``main`` (the main output's ``VideoSink``): call
    ``write`` with the same arguments as ``main.write``, then ``close`` (or ``abort``).

    The halves are put side by side as the video is displayed: a stream whose display matrix
    turns or mirrors the picture (``Layout.display_matrix``) gets a comparison video stored the
    same way, with the same matrix, so that it too shows upright, input on the left."""

    def __init__(self, path, main: VideoSink, fmt: str, labels: tuple[str, str] | None = None,
                 where=None):
        self.main, self.layout = main, main.layout
        self.where = Path(where or path)                 # named in errors: the --compare path
        self.half = self.layout.padded_size(main.width, main.height)     # displayed (w, h)
        self.width, self.height = side_by_side_size(self.layout, main.width, main.height,
                                                    labels is not None)
        self.bar_planes = None
        if labels is not None:
            rgb = label_bar(labels, self.half[0], self.height - self.half[1])
            stored = self.layout.rgb_to_planes(np.ascontiguousarray(self.layout.to_stored(rgb)))
            self.bar_planes = [self.layout.to_display(p) for p in stored]
        try:
            self.sink = VideoSink(path, self.width, self.height, main.fps, fmt, layout=self.layout,
                                  encoding=main.encoding, time_base=main.time_base)
        except OSError as exc:
            raise FineNetError(self.where, f"cannot write the comparison video "
                                           f"({exc.strerror or exc})") from None

    def planes(self, picture: Picture, image: np.ndarray | None = None, rect=None):
        """The side-by-side (Y, Cb, Cr) planes, as stored: ``picture``'s decoded samples left, the
        samples ``main.write(picture, image, rect)`` encodes right, each padded as the encoder
        pads them, the label bar's planes on top."""
        if image is None or rect is None:
            right = picture.planes
        else:
            right = self.main.changed_planes(picture, image, rect)
        width, height = self.layout.stored_padded_size(*self.layout.stored_size(*self.half))
        sx, sy = self.layout.shift
        out = []
        for k, (a, b) in enumerate(zip(picture.planes, right)):
            h, w = (height, width) if k == 0 else (height >> sy, width >> sx)
            a, b = (self.layout.to_display(_pad(p, h, w)) for p in (a, b))
            shown = np.concatenate([a, b], axis=1)
            if self.bar_planes is not None:
                shown = np.concatenate([self.bar_planes[k], shown], axis=0)
            out.append(np.ascontiguousarray(self.layout.to_stored(shown)))
        return tuple(out)

    def write(self, picture: Picture, image: np.ndarray | None = None, rect=None) -> None:
        planes = self.planes(picture, image, rect)
        try:                       # planes only: VideoSink.write encodes a Picture's planes as is
            self.sink.write(Picture(picture.index, None, planes, picture.pts))
        except OSError as exc:
            raise FineNetError(self.where, f"cannot write the comparison video "
                                           f"({exc.strerror or exc})") from None

    def close(self) -> None:
        try:
            self.sink.close()
        except OSError as exc:
            raise FineNetError(self.where, f"cannot write the comparison video "
                                           f"({exc.strerror or exc})") from None

    def abort(self) -> None:
        self.sink.abort()


def _pad(plane: np.ndarray, h: int, w: int) -> np.ndarray:
    """``plane`` grown to (h, w) by repeating its last row / column (as ``VideoSink`` pads)."""
    if plane.shape == (h, w):
        return plane
    return np.pad(plane, ((0, h - plane.shape[0]), (0, w - plane.shape[1])), mode="edge")


def side_by_side_size(layout: Layout, width: int, height: int, labelled: bool) -> tuple[int, int]:
    """(width, height), as displayed, of the comparison video of a ``width`` x ``height``
    (displayed) input: two padded frames side by side, the label bar on top."""
    w, h = layout.padded_size(width, height)
    return 2 * w, h + (label_bar_height(h) if labelled else 0)
