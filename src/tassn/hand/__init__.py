"""The hand: canonical skeleton, kinematics, template meshes and the mesh graph. Knows nothing of Lightning."""
