"""Import ultralytics offline: private settings, local font, no network, ever.

ultralytics reads ``YOLO_CONFIG_DIR`` and ``YOLO_OFFLINE`` once, at import, and downloads the
Arial font during its dataset check unless a copy sits in its config dir. So everything here
must happen before the first ``import ultralytics``; every module of ``perception.models.yolo``
gets ultralytics through :func:`import_ultralytics` for that reason.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from types import ModuleType

from perception.errors import MissingExtraError

# Integrations that would phone home or write outside the run dir.
_SETTINGS_OFF = ("sync", "clearml", "comet", "dvc", "mlflow", "raytune", "wandb", "vscode_msg", "openvino_msg")
_FONTS = ("Arial.ttf", "Arial.Unicode.ttf")


def config_dir() -> Path:
    """Our private ultralytics config dir: ``$PERCEPTION_CACHE/ultralytics`` (default ``~/.cache/perception``)."""
    cache = (
        os.environ.get("PERCEPTION_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "perception"
    )
    return Path(cache) / "ultralytics"


def _install_fonts(folder: Path) -> None:
    """Copy matplotlib's DejaVuSans under the names ultralytics asks for, so it never downloads them."""
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    folder.mkdir(parents=True, exist_ok=True)
    for name in _FONTS:
        if not (folder / name).exists():
            tmp = folder / f".{name}.tmp"
            shutil.copyfile(source, tmp)
            os.replace(tmp, folder / name)


def import_ultralytics() -> ModuleType:
    """Return the ``ultralytics`` module, configured to never touch the network.

    Raises:
        MissingExtraError: ultralytics is not installed (``pip install 'perception[yolo]'``).
    """
    if importlib.util.find_spec("ultralytics") is None:
        raise MissingExtraError("ultralytics", "yolo")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir()))
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"  # it would pip-install packages a checkpoint's pickle names
    _install_fonts(Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics")
    import torch
    import ultralytics
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR, torch_utils

    # select_device() sets torch to (cores - 1) threads on every CPU call; keep the caller's choice
    torch_utils.NUM_THREADS = torch.get_num_threads()

    # Someone may have imported ultralytics before us with another config dir: cover it too.
    _install_fonts(Path(USER_CONFIG_DIR))
    if any(SETTINGS.get(k) for k in _SETTINGS_OFF):
        SETTINGS.update({k: False for k in _SETTINGS_OFF})
    return ultralytics
