"""``perception export --format onnx``: a 3D detector checkpoint -> one self-contained ONNX graph.

Raw points (N x C, any N) -> pillarization (ScatterElements) -> network -> box decoding ->
score thresholds and rotated NMS -> fixed-size boxes, scores, labels and a count, in standard
``ai.onnx`` ops (torch's dynamo exporter; see ``perception.deploy.graph``). The file carries the
classes, input spec and resolved config (``perception.deploy.metadata``) and is written through a
temporary file, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from perception.deploy.graph import OUTPUT_NAMES, DetectorGraph
from perception.deploy.metadata import detector_metadata, to_strings
from perception.errors import CheckpointError, ConfigError, MissingExtraError
from perception.files import atomic_path

# ScatterElements(reduction="max"), the per-pillar max-pool, exists from opset 18 on.
MIN_OPSET = 18
DEFAULT_OPSET = 18


def check_opset(opset: int) -> None:
    """Refuse opsets that cannot express the graph instead of letting the exporter pick another."""
    import onnx

    if opset < MIN_OPSET:
        raise ConfigError(
            f"opset {opset} cannot express the pillar max-pool (ScatterElements with reduction='max' "
            f"needs opset {MIN_OPSET}); use --opset {MIN_OPSET} or later"
        )
    if opset > onnx.defs.onnx_opset_version():
        raise ConfigError(f"opset {opset} is newer than this onnx package knows ({onnx.defs.onnx_opset_version()})")


def example_points(settings: dict[str, Any], n: int = 2000, seed: int = 0) -> torch.Tensor:
    """(n, C) float32 points spread over the model's point range (only used to trace the graph)."""
    x0, y0, z0, x1, y1, z1 = settings["point_range"]
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0.0, 1.0, (n, len(settings["point_channels"]))).astype(np.float32)
    pts[:, :3] = pts[:, :3] * np.float32([x1 - x0, y1 - y0, z1 - z0]) + np.float32([x0, y0, z0])
    return torch.from_numpy(pts)


def export_graph(graph: torch.nn.Module, example: torch.Tensor, opset: int = DEFAULT_OPSET):
    """Trace ``graph`` (points -> detections) into an ``onnx.ModelProto`` with a dynamic point count."""
    from perception.deploy.onnx_ops import translation_table

    check_opset(opset)
    quiet = io.StringIO()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # it warns about every fallback it considers
    with torch.no_grad(), contextlib.redirect_stdout(quiet):
        program = torch.onnx.export(
            graph.eval(),
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=["points"],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes=({0: torch.export.Dim("num_points", min=0)},),
            custom_translation_table=translation_table(),
            verbose=False,
        )
    proto = program.model_proto
    got = {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")}
    if got != {opset}:
        raise ConfigError(f"the graph could not be written at opset {opset} (the exporter produced {sorted(got)})")
    return proto


def check_graph(proto) -> None:
    """Full ``onnx.checker`` pass and no operator outside the standard ``ai.onnx`` domain."""
    import onnx

    onnx.checker.check_model(proto, full_check=True)
    foreign = sorted({n.domain for n in proto.graph.node if n.domain not in ("", "ai.onnx")})
    if foreign or proto.functions:
        raise RuntimeError(f"exported graph uses custom domains {foreign} / {len(proto.functions)} functions")


def simplify(proto):
    """Constant folding and graph clean-up with onnxslim (the ``yolo`` extra installs it)."""
    try:
        import onnxslim
    except ImportError:
        raise MissingExtraError("onnxslim", "yolo") from None
    with contextlib.redirect_stdout(io.StringIO()):
        return onnxslim.slim(proto)


def export_onnx(
    weights: str | Path, out: str | Path | None = None, *, opset: int = DEFAULT_OPSET, simplify_graph: bool = False
) -> Path:
    """Export a 3D detector checkpoint to ``out`` (default: the checkpoint path with ``.onnx``).

    Raises:
        CheckpointError: missing / unreadable checkpoint, or one without its config.
        ConfigError: an opset that cannot express the graph.
    """
    import onnx

    from perception.models import load_model
    from perception.models.detector import model_settings

    weights = Path(weights)
    out = Path(out) if out else weights.with_suffix(".onnx")
    if out.suffix != ".onnx":
        raise ConfigError(f"an ONNX export must end in .onnx, not {out.suffix!r}", path=out)
    check_opset(opset)
    model, config = load_model(weights)
    settings = model_settings(config)
    proto = export_graph(DetectorGraph(model, settings), example_points(settings), opset)
    if simplify_graph:
        proto = simplify(proto)
    meta = detector_metadata(config, settings, opset=opset, source=weights.name, **_versions())
    onnx.helper.set_model_props(proto, to_strings(meta))
    check_graph(proto)
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))
    return out


def _versions() -> dict[str, str]:
    import onnx

    from perception import __version__

    return {"perception_version": __version__, "torch_version": torch.__version__, "onnx_version": onnx.__version__}


def read_onnx(path: str | Path):
    """Load an ``.onnx`` file; a missing or corrupt file is a CheckpointError."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise CheckpointError("ONNX model not found", path=path)
    try:
        return onnx.load(str(path))
    except Exception as e:  # noqa: BLE001 - protobuf raises several types for foreign bytes
        raise CheckpointError(f"not a readable ONNX model ({type(e).__name__}: {e})", path=path) from None
