"""MANO loader without chumpy: a MANO-format pickle written here, read back, aligned, posed; clear errors."""

from __future__ import annotations

import math
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hand_fake_mano import Ch, dumps_like_mano, mano_arrays, write_mano

from tassn.hand.kinematics import CANONICAL_REST, PoseRanges, random_pose
from tassn.hand.mano import MANO_TIP_VERTICES, mano_to_canonical, read_mano
from tassn.hand.skeleton import FINGERS, finger_joints
from tassn.hand.template import HandTemplate, load_template, mano_template


def _rotation(axis: tuple[float, float, float], angle: float) -> np.ndarray:
    a = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


@pytest.fixture(scope="module")
def mano_like(procedural: HandTemplate) -> dict:
    """The procedural hand written as a MANO model: vertex order permuted so that MANO's fingertip vertex ids
    hold the vertices nearest our tips, in metres, in a rotated and shifted frame of its own."""
    v = procedural.vertices.double().numpy()
    n = len(v)
    perm = np.arange(n)
    for f in FINGERS:
        nearest = int(
            np.argmin(np.linalg.norm(v - CANONICAL_REST.joints[finger_joints(f)[3]].numpy(), axis=1))
        )
        here, slot = int(np.flatnonzero(perm == nearest)[0]), MANO_TIP_VERTICES[f]
        perm[[here, slot]] = perm[[slot, here]]
    inverse = np.argsort(perm)
    v_new = v[perm]
    faces = inverse[procedural.faces.numpy()]
    weights_ours = procedural.skin_weights.double().numpy()[perm]
    regressor_ours = procedural.joint_regressor.double().numpy()[:, perm]
    joint_of, _ = mano_to_canonical()
    weights = np.zeros((n, 16))
    j_reg = np.zeros((16, n))
    for ours, theirs in enumerate(joint_of):
        if theirs >= 0:
            weights[:, theirs] = weights_ours[:, ours]
            j_reg[theirs] = regressor_ours[ours]
    rot, shift = _rotation((1.0, 2.0, -0.5), 2.0), np.array([0.1, -0.02, 0.3])
    data = mano_arrays((v_new / 1000.0) @ rot.T + shift, faces, weights, j_reg)
    return {"data": data, "vertices_mm": v_new, "faces": faces}


def test_reads_chumpy_and_sparse_arrays_without_chumpy(mano_like: dict, tmp_path: Path) -> None:
    path = write_mano(tmp_path / "MANO_RIGHT.pkl", mano_like["data"])
    raw = path.read_bytes()
    assert b"chumpy.ch\nCh" in raw and b"scipy.sparse.csc\n" in raw and b"numpy.core.multiarray\n" in raw
    assert "chumpy" not in sys.modules
    model = read_mano(path)
    data = mano_like["data"]
    np.testing.assert_array_equal(model.shapedirs, data["shapedirs"].x)
    np.testing.assert_array_equal(model.J_regressor, data["J_regressor"].toarray())
    np.testing.assert_array_equal(model.v_template, data["v_template"])
    np.testing.assert_array_equal(model.posedirs, data["posedirs"])
    assert model.shapedirs.shape == (len(model.v_template), 3, 10)
    assert model.kintree_table[0, 0] == 4294967295


def test_load_mano_gives_a_template_in_our_conventions(mano_like: dict, tmp_path: Path) -> None:
    path = write_mano(tmp_path / "MANO_RIGHT.pkl", mano_like["data"])
    template = load_template(path)
    assert template.name == "mano"
    # metres → mm, MANO's own frame undone: the mesh lands on the procedural hand it was made from
    np.testing.assert_allclose(template.vertices.numpy(), mano_like["vertices_mm"], atol=1.0)
    np.testing.assert_array_equal(template.faces.numpy(), mano_like["faces"])
    rest_error = (template.rest.joints - CANONICAL_REST.joints).norm(dim=-1)
    assert float(rest_error.max()) < 3.0  # tips are the vertices nearest our tip joints
    # fingertips are MANO's fingertip vertices
    for f in FINGERS:
        tip = finger_joints(f)[3]
        torch.testing.assert_close(
            template.regress_joints(template.vertices)[tip], template.vertices[MANO_TIP_VERTICES[f]]
        )
    torch.testing.assert_close(
        template.skin_weights.sum(1), torch.ones(template.num_vertices), atol=1e-5, rtol=0
    )
    # posing the MANO template with our kinematics keeps mesh and joints together
    pose = random_pose(8, torch.Generator().manual_seed(2), PoseRanges(angle_scale=0.5, max_global_rot=1.0))
    verts, joints = template.pose(pose)
    err = (template.regress_joints(verts) - joints).norm(dim=-1)
    assert float(err.mean()) < 1.5 and float(err.max()) < 5.0


def test_protocol_0_pickles_load_too(mano_like: dict, tmp_path: Path) -> None:
    """Python 2's default protocol rebuilds objects through ``copy_reg._reconstructor``."""
    data = dict(mano_like["data"])
    data["shapedirs"] = Ch(np.arange(6.0).reshape(1, 3, 2).repeat(len(data["v_template"]), 0))
    raw = dumps_like_mano(data, protocol=0)
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(raw)
    assert float(read_mano(path).shapedirs[5, 2, 1]) == 5.0


def test_missing_file_says_where_to_get_mano(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"mano\.is\.tue\.mpg\.de") as err:
        mano_template(tmp_path / "nowhere" / "MANO_RIGHT.pkl")
    assert "nowhere" in str(err.value)


def test_malformed_files_name_the_problem(mano_like: dict, tmp_path: Path) -> None:
    data = dict(mano_like["data"])
    del data["weights"]
    with pytest.raises(ValueError, match="missing key.*weights"):
        read_mano(write_mano(tmp_path / "a.pkl", data))

    data = dict(mano_like["data"])
    data["J_regressor"] = np.zeros((15, len(data["v_template"])))
    with pytest.raises(ValueError, match="'J_regressor' has shape"):
        read_mano(write_mano(tmp_path / "b.pkl", data))

    (tmp_path / "c.pkl").write_bytes(b"this is not a pickle")
    with pytest.raises(ValueError, match="not a readable MANO pickle"):
        read_mano(tmp_path / "c.pkl")

    (tmp_path / "d.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ValueError, match="holding a dict"):
        read_mano(tmp_path / "d.pkl")


def test_a_code_payload_is_refused_before_it_runs(mano_like: dict, tmp_path: Path) -> None:
    from payloads import PAYLOAD_GLOBAL, TouchMarker
    from tassn.safe_load import UntrustedFileError

    marker = tmp_path / "marker"
    path = write_mano(tmp_path / "MANO_RIGHT.pkl", {**mano_like["data"], "hands_mean": TouchMarker(marker)})
    with pytest.raises(UntrustedFileError) as err:
        read_mano(path)
    assert str(path) in str(err.value) and PAYLOAD_GLOBAL in str(err.value)
    assert not marker.exists()


def test_scipy_sparse_functions_are_not_sparse_classes(mano_like: dict, tmp_path: Path) -> None:
    """``scipy.sparse.save_npz`` sits beside the matrix classes; naming it must not write a file."""
    import scipy.sparse as sp

    from tassn.safe_load import UntrustedFileError

    written = tmp_path / "written.npz"

    class SaveNpz:
        def __reduce__(self) -> tuple:
            return sp.save_npz, (str(written), sp.csc_matrix(np.eye(2)))

    raw = dumps_like_mano({**mano_like["data"], "hands_mean": SaveNpz()})
    module = sp.save_npz.__module__.encode()
    assert b"c" + module + b"\nsave_npz\n" in raw
    for name in (b"scipy.sparse", module):
        path = tmp_path / f"{name.decode()}.pkl"
        path.write_bytes(raw.replace(b"c" + module + b"\nsave_npz\n", b"c" + name + b"\nsave_npz\n"))
        with pytest.raises(UntrustedFileError, match=rf"{path.name}: refused to load {name.decode()}\.save_npz"):
            read_mano(path)
        assert not written.exists()


def test_the_articulated_mesh_decoder_runs_on_a_mano_template(mano_like: dict, tmp_path: Path) -> None:
    """The decoder's skinned start works on a MANO-loaded template, not only on the procedural hand."""
    from tassn.hand.kinematics import HandPose
    from tassn.hand.normalize import normalize_3d
    from tassn.nets.articulated import ArticulatedTemplate

    template = load_template(write_mano(tmp_path / "MANO_RIGHT.pkl", mano_like["data"]))
    head = ArticulatedTemplate(16, template, hidden=8)
    mesh = head(torch.randn(2, 16))
    rest, joints = template.pose(HandPose.zeros(1))
    rest, _, _ = normalize_3d(rest, joints)
    assert mesh.shape == (2, template.num_vertices, 3)
    assert float((mesh - rest).abs().max()) < 0.05  # rest angles, just inside their limits
    with torch.no_grad():
        head.angles.bias.add_(1.0)  # bent fingers move the MANO mesh, and gradients reach the heads
    bent = head(torch.randn(2, 16))
    assert float((bent - rest).abs().max()) > 0.1
    bent.square().sum().backward()
    assert head.angles.bias.grad is not None and float(head.angles.bias.grad.abs().sum()) > 0
