"""Drawing poses over an image, for the error gallery: the ground truth's keypoints, the fp32
model's and the candidate's, in three colours, so that a person sees which keypoints moved.

The keypoints task's gallery hook (:meth:`Keypoints.draw`) draws one trial's poses with it;
the gallery puts fp32's and the candidate's side by side. PIL is imported when drawing, numpy
only at import time (task modules stay cheap).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

#: Colours (RGB) of the ground truth, the fp32 model and the candidate.
TRUTH, REFERENCE, CANDIDATE = (40, 200, 40), (40, 120, 255), (255, 60, 40)
#: Detections below this score are not drawn (what the fidelity metric counts).
MIN_SCORE = 0.3


def draw_poses(
    image: np.ndarray,
    candidate: Any,
    reference: Any = None,
    truth: dict[str, Any] | None = None,
    scale: int = 4,
) -> Image.Image:
    """``image`` (H×W×3 uint8, the original image) enlarged ``scale`` times, with the truth's
    labelled keypoints as rings, the fp32 model's (``reference``, a ``Poses``) as squares and
    the candidate's (a ``Poses``) as dots; boxes outlined in the same colours."""
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    canvas = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).resize(
        (w * scale, h * scale), Image.Resampling.NEAREST
    )
    draw = ImageDraw.Draw(canvas)
    r = max(2, scale)
    if truth is not None:
        for box, kps in zip(truth["boxes"], truth["keypoints"], strict=True):
            draw.rectangle([float(v) * scale for v in box], outline=TRUTH)
            for x, y, v in np.asarray(kps):
                if v > 0:
                    c = (x * scale, y * scale)
                    draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], outline=TRUTH, width=2)
    for poses, colour, square in ((reference, REFERENCE, True), (candidate, CANDIDATE, False)):
        if poses is None:
            continue
        shown = poses.above(MIN_SCORE)
        for box, kps in zip(shown.boxes, shown.keypoints, strict=True):
            draw.rectangle([float(v) * scale for v in box], outline=colour)
            for x, y, _ in np.asarray(kps):
                c, d = (x * scale, y * scale), r - 1
                shape = [c[0] - d, c[1] - d, c[0] + d, c[1] + d]
                (draw.rectangle if square else draw.ellipse)(shape, fill=colour)
    return canvas
