"""ONNX translations, in standard ``ai.onnx`` ops, for the torch ops the exporter has none for.

``aten.sort.stable`` (in a traced graph the pillar encoder ranks points within their pillar with a
stable sort of integer keys, the compact ids of the overfull pillars) has no translation in torch's
exporter. A stable sort of integers equals a plain sort of unique keys ``value * n + position``,
which ``TopK`` computes whatever its tie rule, so the translation does not depend on how a runtime
breaks ties. Used by ``perception.deploy.export_onnx``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from onnxscript import INT64
from onnxscript import opset18 as op


def aten_sort_stable_int(self: INT64, stable: bool | None = None, dim: int = -1, descending: bool = False):
    """``sort.stable(Tensor self, *, bool? stable, int dim=-1, bool descending=False)`` of a 1-D
    int64 tensor whose values times its length fit in int64 (pillar keys do: < 2^31 * 2^31)."""
    n = op.Shape(self)  # (1,)
    position = op.Range(op.Constant(value_int=0), op.Squeeze(n), op.Constant(value_int=1))
    if descending:  # equal values: the earlier one must still come first, so it gets the larger key
        position = op.Sub(op.Sub(op.Squeeze(n), op.Constant(value_int=1)), position)
    key = op.Add(op.Mul(op.Cast(self, to=7), op.Squeeze(n)), position)
    _, indices = op.TopK(key, n, axis=0, largest=descending, sorted=True)
    return op.Gather(self, indices, axis=0), indices


def translation_table() -> dict[Callable, Callable]:
    """The ``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)``."""
    return {torch.ops.aten.sort.stable: aten_sort_stable_int}
