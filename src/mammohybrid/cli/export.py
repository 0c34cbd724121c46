"""``mammohybrid export``: a finished run's inference graph as ONNX or a SavedModel (a thin layer
over :func:`mammohybrid.inference.export.export_run`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from mammohybrid.cli.app import app, is_debug


class ExportFormat(StrEnum):
    """``mammohybrid.inference.export.FORMATS`` (listed here: the CLI starts without importing
    inference)."""

    onnx = "onnx"
    savedmodel = "savedmodel"


@app.command("export")
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory (from train).")],
    fmt: Annotated[ExportFormat, typer.Option(
        "--format", "-f", help="onnx (for ONNX Runtime: `predict --backend onnxruntime`) or "
                               "savedmodel (TensorFlow Serving, TFLite converters).")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Where to write (default: RUN_DIR/model.onnx, where predict "
                            "--backend onnxruntime RUN_DIR finds it, or "
                            "RUN_DIR/saved_model/).")] = None,
    tta: Annotated[bool | None, typer.Option(
        "--tta/--no-tta", help="Average over the eight dihedral views inside the graph (8x the "
                               "work), or not (default: as the run predicts, its model.tta; "
                               "the stored configuration says which).")] = None,
) -> None:
    """Export a trained run for deployment without the training stack: the
    inference graph only (no augmentation; each backbone's input scaling
    inside), with the run's configuration (pre-processing), threshold, input
    size and model card stored beside it (ONNX: in the model's metadata;
    SavedModel: in assets.extra/).

    The export is loaded back and must give the Keras model's probabilities to
    1e-5 on probe images, else nothing is written. ONNX needs the optional
    extra: pip install 'mammohybrid[onnx]'; predicting with it needs only
    onnxruntime.
    """
    from mammohybrid.inference import export_run
    from mammohybrid.run_dir import RunDir

    mode = None if tta is None else ("dihedral" if tta else "none")
    result = export_run(run_dir, fmt.value, out, mode, quiet=not is_debug())
    run_tta = RunDir.at(run_dir).load_config().model.tta
    exported = result.exported
    typer.echo(f"exported {run_dir} ({' + '.join(exported.config.model.backbones)}, "
               f"{exported.input_size} px, test-time augmentation {exported.tta}, threshold "
               f"{exported.threshold.value:.4g}) as {fmt.value} in {result.seconds:.1f} s: "
               f"{result.path} ({result.bytes / 1e6:.1f} MB)")
    typer.echo(f"checked: max |probability difference| to the Keras model "
               f"{exported.parity_max_abs_diff:.2g} on probe images")
    if exported.tta != run_tta:
        typer.echo(f"note: the run predicts with model.tta {run_tta}; this export with "
                   f"{exported.tta}, and the threshold was chosen for the run's setting")
    if fmt is ExportFormat.onnx:
        typer.echo(f"predict with: mammohybrid predict --backend onnxruntime {result.path} "
                   "CROPS... --out predictions.csv")

