"""perception: driving datasets to trained, exported, real-time 2D/3D detectors and trackers."""

__version__ = "0.1.0"
