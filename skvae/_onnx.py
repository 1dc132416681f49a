"""ONNX export of a fitted network's encoder (x -> code) or decoder (z -> mean)."""

import copy
import importlib.util
import inspect

import torch
from torch import nn

#: The parts that can be exported: (input name, output name) of each graph.
PARTS = {"encoder": ("X", "Z"), "decoder": ("Z", "X")}


class _Part(nn.Module):
    """One direction of a model as a ``forward``: ``encode`` or ``decode``."""

    def __init__(self, module, part):
        super().__init__()
        self.module = module
        self.part = part

    def forward(self, x):
        if self.part == "encoder":
            return self.module.encode(x)
        return self.module.decode(x)


def export_module(module, path, part, n_inputs):
    """Write ``module.encode`` or ``module.decode`` to ``path`` as a float32 ONNX graph.

    Parameters
    ----------
    module : nn.Module
        A model with ``encode`` and ``decode``; it is copied, not modified.
    path : str or path-like
        The ``.onnx`` file to write (weights included, no external data).
    part : {"encoder", "decoder"}
    n_inputs : int
        Width of the graph's input: n_features for the encoder, n_components
        for the decoder.

    The graph's input is named ``"X"`` (encoder) or ``"Z"`` (decoder), has shape
    (batch, n_inputs) with a dynamic batch dimension, and is float32.
    """
    missing = [m for m in ("onnx", "onnxscript") if not importlib.util.find_spec(m)]
    if missing:
        raise ImportError(
            f"ONNX export needs the {' and '.join(missing)} package(s); install them "
            "with `pip install onnx onnxscript`."
        )
    if "dynamo" not in inspect.signature(torch.onnx.export).parameters:
        raise ImportError(
            f"ONNX export needs torch>=2.5 (its torch.export-based exporter); this is "
            f"torch {torch.__version__}."
        )
    input_name, output_name = PARTS[part]
    graph = _Part(copy.deepcopy(module).to("cpu", torch.float32), part).eval()
    example = torch.zeros(2, n_inputs, dtype=torch.float32)
    batch = torch.export.Dim("batch")
    torch.onnx.export(
        graph,
        (example,),
        path,
        input_names=[input_name],
        output_names=[output_name],
        dynamic_shapes={"x": {0: batch}},
        dynamo=True,
        external_data=False,
        verbose=False,
    )
