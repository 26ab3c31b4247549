"""Top-down affine pipeline and heatmap codec against loop-based references of the reference code."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from hrformer_core.data.transforms import IMAGENET_MEAN, affine_points, get_affine_matrix
from hrformer_core.errors import UsageError
from hrformer_core.tasks.pose.codecs import HeatmapCodec, flip_back, heatmap_to_image_coords
from hrformer_core.tasks.pose.keypoints import COCO17
from hrformer_core.tasks.pose.transforms import (
    TopDownAugment,
    TopDownTransform,
    box_xywh_to_center_scale,
    half_body_box,
)

IN_HW, HM_HW = (256, 192), (64, 48)


def reference_affine(center, scale, rot, out_wh):
    """The reference three-point construction (src/dst center, 'up' direction, perpendicular)."""

    def rotate(p, rad):
        s, c = np.sin(rad), np.cos(rad)
        return np.array([p[0] * c - p[1] * s, p[0] * s + p[1] * c])

    def third(a, b):
        d = a - b
        return b + np.array([-d[1], d[0]])

    src_w, (dst_w, dst_h) = scale[0], out_wh
    src_dir = rotate(np.array([0.0, src_w * -0.5]), np.deg2rad(rot))
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0], src[1] = center, center + src_dir
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + np.array([0.0, dst_w * -0.5])
    src[2], dst[2] = third(src[0], src[1]), third(dst[0], dst[1])
    return cv2.getAffineTransform(src, dst)


def reference_encode(joints, visible, sigma, in_wh, hm_wh):
    """Per-joint loop of the reference MSRA target."""
    w, h = hm_wh
    stride = np.array(in_wh) / np.array(hm_wh)
    target = np.zeros((len(joints), h, w), np.float32)
    weight = np.zeros(len(joints), np.float32)
    radius = sigma * 3
    for j, (joint, vis) in enumerate(zip(joints, visible, strict=True)):
        weight[j] = float(vis > 0)
        mu_x, mu_y = int(joint[0] / stride[0] + 0.5), int(joint[1] / stride[1] + 0.5)
        ul = [int(mu_x - radius), int(mu_y - radius)]
        br = [int(mu_x + radius + 1), int(mu_y + radius + 1)]
        if ul[0] >= w or ul[1] >= h or br[0] < 0 or br[1] < 0:
            weight[j] = 0
        if weight[j] > 0.5:
            size = int(2 * radius + 1)
            x = np.arange(size, dtype=np.float32)
            y = x[:, None]
            g = np.exp(-((x - size // 2) ** 2 + (y - size // 2) ** 2) / (2 * sigma**2))
            gx, gy = (max(0, -ul[0]), min(br[0], w) - ul[0]), (max(0, -ul[1]), min(br[1], h) - ul[1])
            ix, iy = (max(0, ul[0]), min(br[0], w)), (max(0, ul[1]), min(br[1], h))
            target[j, iy[0] : iy[1], ix[0] : ix[1]] = g[gy[0] : gy[1], gx[0] : gx[1]]
    return target, weight


def reference_decode(heatmaps, dark=False):
    """Loop version of the reference argmax + quarter offset, and of DARK (blur, log, Taylor)."""
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    idx, maxvals = flat.argmax(2), flat.max(2)
    coords = np.stack([idx % w, idx // w], -1).astype(np.float64)
    coords = np.where(np.tile(maxvals[..., None], (1, 1, 2)) > 0.0, coords, -1)  # as `_get_max_preds`
    maps = heatmaps.astype(np.float64).copy()
    if dark:
        for i in range(n):
            for j in range(k):
                dr = np.zeros((h + 10, w + 10))
                dr[5:-5, 5:-5] = maps[i, j]
                blurred = cv2.GaussianBlur(dr, (11, 11), 0)[5:-5, 5:-5]
                maps[i, j] = np.log(np.maximum(blurred * maps[i, j].max() / blurred.max(), 1e-10))
    for i in range(n):
        for j in range(k):
            hm, (px, py) = maps[i, j], (int(coords[i, j, 0]), int(coords[i, j, 1]))
            if not dark and 1 < px < w - 1 and 1 < py < h - 1:
                diff = np.array([hm[py, px + 1] - hm[py, px - 1], hm[py + 1, px] - hm[py - 1, px]])
                coords[i, j] += np.sign(diff) * 0.25
            if dark and 1 < px < w - 2 and 1 < py < h - 2:
                dx = 0.5 * (hm[py, px + 1] - hm[py, px - 1])
                dy = 0.5 * (hm[py + 1, px] - hm[py - 1, px])
                dxx = 0.25 * (hm[py, px + 2] - 2 * hm[py, px] + hm[py, px - 2])
                dxy = 0.25 * (hm[py + 1, px + 1] - hm[py - 1, px + 1] - hm[py + 1, px - 1] + hm[py - 1, px - 1])
                dyy = 0.25 * (hm[py + 2, px] - 2 * hm[py, px] + hm[py - 2, px])
                hessian = np.array([[dxx, dxy], [dxy, dyy]])
                if dxx * dyy - dxy**2 != 0:
                    coords[i, j] -= np.linalg.inv(hessian) @ np.array([dx, dy])
    return coords, maxvals


def test_box_to_center_scale_pads_to_the_aspect_ratio_in_pixels():
    center, scale = box_xywh_to_center_scale([10, 20, 30, 80], aspect_ratio=0.75)
    np.testing.assert_allclose(center, [25, 60])
    np.testing.assert_allclose(scale, [60 * 1.25, 80 * 1.25])  # w grown to 0.75 * h
    _, scale = box_xywh_to_center_scale([0, 0, 90, 60], aspect_ratio=0.75, padding=1.0)
    np.testing.assert_allclose(scale, [90, 120])


@pytest.mark.parametrize("rot", [0.0, 17.0, -65.0])
def test_affine_matrix_matches_the_reference_construction(rot):
    center, scale = np.array([123.4, 87.6]), np.array([150.0, 200.0])
    ours = get_affine_matrix(center, scale, rot, (192, 256))
    np.testing.assert_allclose(ours, reference_affine(center, scale, rot, (192, 256)), atol=1e-4)
    inverse = get_affine_matrix(center, scale, rot, (192, 256), inverse=True)
    points = np.array([[0.0, 0.0], [50.0, 170.0], [300.0, -20.0]])
    np.testing.assert_allclose(affine_points(affine_points(points, ours), inverse), points, atol=1e-9)
    np.testing.assert_allclose(affine_points(center, ours), [96, 128], atol=1e-9)


def _dotted_image(points, shape=(200, 300)):
    """Black image with a red dot at points[0] and a blue dot at points[1]."""
    image = np.zeros((*shape, 3), np.uint8)
    for (x, y), color in zip(points, [(255, 0, 0), (0, 0, 255)], strict=False):
        cv2.circle(image, (int(x), int(y)), 2, color, -1)
    return image


def _find_dot(crop, channel):
    """Centroid of the crop pixels that are mostly `channel` (0 red, 2 blue), from the normalised image."""
    rgb = crop.transpose(1, 2, 0) * np.array([0.229, 0.224, 0.225]) * 255 + IMAGENET_MEAN * 255
    ys, xs = np.nonzero((rgb[..., channel] > 100) & (rgb[..., 2 - channel] < 60))
    return np.array([xs.mean(), ys.mean()])


def test_transform_warps_image_and_keypoints_consistently_with_flip_and_rotation():
    kpts = np.zeros((17, 3))
    kpts[5] = [120, 80, 2]  # left shoulder
    kpts[6] = [170, 90, 2]  # right shoulder
    image = _dotted_image([kpts[5, :2], kpts[6, :2]])
    augment = TopDownAugment(flip_prob=1.0, rotation_prob=1.0, half_body_prob=0.0, shift_prob=0.0)
    transform = TopDownTransform(IN_HW, COCO17, augment)
    sample = transform(image, np.array([150.0, 100.0]), np.array([150.0, 200.0]), kpts, rng=np.random.default_rng(3))
    assert sample.flipped and sample.rotation != 0.0
    assert sample.image.shape == (3, 256, 192) and sample.image.dtype == np.float32
    # After the flip, keypoint 5 (left shoulder) is the original right shoulder: the blue dot.
    np.testing.assert_allclose(_find_dot(sample.image, 2), sample.keypoints[5], atol=0.7)
    np.testing.assert_allclose(_find_dot(sample.image, 0), sample.keypoints[6], atol=0.7)
    assert sample.center[0] == pytest.approx(300 - 1 - 150.0)


def test_transform_without_augmentation_is_the_plain_crop_and_normalises():
    image = np.empty((100, 100, 3), np.uint8)
    image[:] = np.round(IMAGENET_MEAN * 255).astype(np.uint8)
    sample = TopDownTransform((64, 48), COCO17)(image, np.array([50.0, 50.0]), np.array([60.0, 80.0]))
    assert not sample.flipped and sample.rotation == 0.0
    assert np.abs(sample.image[:, 10:-10, 10:-10]).max() < 0.01
    np.testing.assert_allclose(sample.scale, [60, 80])


def test_augment_validation_and_determinism():
    with pytest.raises(UsageError, match=r"augment.flip_prob=2 is not a probability"):
        TopDownAugment(flip_prob=2)
    with pytest.raises(UsageError, match="scale_range"):
        TopDownAugment(scale_range=(1.2, 1.5))
    image = _dotted_image([(100, 100)])
    kpts = np.zeros((17, 3))
    kpts[:, :2], kpts[:, 2] = np.random.default_rng(0).uniform(60, 140, (17, 2)), 2
    transform = TopDownTransform(IN_HW, COCO17, TopDownAugment())
    a = transform(image, np.array([100.0, 100.0]), np.array([90.0, 120.0]), kpts, rng=np.random.default_rng(7))
    b = transform(image, np.array([100.0, 100.0]), np.array([90.0, 120.0]), kpts, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_half_body_box_uses_the_chosen_half():
    kpts = np.zeros((17, 3))
    kpts[:, :2] = np.stack([np.arange(17) * 2.0, np.arange(17) * 10.0], 1)
    kpts[:, 2] = 2
    center, scale = half_body_box(kpts, COCO17, 0.75, np.random.default_rng(0), upper_prob=1.0)
    np.testing.assert_allclose(center, kpts[:11, :2].mean(0))
    np.testing.assert_allclose(scale, [100 * 0.75 * 1.5, 100 * 1.5])
    center, _ = half_body_box(kpts, COCO17, 0.75, np.random.default_rng(0), upper_prob=0.0)
    np.testing.assert_allclose(center, kpts[11:, :2].mean(0))
    kpts[1:, 2] = 0
    assert half_body_box(kpts, COCO17, 0.75, np.random.default_rng(0)) is None


def test_encode_matches_the_reference_msra_target():
    rng = np.random.default_rng(1)
    joints = rng.uniform(-30, 220, (17, 2))
    joints[0] = [-40, 10]  # Gaussian entirely outside: weight 0
    visible = rng.integers(0, 3, 17)
    heatmaps, weights = HeatmapCodec(IN_HW, HM_HW, sigma=2.0).encode(joints, visible)
    ref_maps, ref_weights = reference_encode(joints, visible, 2.0, (192, 256), (48, 64))
    np.testing.assert_array_equal(weights, ref_weights)
    np.testing.assert_allclose(heatmaps, ref_maps, atol=1e-6)
    assert weights[0] == 0 and heatmaps.dtype == np.float32


def test_decode_matches_the_reference_on_random_maps():
    rng = np.random.default_rng(2)
    maps = cv2.GaussianBlur(rng.random((6 * 17, 64, 48)).transpose(1, 2, 0), (7, 7), 2).transpose(2, 0, 1)
    maps = maps.reshape(6, 17, 64, 48).astype(np.float32)
    maps[0, 0] = -1.0  # non-positive peak decodes to (-1, -1) with its score
    for dark in (False, True):
        coords, scores = HeatmapCodec(IN_HW, HM_HW).decode(torch.from_numpy(maps), dark=dark)
        ref_coords, ref_scores = reference_decode(maps, dark=dark)
        np.testing.assert_allclose(coords, ref_coords, atol=1e-5)
        np.testing.assert_allclose(scores, ref_scores)
    assert coords[0, 0].tolist() == [-1.0, -1.0] and scores[0, 0] == -1.0


def test_encode_decode_round_trip_at_heatmap_resolution():
    rng = np.random.default_rng(3)
    joints = rng.uniform(20, 170, (17, 2))
    visible = np.full(17, 2)
    truth = joints / 4.0
    maps, _ = HeatmapCodec(IN_HW, HM_HW, unbiased=True).encode(joints, visible)
    coords, _ = HeatmapCodec(IN_HW, HM_HW).decode(maps[None])
    assert np.abs(coords[0] - truth).max() < 0.3
    # The reference target puts the peak on the nearest pixel: half a pixel is its quantisation limit.
    maps, _ = HeatmapCodec(IN_HW, HM_HW).encode(joints, visible)
    coords, _ = HeatmapCodec(IN_HW, HM_HW).decode(maps[None])
    assert np.abs(coords[0] - truth).max() <= 0.5 + 1e-9
    on_grid = np.round(joints / 4.0) * 4.0
    maps, _ = HeatmapCodec(IN_HW, HM_HW).encode(on_grid, visible)
    np.testing.assert_allclose(HeatmapCodec(IN_HW, HM_HW).decode(maps[None])[0][0], on_grid / 4.0)


def test_dark_beats_argmax_on_subpixel_targets():
    rng = np.random.default_rng(4)
    joints = rng.uniform(20, 170, (17, 2))
    truth = joints / 4.0
    codec = HeatmapCodec(IN_HW, HM_HW, sigma=2.0, unbiased=True)
    maps, _ = codec.encode(joints, np.full(17, 2))
    plain = np.abs(codec.decode(maps[None])[0][0] - truth).mean()
    dark = np.abs(codec.decode(maps[None], dark=True)[0][0] - truth).mean()
    assert dark < 0.05 < plain


def test_flip_back_swaps_pairs_mirrors_and_shifts():
    maps = torch.rand(2, 17, 8, 6)
    pairs = COCO17.flip_pairs
    unshifted = flip_back(maps, pairs, shift=False)
    assert torch.equal(flip_back(unshifted, pairs, shift=False), maps)
    assert torch.equal(unshifted[:, 1], maps[:, 2].flip(-1))
    shifted = flip_back(maps, pairs)
    assert torch.equal(shifted[..., 1:], unshifted[..., :-1]) and torch.equal(shifted[..., 0], unshifted[..., 0])
    np.testing.assert_array_equal(flip_back(maps.numpy(), pairs), shifted.numpy())


def test_flip_test_heatmaps_line_up_with_the_unflipped_ones():
    codec = HeatmapCodec(IN_HW, HM_HW, unbiased=True)
    joints = np.random.default_rng(5).uniform(30, 160, (17, 2))
    mirrored = joints[COCO17.flip_index].copy()
    mirrored[:, 0] = IN_HW[1] - 1 - mirrored[:, 0]  # the network input mirrored
    maps, _ = codec.encode(mirrored, np.full(17, 2))
    back = flip_back(torch.from_numpy(maps[None]), COCO17.flip_pairs)
    coords, _ = codec.decode(back, dark=True)
    # Mirroring at heatmap scale leaves the reference's quarter-pixel offset: (w-1) - (W-1)/stride + 1 = 0.25
    np.testing.assert_allclose(coords[0, :, 0] - joints[:, 0] / 4, 0.25, atol=0.05)


def test_round_trip_image_to_heatmap_to_image_within_a_pixel():
    rng = np.random.default_rng(6)
    image = np.zeros((300, 400, 3), np.uint8)
    center, scale = box_xywh_to_center_scale([120, 40, 110, 220], 192 / 256)
    kpts = np.concatenate([rng.uniform([125, 45], [225, 255], (17, 2)), np.full((17, 1), 2.0)], 1)
    sample = TopDownTransform(IN_HW, COCO17)(image, center, scale, kpts)
    for unbiased, dark, tolerance in ((True, True, 0.2), (False, False, 0.5 * scale[0] / 48 + 1e-6)):
        codec = HeatmapCodec(IN_HW, HM_HW, unbiased=unbiased)
        maps, _ = codec.encode(sample.keypoints, sample.visible)
        coords, _ = codec.decode(maps[None], dark=dark)
        back = heatmap_to_image_coords(coords, sample.center[None], sample.scale[None], HM_HW)[0]
        assert np.abs(back - kpts[:, :2]).max() < tolerance
