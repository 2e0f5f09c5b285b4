"""One interface over two 68-point landmark detectors (same iBUG 68-point convention, 0-based
pixel coordinates):

- ``dlib`` (offline default): HOG face detector + the iBUG 68-point shape predictor shipped by the
  ``face-recognition-models`` wheel (or Debian's ``libdlib-data``).
- ``fan``: face-alignment's FAN, the paper's detector [Bulat & Tzimiropoulos 2017]; its weights
  must already be in ``$TORCH_HOME/hub/checkpoints`` (they are downloaded at run time otherwise).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from ..errors import FineNetError

PREDICTOR_NAME = "shape_predictor_68_face_landmarks.dat"


def dlib_predictor_path() -> Path:
    candidates = []
    spec = importlib.util.find_spec("face_recognition_models")  # locate without importing it:
    if spec and spec.submodule_search_locations:                 # its __init__ needs pkg_resources
        candidates.append(Path(spec.submodule_search_locations[0]) / "models" / PREDICTOR_NAME)
    candidates.append(Path("/usr/share/dlib") / PREDICTOR_NAME)
    for c in candidates:
        if c.is_file():
            return c
    raise FineNetError(candidates[0], "dlib 68-point predictor not found: "
                                      "pip install face-recognition-models (or apt install libdlib-data)")


class DlibDetector:
    name = "dlib"

    def __init__(self, upsample: int = 1):
        import dlib

        self.upsample = upsample
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(dlib_predictor_path()))
        self._dlib = dlib

    def detect_faces(self, image: np.ndarray) -> list[np.ndarray]:
        """Face boxes (x0, y0, x1, y1), largest first."""
        rects = self._detector(np.ascontiguousarray(image), self.upsample)
        boxes = [np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float32) for r in rects]
        return sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self._predictor(np.ascontiguousarray(image), self._dlib.rectangle(x0, y0, x1, y1))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


class FanDetector:
    """face-alignment (FAN) 2D landmarks with its SFD face detector."""

    name = "fan"

    def __init__(self, device: str = "cpu"):
        try:
            import face_alignment
        except ImportError:
            raise FineNetError("landmarks.detector", "fan needs face-alignment: pip install -e '.[fan]'") from None
        hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
        if not any(hub.glob("2DFAN4*")) or not any(hub.glob("s3fd*")):
            raise FineNetError(hub, "face-alignment weights (2DFAN4-*.zip, s3fd-*.pth) not found; "
                                    "copy them there or set landmarks.detector: dlib")
        self._fa = face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, device=device,
                                                flip_input=False, face_detector="sfd")

    def detect_faces(self, image: np.ndarray) -> list[np.ndarray]:
        dets = self._fa.face_detector.detect_from_image(image[..., ::-1].copy()) or []
        boxes = [np.asarray(d[:4], dtype=np.float32) for d in dets if d[4] > 0.5]
        return sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        # float64: face-alignment builds its crop transform from the box's numbers, and a float32
        # scalar cannot be assigned into a torch tensor (found by tests/test_paper_dryrun.py)
        out = self._fa.get_landmarks_from_image(image, detected_faces=[np.asarray(box, dtype=np.float64)])
        return np.asarray(out[0], dtype=np.float32)[:, :2]


def make_detector(name: str, upsample: int = 1, device: str = "cpu"):
    if name == "dlib":
        return DlibDetector(upsample)
    if name == "fan":
        return FanDetector(device)
    raise FineNetError("landmarks.detector", f"unknown detector '{name}' (dlib or fan)")
