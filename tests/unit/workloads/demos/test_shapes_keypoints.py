"""The keypoints demo's data and net: seeded squares whose keypoints are their corners and centre,
written as a COCO person-keypoints file the farm's reader accepts; a pose head in the
Ultralytics layout the keypoints task decodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workloads.datasets.coco_keypoints import read_keypoints
from workloads.demos.shapes_keypoints_data import (
    KEYPOINTS,
    render_pose_scene,
    write_keypoints_dataset,
)


def test_a_scene_is_seeded_and_its_keypoints_are_the_squares_corners_and_centre() -> None:
    a = render_pose_scene(np.random.default_rng([0, 3, 1, 7]), 64)
    b = render_pose_scene(np.random.default_rng([0, 3, 1, 7]), 64)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.keypoints, b.keypoints)
    for _ in range(20):
        scene = render_pose_scene(np.random.default_rng(_), 64)
        for pts, box in zip(scene.keypoints, scene.boxes, strict=True):
            tl, tr, br, bl, centre = pts
            np.testing.assert_allclose(centre, pts[:4].mean(0), atol=1e-9)
            # named in the square's own frame: top-left is left of top-right and above bottom-left
            assert tl[0] < tr[0] and tl[1] < bl[1] and br[0] > bl[0] and br[1] > tr[1]
            assert (pts[:, 0] >= box[0] - 1).all() and (pts[:, 0] <= box[2] + 1).all()
            assert (pts[:, 1] >= box[1] - 1).all() and (pts[:, 1] <= box[3] + 1).all()


def test_the_written_data_set_reads_as_a_users_keypoints_file(tmp_path: Path) -> None:
    paths = write_keypoints_dataset(tmp_path / "kp", n_train=6, n_calib=2, n_eval=4)
    again = write_keypoints_dataset(tmp_path / "kp", n_train=6, n_calib=2, n_eval=4)
    assert again == paths  # written once
    kp = read_keypoints(paths.eval_annotations, "eval_annotations")
    assert kp.num_keypoints == 5 and kp.names == KEYPOINTS
    assert len(kp.coco.images) == 4 and len(list(paths.calib_images.glob("*.png"))) == 2


def test_the_pose_net_outputs_the_ultralytics_pose_layout() -> None:
    import torch

    from workloads.demos.shapes_keypoints import SIGMAS, shapes_pose
    from workloads.tasks import Keypoints

    torch.manual_seed(0)
    net = shapes_pose().eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 64, 64)).numpy()
    assert out.shape == (2, 4 + 1 + 5 * 3, 16 * 16)
    task = Keypoints(outputs="yolo", class_ids="index", oks_sigmas=SIGMAS)
    task.check_outputs([out], "the demo")
    poses = task.decode([out], [None, None])
    assert all(p.keypoints.shape[1:] == (5, 3) for p in poses)
