"""Streamed video decoding and encoding with PyAV, for ``finenet deblur``: one frame in memory at a
time on each side, the input's audio carried over.

- ``VideoSource``: opens and checks the input (one-line ``FineNetError`` for a missing, empty, or
  undecodable file, no video stream, no frames), then yields RGB uint8 frames one by one.
- ``VideoSink``: H.264 (libx264, yuv420p, CRF 18) at the input's frame rate, one output frame per
  input frame, timestamps 0, 1, 2, … in units of 1/fps (variable-rate input comes out constant
  rate). yuv420p stores chroma at half resolution and so needs even sides: an odd width or height
  is padded by repeating the last column / row (the output is then one pixel wider / taller).
  The input's first audio stream is copied packet by packet (interleaved with the video by time);
  when the output container cannot hold its codec, it is re-encoded to AAC instead.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

from .data.video import _check_riff_size, _first_line
from .errors import FineNetError

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
X264_OPTIONS = {"crf": "18", "preset": "medium"}


def _av():
    import av
    import av.logging

    av.logging.set_level(None)   # ffmpeg's own log lines would bury the one-line error
    return av


class VideoSource:
    """The first video stream of ``path``, decoded frame by frame."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FineNetError(self.path, "video file not found")
        if self.path.stat().st_size == 0:
            raise FineNetError(self.path, "empty file (0 bytes)")
        _check_riff_size(self.path)
        av = _av()
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise FineNetError(self.path, f"not a decodable video ({_first_line(exc)})") from None
        if not self._container.streams.video:
            self._container.close()
            raise FineNetError(self.path, "no video stream in this file (not a video)")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate or Fraction(25)
        self.fps = Fraction(rate).limit_denominator(1_000_000)
        self.frames_hint = int(self._stream.frames or 0)   # 0 when the container does not say
        self.has_audio = bool(self._container.streams.audio)
        self.count = 0
        self._frames = self._decode()
        self._first = next(self._frames, None)             # a video with no frames fails here,
        if self._first is None:                            # before any output is written
            self.close()
            raise FineNetError(self.path, "video has no frames")
        self.height, self.width = self._first.shape[:2]

    def _decode(self):
        av = _av()
        try:
            for frame in self._container.decode(self._stream):
                yield frame.to_ndarray(format="rgb24")
        except (av.FFmpegError, ValueError) as exc:
            raise FineNetError(self.path, f"truncated or corrupt video: decoding failed after frame "
                                          f"{self.count} ({_first_line(exc)})") from None

    def __iter__(self):
        first, self._first = self._first, None
        if first is not None:
            self.count += 1
            yield first
        for frame in self._frames:
            self.count += 1
            yield frame

    def close(self) -> None:
        self._container.close()


def even_size(width: int, height: int) -> tuple[int, int]:
    return width + width % 2, height + height % 2


def pad_even(frame: np.ndarray) -> np.ndarray:
    """Repeat the last row / column when a side is odd (yuv420p needs even sides)."""
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frame


def output_format(path) -> str:
    path = Path(path)
    fmt = CONTAINERS.get(path.suffix.lower())
    if fmt is None:
        raise FineNetError(path, f"unsupported output container '{path.suffix}' "
                                 f"(use {', '.join(CONTAINERS)})")
    return fmt


class VideoSink:
    """Encode RGB frames to ``path`` (container from ``fmt``), copying ``audio_from``'s audio."""

    def __init__(self, path, width: int, height: int, fps: Fraction, fmt: str,
                 audio_from: Path | None = None, notify=None):
        av = _av()
        self.fps = Fraction(fps)
        self.count = 0
        self.audio_mode = None          # None, "copy" or "aac"
        self._container = av.open(str(path), "w", format=fmt)
        self._video = self._container.add_stream("libx264", rate=self.fps)
        self._video.width, self._video.height = even_size(width, height)
        self._video.pix_fmt = "yuv420p"
        self._video.options = dict(X264_OPTIONS)
        self._video.codec_context.time_base = 1 / self.fps
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
    def write(self, frame: np.ndarray) -> None:
        av = _av()
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(pad_even(frame)), format="rgb24")
        vf.pts, vf.time_base = self.count, 1 / self.fps
        for packet in self._video.encode(vf):
            self._container.mux(packet)
        self.count += 1
        self._audio_until(float(self.count / self.fps))

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
