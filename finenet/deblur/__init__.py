"""Deblur the face in a real video with the trained FineNet (``finenet deblur in.mp4 -o out.mp4``).

The video is streamed: frames are decoded one at a time, a bounded buffer holds what the temporal
steps need (at most MAX_GAP=5 + the smoothing look-ahead + 5 frames, whatever the video's length),
and the result is encoded as it goes (H.264 in the input's pixel format where libx264 writes it:
yuv420p, yuv422p, yuv444p, else the closest 8-bit one; same frame rate, frame count and colour
tags, the audio copied over; see ``finenet.video.stream``). Pixels FineNet does not change are written
as the decoded YUV samples, not re-converted from RGB: lossless (x264 qp 0: ``--lossless``, or
``--crf 0``, the default) they come out bit-exact; a higher ``--crf`` trades that for file size.
Each frame goes through the pipeline's own steps:

1. Face detection on the full frame (dlib, ``data.detect_upsample``, as the ``sample`` stage does;
   frames whose longer side exceeds 640 pixels are searched shrunk to 640). ``--faces all`` (the
   default) deblurs every face: detections are linked into face tracks, an ID each
   (``finenet.face.tracker``: predicted boxes matched by IoU, one detection per track, a track
   carried through at most MAX_GAP=5 missed frames, then ended). ``--faces largest`` deblurs one:
   the LARGEST face where the track starts, then the one nearest the previous box.
2. Missed detections: a run of at most MAX_GAP=5 frames without a face is bridged by interpolating
   the boxes on either side (or carrying the nearest one at the ends of the video); longer runs
   end the face track and their frames pass through unchanged. Steps 2-6 run per track.
3. The box becomes a square window (``data.crop_margin`` x its side) smoothed over time with a
   Gaussian of ``data.box_smoothing`` frames, truncated at +-ceil(3 sigma) frames: that is the
   look-ahead (the ``sample`` stage smooths the whole track at once; this matches it to within the
   0.3 % of weight beyond 3 sigma). A track's ends are padded with its end values.
4. The crop (``finenet.face.crop.crop_frame``) gets 68 landmarks (``landmarks.detector``)
   rendered to heatmaps (``landmarks.sigma``) exactly as the ``heatmaps`` stage does. It is the
   face crop the pipeline trains on (``data.crop_size`` pixels for the window) with context around
   it at the same scale (``--context`` R, ``paste.ContextCrop``): R x the window's side, sampled
   at R x ``data.crop_size`` pixels (rounded up to what the networks need), heatmaps at R x
   ``landmarks.heatmap_size``. R = 1 is the face crop itself.
5. FineNet on the crops of frames t-2..t+2, indices clamped to the face track's ends. Its keep
   model (do no harm: a frame judged sharp comes back as it is) judges the face crop at the
   centre, the crop it was trained on, not the context around it.
6. Paste back: the correction FineNet makes to the crop (output - input crop) is mapped into the
   frame by the inverse of the crop transform (bilinear; anti-aliased when the crop is finer than
   the frame) and added under a feathered mask (1 in the middle, a smoothstep to 0 over the outer
   15 % (FEATHER) of the crop side: with R >= 1 / (1 - 2 x FEATHER) ~ 1.43 the whole face crop
   gets the full correction). Pixels outside the crop are untouched, and a face larger than the
   crop keeps the frame's own detail where FineNet changes nothing. Where the crops of two faces
   overlap, their corrections are averaged with the masks as weights (added as they are where
   the masks sum to at most 1). Only the pixels whose RGB the paste changed get new YUV samples
   (the YUV difference of the change, ``finenet.video.stream``).

Bad input is one ``FineNetError``: among them a still image (a PNG or JPEG, even named .mp4), and
an input that does not decode to the end (truncated or corrupt: ``decoding stopped at frame N of
M``; found only when decoding reaches the damage, the frames before it already processed and then
discarded). The output is
written to a hidden temporary file next to it (``.<name>.<random>.deblur.tmp<suffix>``, flock-ed
while the run lives) and renamed only when complete, so a failed run leaves no output behind and
deletes its temporary file; one a killed run left is deleted by the next run writing to that
folder (``video.stream.remove_stale_temps``).

On a CPU shared with other work, OMP_NUM_THREADS=1 can be several times faster than torch's
default thread count (the per-frame tensors are small).

Modules: ``tracking`` (steps 1-5), ``model`` (loading and running FineNet), ``paste`` (step 6),
``command`` (the command line and ``run``), ``folder`` (a folder of videos, the models loaded once). The names below are the package's interface.
"""

HELP = "deblur the faces in a video with the trained FineNet"
DESCRIPTION = __doc__

from .command import add_arguments, encode_options, run  # noqa: E402
from .model import TTA, load, load_finenet, make_detectors, predict  # noqa: E402

__all__ = ["DESCRIPTION", "HELP", "TTA", "add_arguments", "encode_options", "load", "load_finenet",
           "make_detectors", "predict", "run"]
