"""Config files and ``key=value`` overrides: types, one ``base:``, and errors with close matches."""

from __future__ import annotations

from pathlib import Path

import pytest

from perception.config import apply_overrides, load_config, load_yaml, parse_overrides, save_config
from perception.errors import ConfigError

CFG = {"model": {"name": "pillars", "voxel_m": 0.16}, "train": {"lr": 0.001, "epochs": 10, "freeze": []}}


def test_parse_overrides_types() -> None:
    out = parse_overrides(["train.lr=1e-3", "train.epochs=5", "train.freeze=[backbone]", "model.name=second", "x="])
    assert out == {"train": {"lr": 1e-3, "epochs": 5, "freeze": ["backbone"]}, "model": {"name": "second"}, "x": ""}
    assert isinstance(out["train"]["lr"], float)


def test_parse_override_without_equals() -> None:
    with pytest.raises(ConfigError, match="'train.lr' is not key=value"):
        parse_overrides(["train.lr"])


def test_apply_overrides_merges_and_rejects_typos() -> None:
    out = apply_overrides(CFG, parse_overrides(["train.lr=0.01"]))
    assert out["train"] == {"lr": 0.01, "epochs": 10, "freeze": []} and out["model"] == CFG["model"]
    assert CFG["train"]["lr"] == 0.001  # input untouched
    with pytest.raises(ConfigError, match=r"unknown key config.train.epoch \(did you mean 'epochs'\?\)"):
        apply_overrides(CFG, parse_overrides(["train.epoch=3"]))
    with pytest.raises(ConfigError, match=r"unknown key config.modle \(did you mean 'model'\?\)"):
        apply_overrides(CFG, {"modle": {"name": "x"}})


def test_base_config_and_no_base_chain(tmp_path: Path) -> None:
    save_config(CFG, tmp_path / "base.yaml")
    (tmp_path / "child.yaml").write_text("base: base.yaml\ntrain:\n  lr: 0.1\n")
    assert load_config(tmp_path / "child.yaml")["train"] == {"lr": 0.1, "epochs": 10, "freeze": []}
    (tmp_path / "grandchild.yaml").write_text("base: child.yaml\n")
    with pytest.raises(ConfigError, match="child.yaml: a base config may not have a base"):
        load_config(tmp_path / "grandchild.yaml")


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: invalid YAML"):
        load_yaml(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="missing.yaml: file not found"):
        load_yaml(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_yaml(tmp_path / "list.yaml")


def test_exponent_without_dot_is_a_float(tmp_path: Path) -> None:
    """Regression: PyYAML's YAML 1.1 rules read ``1e-3`` as the string '1e-3' (lr then fails deep in torch)."""
    (tmp_path / "c.yaml").write_text("lr: 1e-3\nwd: 5E+2\nname: 1e\n")
    assert load_yaml(tmp_path / "c.yaml") == {"lr": 0.001, "wd": 500.0, "name": "1e"}
