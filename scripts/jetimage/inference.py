"""Inference shared by the evaluate and predict stages: a trained model rebuilt from ``model.pt``,
its ONNX export, and class probabilities (softmax) of images, of a dataset split streamed from
Zarr, or of a saved model of any kind (image model or baseline on the jets' table); per-jet
scores as a table keyed to the input (:func:`scores_frame`).

The evaluate stage scores the test split with the torch model (on a GPU when there is one); the
predict stage scores any input file with the exported ONNX model (onnxruntime, no torch model
needed), and both write their scores with :func:`scores_frame`.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch
from torch import nn

from jetimage import loader, zarr_store
from jetimage.files import atomic_path
from jetimage.loader import normalize
from jetimage.models import TENSORS, build_model

EXPORT_TOLERANCE = 1e-5

#: ONNX opset of the exported models (onnxruntime ≥ 1.14 and CMSSW's ONNX runtime read it).
ONNX_OPSET = 18


def export_model(
    model: nn.Module,
    path: str | os.PathLike,
    example: torch.Tensor | tuple[torch.Tensor, ...],
    names: tuple[str, ...] = ("images",),
) -> float:
    """Export ``model`` to ONNX (opset :data:`ONNX_OPSET`, dynamic batch size) and check with
    onnxruntime that it reproduces the torch outputs.

    The file needs neither torch nor jetimage: ``onnxruntime.InferenceSession(path)``; its
    inputs are named ``names`` (:data:`jetimage.models.TENSORS`: ``images`` (batch, channels,
    η, φ), or ``particles`` (batch, particles, features) and ``mask`` (batch, particles)),
    normalised as recorded in ``model.pt``, its output ``logits``.

    Returns:
        The largest absolute difference on ``example``.

    Raises:
        RuntimeError: the exported model differs by more than :data:`EXPORT_TOLERANCE` times
            the largest logit (at least 1).
    """
    import warnings

    model = model.to("cpu").eval()
    example = example if isinstance(example, tuple) else (example,)
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        expected = model(*example).numpy()
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own deprecation chatter
        program = torch.onnx.export(
            model,
            example,
            dynamo=True,
            opset_version=ONNX_OPSET,
            input_names=list(names),
            output_names=["logits"],
            dynamic_shapes=tuple({0: batch} for _ in example),
            verbose=False,
        )
        if program is None:
            msg = "torch.onnx.export returned no program"
            raise RuntimeError(msg)
        program.save(str(tmp))
        feed = {name: x.numpy() for name, x in zip(names, example)}
        diff = float(np.abs(onnx_session(tmp).run(None, feed)[0] - expected).max())
        scale = max(1.0, float(np.abs(expected).max()))
        if diff > EXPORT_TOLERANCE * scale:
            msg = (
                f"exported model differs from torch by {diff:.2e} "
                f"(> {EXPORT_TOLERANCE} × the largest logit, {scale:.3g})"
            )
            raise RuntimeError(msg)
    return diff


def onnx_session(path: str | os.PathLike, *, threads: int | None = None):
    """An onnxruntime session on the CPU for an exported model (on ``threads`` threads if
    given, else onnxruntime's default)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = options.inter_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_latency(
    path: str | os.PathLike,
    arrays: tuple[np.ndarray, ...],
    normalization: dict,
    *,
    inputs: str,
    runs: int = 200,
) -> float:
    """Median seconds an exported model takes to score one jet on one CPU core (onnxruntime,
    one thread, batches of one, after warm-up), over ``runs`` scorings of the first jets of
    ``arrays`` (the raw arrays of its ``inputs``): what a trigger or an FPGA study asks first."""
    import time

    session = onnx_session(path, threads=1)
    names = TENSORS[inputs]
    jets = [
        {
            n: t.numpy()
            for n, t in zip(
                names, loader.prepare(inputs, tuple(a[i : i + 1] for a in arrays), normalization)
            )
        }
        for i in range(len(arrays[0]))
    ]
    times = []
    for run in range(runs + 20):
        feed = jets[run % len(jets)]
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return float(np.median(times[20:]))


def load_model(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Rebuild a trained model from ``model.pt`` alone (no config needed)."""
    saved = torch.load(path, map_location="cpu", weights_only=False)
    info = saved["info"]
    model = build_model(
        info["architecture"],
        in_shape=tuple(info["in_shape"]),
        n_classes=len(info["classes"]),
        **info["options"],
    )
    model.load_state_dict(saved["state_dict"])
    return model.eval(), info


def predict_scores(
    model: nn.Module,
    images: np.ndarray,
    normalization: dict,
    *,
    batch_size: int = 1024,
    device: str = "cpu",
) -> np.ndarray:
    """Class probabilities (softmax) for raw images."""
    model = model.to(device).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = normalize(images[start : start + batch_size], normalization).to(device)
            out.append(torch.softmax(model(x), dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def onnx_scores(
    session,
    arrays: np.ndarray | tuple[np.ndarray, ...],
    normalization: dict,
    *,
    inputs: str = "images",
    batch_size: int = 1024,
) -> np.ndarray:
    """Class probabilities (softmax) from an exported model's onnxruntime session of the raw
    arrays of its ``inputs`` (images, or the particles' features and mask), normalised as in
    training."""
    arrays = arrays if isinstance(arrays, tuple) else (arrays,)
    n = len(arrays[0])
    if n == 0:
        return np.zeros((0, session.get_outputs()[0].shape[1]), np.float32)
    names = TENSORS[inputs]
    scores = []
    for start in range(0, n, batch_size):
        x = loader.prepare(
            inputs, tuple(a[start : start + batch_size] for a in arrays), normalization
        )
        logits = session.run(None, {name: t.numpy() for name, t in zip(names, x)})[0]
        scores.append(torch.softmax(torch.from_numpy(logits), dim=1).numpy())
    return np.concatenate(scores)


def load_exported(model_pt: str | os.PathLike, exported: str | os.PathLike):
    """(onnxruntime session, model info) of a trained model."""
    info = torch.load(model_pt, map_location="cpu", weights_only=False)["info"]
    return onnx_session(exported), info


def score_split(
    model: nn.Module,
    path: str | os.PathLike,
    split: str,
    normalization: dict,
    *,
    inputs: str = "images",
    batch_size: int = 1024,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Class probabilities (softmax), labels and jet table of one split, in the store's order;
    the model's ``inputs`` (images or particles) are streamed (decoded on every core while the
    model runs)."""
    group = zarr_store.open_store(path)[split]
    stream = loader.ZarrStream(group, normalization, inputs=inputs)
    model = model.to(device).eval()
    scores = []
    with torch.no_grad():
        for x, _ in stream.batches(batch_size):
            logits = model(*(t.to(device) for t in loader.cut_padding(x)))
            scores.append(torch.softmax(logits, dim=1).cpu().numpy())
    probabilities = np.concatenate(scores) if scores else np.zeros((0, 0), np.float32)
    return probabilities, stream.labels, zarr_store.read_table(group)


def score_saved_model(
    model_path: str | os.PathLike, path: str | os.PathLike, split: str
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict]:
    """(probabilities, labels, jet table, model info) of a saved model on one split: a model of
    images or particles (:func:`score_split`, streamed) or a baseline on the jets' table
    (:mod:`jetimage.baselines`, no image read)."""
    saved = torch.load(model_path, map_location="cpu", weights_only=False)
    info = saved["info"]
    if info.get("inputs") == "features":
        group = zarr_store.open_store(path)[split]
        table = zarr_store.read_table(group)
        return saved["tagger"].probabilities(table), group["labels"][...], table, info
    model, info = load_model(model_path)
    inputs = info.get("inputs", "images")
    return (*score_split(model, path, split, info["normalization"], inputs=inputs), info)


def scores_frame(
    source_file: np.ndarray,
    table: dict[str, np.ndarray],
    probabilities: np.ndarray,
    classes: list[str],
) -> pd.DataFrame:
    """Per-jet scores keyed by (``source_file``, ``entry``) so they join back to the input:
    those keys, a ``score_<class>`` column per class, then the jet features as ``jet_*``."""
    frame = pd.DataFrame({"source_file": source_file, "entry": table["entry"]})
    for i, name in enumerate(classes):
        frame[f"score_{name}"] = probabilities[:, i]
    for column, values in table.items():
        if column != "entry":
            frame[f"jet_{column}"] = values
    return frame
