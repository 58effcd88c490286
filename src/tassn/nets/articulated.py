"""A skinned template as the mesh decoder's starting point: joint angles and a global rotation, posed by LBS.

Ge et al.'s decoder builds every vertex from a feature vector through graph convolutions that share their filters
across vertices; at the CPU schedule it learns the hand's global rotation and mean shape but barely any finger
articulation (docs/results.md, third round). A decoder that is articulated by construction starts from the hand
model's own kinematics: an MLP reads the same feature vector as the GCN and predicts the 15 joints' angles (squashed
into their anatomical limits) and the hand's rotation (6D representation, continuous, Zhou et al. 2019); the
template posed by its skinning weights gives a mesh whose fingers bend as a hand's do, and the GCN adds a
per-vertex residual on top (this project's addition; off by default).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from tassn.hand.kinematics import ANGLE_LIMITS, NUM_ARTICULATED, HandPose, RestSkeleton
from tassn.hand.normalize import normalize_3d
from tassn.hand.template import HandTemplate


def rotation_from_6d(x: torch.Tensor) -> torch.Tensor:
    """``…×6`` (two 3-vectors) → rotation matrices ``…×3×3`` by Gram–Schmidt; columns are the frame's axes."""
    a, b = x[..., :3], x[..., 3:]
    e1 = nn.functional.normalize(a, dim=-1)
    e2 = nn.functional.normalize(b - (e1 * b).sum(-1, keepdim=True) * e1, dim=-1)
    e3 = torch.cross(e1, e2, dim=-1)
    return torch.stack([e1, e2, e3], dim=-1)


class ArticulatedTemplate(nn.Module):
    """Feature vector ``B×D`` → the template posed by predicted angles and rotation, ``B×V×3`` root-relative and
    scale-normalised (template vertex order), like every 3D output of the networks.

    Starts at the rest pose seen from the identity rotation: the angle head's bias puts every degree of freedom
    at 0 inside its limits, the rotation head's bias at the identity, and both heads' last weights at 0.

    The template's rest mesh, skinning weights and rest skeleton are non-persistent buffers: they follow the module
    to its device and dtype once, instead of being copied on every call, and stay out of checkpoints (the
    template is rebuilt from its source).
    """

    def __init__(self, in_features: int, template: HandTemplate, hidden: int = 512):
        super().__init__()
        self.template = template
        limits = ANGLE_LIMITS.clone()
        self.register_buffer("low", limits[..., 0], persistent=False)
        self.register_buffer("span", limits[..., 1] - limits[..., 0], persistent=False)
        self.register_buffer("rest_vertices", template.vertices.detach().clone(), persistent=False)
        self.register_buffer("skin_weights", template.skin_weights.detach().clone(), persistent=False)
        self.register_buffer("rest_joints", template.rest.joints.detach().clone(), persistent=False)
        self.register_buffer("rest_frames", template.rest.frames.detach().clone(), persistent=False)
        self.hidden = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.angles = nn.Linear(hidden, NUM_ARTICULATED * 3)
        self.rotation = nn.Linear(hidden, 6)
        with torch.no_grad():
            rest = torch.where(self.span > 0, (0 - self.low) / self.span.clamp_min(1e-6), torch.full_like(self.low, 0.5))
            self.angles.weight.zero_()
            self.angles.bias.copy_(torch.logit(rest.clamp(0.05, 0.95)).flatten())
            self.rotation.weight.zero_()
            self.rotation.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        h = self.hidden(code)
        fraction = torch.sigmoid(self.angles(h).view(-1, NUM_ARTICULATED, 3))
        angles = self.low + self.span * fraction
        zeros = code.new_zeros(code.shape[0], 3)
        template = dataclasses.replace(self.template, vertices=self.rest_vertices, skin_weights=self.skin_weights,
                                       rest=RestSkeleton(self.rest_joints, self.rest_frames))
        vertices, joints = template.pose(HandPose(angles, zeros, zeros))
        vertices, _, _ = normalize_3d(vertices, joints)
        rotation = rotation_from_6d(self.rotation(h))
        return vertices @ rotation.transpose(-1, -2)
