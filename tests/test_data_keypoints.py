"""Keypoint sets: COCO-17 facts, YAML and COCO-category loading, validation messages."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hrformer_core.errors import DataError, UsageError
from hrformer_core.tasks.pose.keypoints import (
    CENTER_COLOR,
    COCO17,
    LEFT_COLOR,
    RIGHT_COLOR,
    KeypointSet,
    get_keypoint_set,
)


def test_coco17_matches_the_reference_dataset_meta():
    assert COCO17.num_keypoints == 17
    assert COCO17.keypoints[0] == "nose" and COCO17.keypoints[16] == "right_ankle"
    np.testing.assert_allclose(COCO17.sigmas[[0, 5, 11, 16]], [0.026, 0.079, 0.107, 0.089])
    assert COCO17.flip_pairs == ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
    assert COCO17.upper_body_ids == tuple(range(11)) and COCO17.lower_body_ids == tuple(range(11, 17))
    assert len(COCO17.skeleton) == 19 and COCO17.skeleton[0] == (15, 13)  # [16, 14] 1-based
    assert not COCO17.sigmas.flags.writeable


def test_coco17_flip_index_swaps_left_and_right_names():
    index = COCO17.flip_index
    assert np.array_equal(index[index], np.arange(17))
    for i, j in enumerate(index):
        name = COCO17.keypoints[i]
        expected = name.replace("left", "#").replace("right", "left").replace("#", "right")
        assert COCO17.keypoints[j] == expected


def test_coco17_colours_are_mmpose_colours():
    assert COCO17.keypoint_colors[0] == CENTER_COLOR == (51, 153, 255)
    assert COCO17.keypoint_colors[1] == CENTER_COLOR  # mmpose draws the eyes in the centre colour
    assert COCO17.keypoint_colors[5] == LEFT_COLOR == (0, 255, 0)
    assert COCO17.keypoint_colors[6] == RIGHT_COLOR == (255, 128, 0)
    links = dict(zip(COCO17.skeleton, COCO17.limb_colors, strict=True))
    assert links[(15, 13)] == LEFT_COLOR  # left ankle - left knee
    assert links[(8, 10)] == RIGHT_COLOR  # right elbow - right wrist ([9, 11] 1-based)
    assert links[(3, 5)] == CENTER_COLOR  # left ear - left shoulder


def test_coco_category_round_trip_returns_coco17():
    category = COCO17.to_coco_category()
    assert category["skeleton"][0] == [16, 14]
    assert KeypointSet.from_coco_category(category) is COCO17


def test_custom_coco_category_infers_flip_pairs_halves_and_default_sigmas():
    category = {
        "id": 3,
        "name": "robot",
        "keypoints": ["head", "left_hand", "right_hand", "hip_center", "left_foot", "right_foot"],
        "skeleton": [[1, 2], [1, 3], [4, 5], [4, 6]],
    }
    kset = KeypointSet.from_coco_category(category)
    assert kset.name == "robot"
    assert kset.flip_pairs == ((1, 2), (4, 5))
    assert kset.skeleton == ((0, 1), (0, 2), (3, 4), (3, 5))
    np.testing.assert_allclose(kset.sigmas, 0.05)
    assert kset.upper_body_ids == (0, 1, 2) and kset.lower_body_ids == (3, 4, 5)
    assert kset.keypoint_colors[1] == LEFT_COLOR and kset.keypoint_colors[2] == RIGHT_COLOR
    with_sigmas = KeypointSet.from_coco_category(category, sigmas=[0.1] * 6)
    np.testing.assert_allclose(with_sigmas.sigmas, 0.1)


def test_coco_category_errors_name_the_problem():
    with pytest.raises(DataError, match=r"skeleton entry \[0, 2\] must be two 1-based indices in 1\.\.2"):
        KeypointSet.from_coco_category({"id": 1, "name": "p", "keypoints": ["a", "b"], "skeleton": [[0, 2]]})
    with pytest.raises(DataError, match="has no 'keypoints'"):
        KeypointSet.from_coco_category({"id": 1, "name": "p"})
    with pytest.raises(DataError, match="'sigmas' must be a list of 2 positive numbers"):
        KeypointSet.from_coco_category({"id": 1, "name": "p", "keypoints": ["a", "b"]}, sigmas=[0.1])


YAML_OK = """
name: hand5
keypoints: [wrist, left_tip, right_tip, left_knee_pad, right_knee_pad]
skeleton: [[wrist, left_tip], [0, 2]]
flip_pairs: [[left_tip, right_tip], [3, 4]]
sigmas: [0.1, 0.2, 0.2, 0.3, 0.3]
upper_body: [wrist, left_tip, right_tip]
lower_body: [3, 4]
"""


def test_from_yaml_accepts_names_and_indices(tmp_path):
    path = tmp_path / "hand.yaml"
    path.write_text(YAML_OK)
    kset = KeypointSet.from_yaml(path)
    assert kset.name == "hand5"
    assert kset.skeleton == ((0, 1), (0, 2))
    assert kset.flip_pairs == ((1, 2), (3, 4))
    np.testing.assert_allclose(kset.sigmas, [0.1, 0.2, 0.2, 0.3, 0.3])
    assert kset.lower_body_ids == (3, 4)
    assert np.array_equal(kset.flip_index, [0, 2, 1, 4, 3])
    assert get_keypoint_set(path) == kset


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("sigmas: [0.1, 0.2, 0.2, 0.3, 0.3]", "sigmas: [0.1, 0.2]"), "'sigmas' must be a list of 5 positive numbers"),
        (("[wrist, left_tip], [0, 2]", "[wrist, thumb]"), "skeleton: unknown keypoint name 'thumb'"),
        (("[0, 2]]", "[0, 9]]"), r"skeleton: index 9 is out of range 0\.\.4"),
        (("[3, 4]]", "[3, 1]]"), r"flip_pairs use keypoint\(s\) \['left_tip'\] more than once"),
        (("name: hand5", "name: hand5\ncolour: red"), r"unknown key\(s\) \['colour'\]"),
        (("right_knee_pad]", "wrist]"), r"duplicate keypoint name\(s\) \['wrist'\]"),
    ],
)
def test_from_yaml_errors_name_file_and_problem(tmp_path, edit, message):
    path = tmp_path / "bad.yaml"
    path.write_text(YAML_OK.replace(*edit))
    with pytest.raises(DataError, match=message) as info:
        KeypointSet.from_yaml(path)
    assert str(path) in str(info.value)


def test_from_yaml_rejects_non_mapping_and_invalid_yaml(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(DataError, match="expected a mapping"):
        KeypointSet.from_yaml(path)
    path.write_text("name: [unclosed\n")
    with pytest.raises(DataError, match="not valid YAML"):
        KeypointSet.from_yaml(path)


def test_get_keypoint_set_by_name_json_and_unknown(tmp_path):
    assert get_keypoint_set("coco") is COCO17 and get_keypoint_set("COCO-17") is COCO17
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": [], "annotations": [], "categories": [COCO17.to_coco_category()]}))
    assert get_keypoint_set(ann) is COCO17
    with pytest.raises(UsageError, match="unknown keypoint set 'mpii'"):
        get_keypoint_set("mpii")
    with pytest.raises(DataError, match="not found"):
        get_keypoint_set(tmp_path / "missing.yaml")
