from __future__ import annotations

import numpy as np
import pytest
import torch
from data_modules.clips import gaussian_heatmaps, to_heatmap_coords

from tassn.hand.skeleton import BONES
from tassn.predict.decode import fuse_directions, heatmaps_to_keypoints
from tassn.predict.view3d import ViewFrame, project_view, render_view3d, view_frame, view_rotation


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_keypoints_invert_the_training_targets(sigma: float) -> None:
    kp_crop = torch.tensor([[[10.3, 20.7], [33.0, 25.2], [40.9, 31.4]]], dtype=torch.float64)
    maps = gaussian_heatmaps(to_heatmap_coords(kp_crop), 16, sigma=sigma)  # 64 px crops → 16 px heatmaps
    maps[0, 1] *= 0.5
    kp, conf = heatmaps_to_keypoints(maps, crop_size=64)
    np.testing.assert_allclose(kp.numpy(), kp_crop.numpy(), atol=1e-3)  # exact for Gaussian peaks
    np.testing.assert_allclose(conf[0, 1], 0.5 * maps[0, 0].max(), rtol=0.3)
    assert conf[0, 0] > 0.6
    soft, _ = heatmaps_to_keypoints(maps, crop_size=64, method="softargmax", temperature=1 / sigma**2)
    np.testing.assert_allclose(soft.numpy(), kp_crop.numpy(), atol=0.1)
    with pytest.raises(ValueError, match="stride"):
        heatmaps_to_keypoints(maps, crop_size=32)


def test_quadratic_refinement_stays_in_the_peak_pixel_at_the_border() -> None:
    maps = torch.zeros(1, 1, 16, 16)
    maps[0, 0, 0, 15] = 1.0  # a peak in the corner: no neighbour on two sides
    kp, conf = heatmaps_to_keypoints(maps, crop_size=64)
    np.testing.assert_allclose(kp[0, 0].numpy(), [15 * 4 + 1.5, 1.5])
    assert conf.item() == 1.0


def test_fuse_is_the_mean() -> None:
    a, b = torch.zeros(2, 3), torch.full((2, 3), 4.0)
    assert torch.equal(fuse_directions(a, b), torch.full((2, 3), 2.0))
    with pytest.raises(ValueError):
        fuse_directions(a, torch.zeros(3))


def test_view_rotation_turns_x_into_depth() -> None:
    r = view_rotation(90.0, 0.0)
    np.testing.assert_allclose(r @ [1.0, 0.0, 0.0], [0.0, 0.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(r @ [0.0, 1.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)


def test_render_view3d_draws_the_pose_where_projected() -> None:
    pose = np.zeros((21, 3))
    pose[1:, 1] = -np.linspace(1, 4, 20)  # every joint straight up from the wrist
    size, view = 64, view_frame(pose[None])
    np.testing.assert_allclose(view.centre, [0.0, -2.0, 0.0])
    assert view.extent == pytest.approx(2.2)
    view = ViewFrame(np.zeros(3), 4.4)  # wrist in the middle of the view
    colors = [(255, 0, 0)] * len(BONES)
    image = render_view3d(pose, size, view, colors, yaw_deg=0.0, pitch_deg=0.0, label=None)
    points, _ = project_view(pose, size, view, view_rotation(0.0, 0.0))
    # a vertical red line from the centre up to the tip's projection
    column = int(round(points[0, 0]))
    top, bottom = int(round(points[-1, 1])), int(round(points[0, 1]))
    assert bottom == 32 and top < 8
    drawn = image.astype(int).sum(axis=2) > 3 * 60  # red bones and white joints on a dark background
    assert drawn[top + 1 : bottom, column].all()
    assert not drawn[2:-2, 2 : column - 3].any() and not drawn[2:-2, column + 4 : -2].any()
    reds = (image[:, :, 0] > 150) & (image[:, :, 1] < 100)
    assert reds[top:bottom, column - 2 : column + 3].sum() > 5
    blank = render_view3d(np.full((21, 3), np.nan), size, view, colors, label=None)
    assert not ((blank[:, :, 0] > 150) & (blank[:, :, 1] < 100)).any()
