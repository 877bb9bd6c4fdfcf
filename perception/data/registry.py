"""Dataset loaders by name: the ``format:`` key of a dataset YAML picks one.

A literal dict with explicit imports, so every loader is greppable and none vanishes because an
import was forgotten. Add a dataset: one module, one line here, one YAML in ``datasets/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perception.config import close_match_hint
from perception.data.argoverse2 import Argoverse2Dataset
from perception.data.base import DatasetSpec, DriveDataset
from perception.data.kitti import KittiDataset
from perception.data.kitti_tracking import KittiTrackingDataset
from perception.data.nuscenes import NuScenesDataset
from perception.data.synthetic import SyntheticDataset
from perception.data.waymo import WaymoDataset, WaymoV2Dataset
from perception.errors import ConfigError

LOADERS: dict[str, type[DriveDataset]] = {
    "kitti": KittiDataset,
    "kitti_tracking": KittiTrackingDataset,
    "argoverse2": Argoverse2Dataset,
    "nuscenes": NuScenesDataset,
    "synthetic": SyntheticDataset,
    "waymo": WaymoDataset,
    "waymo_v2": WaymoV2Dataset,
}


def load_dataset(yaml_path: str | Path, split: str | None = None, **overrides: Any) -> DriveDataset:
    """Open the dataset a YAML describes; ``overrides`` replace top-level YAML keys (root, classes...).

    Raises:
        ConfigError: bad YAML, unknown ``format`` or unknown split.
        DataError: the dataset's folders or files are missing or unreadable.
    """
    spec = DatasetSpec.from_yaml(yaml_path, **overrides)
    if spec.format not in LOADERS:
        raise ConfigError(
            f"unknown dataset format {spec.format!r}{close_match_hint(spec.format, LOADERS)}", path=spec.source
        )
    return LOADERS[spec.format](spec, split)
