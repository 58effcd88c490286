"""tassn: Temporal-Aware Self-Supervised Learning for 3D hand pose and mesh estimation in videos."""

__version__ = "0.1.0"
