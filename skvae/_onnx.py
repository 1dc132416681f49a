"""ONNX export of a fitted network's encoder (x -> code) or decoder (z -> mean)."""

import contextlib
import copy
import importlib.util
import inspect
import logging
import os
import tempfile
import threading
import warnings

import torch
from torch import nn

from ._likelihoods import Blocks
from ._persistence import check_target, write_to

#: The parts that can be exported: (input name, output name) of each graph.
PARTS = {"encoder": ("X", "Z"), "decoder": ("Z", "X")}

#: Why a model of a table (a DataFrame, or an array with missing values) is not
#: exported, and what to do instead.
TABLE_MESSAGE = (
    "export_onnx cannot export a model of a table (fitted on a DataFrame, or on "
    "an array with missing values): its network reads and writes an internal "
    "encoding of the table (normal scores of the numeric columns, missing-value "
    "indicators, one-hot categories) that no public method produces or decodes, "
    "so neither the encoder nor the decoder would take or give the table's "
    "columns. To serve the model with ONNX, encode the table yourself (e.g. a "
    "ColumnTransformer with SimpleImputer, StandardScaler and OneHotEncoder), fit "
    "the estimator on that numeric array (X.to_numpy() for an all-numeric "
    "DataFrame) and export it; otherwise use transform and inverse_transform."
)

# One export at a time: the exporter's loggers and the warning filters are
# process-wide, and quieting them must be undone in the order it was done.
_EXPORT_LOCK = threading.Lock()


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


@contextlib.contextmanager
def _quiet_exporter():
    """Silence torch's exporter: its log records and its warnings about itself.

    The exporter logs through torch's own loggers (notes such as "torchvision is
    not installed", tracebacks of attempts it recovers from) and warns about
    torch's internal deprecations; none of it is about the user's model, and an
    export that fails still raises. Only the ``torch`` logger's level is raised
    (its children without a level of their own follow it), so loggers the user
    set up through ``TORCH_LOGS`` keep theirs.
    """
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_module(module, path, part, n_inputs):
    """Write ``module.encode`` or ``module.decode`` to ``path`` as a float32 ONNX graph.

    The graph's input is named ``"X"`` (encoder) or ``"Z"`` (decoder), has shape
    (batch, n_inputs) with a dynamic batch dimension, and is float32. Nothing is
    printed or logged, and no file is written when the export is refused.

    Parameters
    ----------
    module : nn.Module
        A model with ``encode`` and ``decode``; it is copied, not modified.
    path : str, path-like or binary file object
        The ``.onnx`` file to write (weights included, no external data).
    part : {"encoder", "decoder"}
    n_inputs : int
        Width of the graph's input: n_features for the encoder, n_components
        for the decoder.

    Raises
    ------
    ValueError
        If the model is of a table (a DataFrame, or an array with missing values:
        its likelihood is a :class:`~._likelihoods.Blocks`), whose encoding no
        public method exposes.
    ImportError
        If ``onnx`` or ``onnxscript`` is missing, or torch is older than 2.5.
    """
    if isinstance(module.likelihood, Blocks):
        raise ValueError(TABLE_MESSAGE)
    check_target(path)  # before the export's seconds of work
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
    with _EXPORT_LOCK, _quiet_exporter():
        graph = _Part(copy.deepcopy(module).to("cpu", torch.float32), part).eval()
        example = torch.zeros(2, n_inputs, dtype=torch.float32)
        batch = torch.export.Dim("batch")
        # Exported into a scratch folder, then written to ``path`` as ``save``
        # writes (a new file beside it, moved into place): a failed export (a
        # full disk) leaves a file already at ``path`` as it was.
        with tempfile.TemporaryDirectory() as folder:
            draft = os.path.join(folder, "part.onnx")
            torch.onnx.export(
                graph,
                (example,),
                draft,
                input_names=[input_name],
                output_names=[output_name],
                dynamic_shapes={"x": {0: batch}},
                dynamo=True,
                external_data=False,
                verbose=False,
            )
            with open(draft, "rb") as file:
                data = file.read()
    write_to(path, lambda file: file.write(data))
