"""A procedural people dataset in the real COCO keypoints layout, for quick starts and tests.

Each 256x256 image shows 1-3 articulated figures (17 COCO keypoints) on a cluttered background. Left
and right are readable the way they are for real people, from which way a figure faces: facing the
camera it shows a face and a collar (its left side on the image right); facing away it shows the back
of the head (hair, no face; nose and eyes unlabelled) and its left side is on the image left; side
views show a profile, the far eye and ear unlabelled. Colours never encode sides. Visibility follows
COCO: 2 visible, 1 labelled but occluded, 0 unlabelled (also outside the image).

Modules: `body` (part ids, `Figure`, `Look`), `figure` (random poses), `shapes` (body outlines),
`paint` (colours and textures), `scene` (backgrounds, placement, occluders, visibility), `dataset`
(COCO files, detections, cache). To draw people into other images (e.g. segmentation scenes):

    fig, look = sample_figure(rng)                       # unit height, origin at the neck
    painted = paint_figure(image, fig.transform(height_px, offset_px), look, rng)
    painted.mask, painted.parts, painted.box             # keypoints: the transformed figure's
"""

from .body import (
    BELT,
    BG,
    BUTTON,
    COLLAR,
    DRESS,
    EAR_L,
    EAR_R,
    EYE,
    FOOT_L,
    FOOT_R,
    FOREARM_L,
    FOREARM_R,
    HAIR,
    HAND_L,
    HAND_R,
    HEAD,
    MOUTH,
    NECK,
    NOSE,
    NUM_PARTS,
    SHIN_L,
    SHIN_R,
    THIGH_L,
    THIGH_R,
    TORSO,
    UPPER_ARM_L,
    UPPER_ARM_R,
    Figure,
    Look,
)
from .dataset import GENERATOR_VERSION, MARKER_NAME, ensure_synthetic_pose, generate_synthetic_pose
from .figure import sample_figure, sample_look
from .paint import PaintedFigure, paint_figure, person_palette
from .scene import Scene, background, render_image

__all__ = [
    "BELT", "BG", "BUTTON", "COLLAR", "DRESS", "EAR_L", "EAR_R", "EYE", "FOOT_L", "FOOT_R", "FOREARM_L",
    "FOREARM_R", "HAIR", "HAND_L", "HAND_R", "HEAD", "MOUTH", "NECK", "NOSE", "NUM_PARTS", "SHIN_L", "SHIN_R",
    "THIGH_L", "THIGH_R", "TORSO", "UPPER_ARM_L", "UPPER_ARM_R",
    "GENERATOR_VERSION", "MARKER_NAME", "Figure", "Look", "PaintedFigure", "Scene",
    "background", "ensure_synthetic_pose", "generate_synthetic_pose", "paint_figure", "person_palette",
    "render_image", "sample_figure", "sample_look",
]  # fmt: skip
