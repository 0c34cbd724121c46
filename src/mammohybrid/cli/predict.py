"""``mammohybrid predict``: a finished run directory on new ROI crops (a thin layer over
:class:`mammohybrid.inference.Predictor`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from mammohybrid.cli.app import (
    Backend,
    BackendOption,
    MaxFileMbOption,
    MaxPixelsOption,
    app,
    default_workers,
    exit_for_items,
    limit_overrides,
)

# How many failed inputs the summary names (all are in the CSV's 'error' column).
SHOWN_FAILURES = 5


@app.command("predict")
def predict(
    run_dir: Annotated[Path, typer.Argument(
        help="A finished run directory (from train); with --backend onnxruntime, or its ONNX "
             "export.")],
    inputs: Annotated[list[Path], typer.Argument(
        help="ROI crops (DICOM, PNG, JPEG, PGM, TIFF; 8 or 16 bit) or folders of them "
             "(searched recursively).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Predictions CSV to write.")],
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", min=1, help="Images per model call (default: the run's "
                                    "train.batch_size).")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", "-j", min=0, help="Processes that decode and pre-process ahead of the "
                                       "model (default: all CPUs; 0: none, in turn with the "
                                       "model).")] = default_workers(),
    gradcam: Annotated[Path | None, typer.Option(
        "--gradcam", metavar="DIR", help="Write Grad-CAM overlays (one per backbone branch "
                                         "and one combined) to DIR.")] = None,
    filters: Annotated[str | None, typer.Option(
        "--filters", metavar="LIST", help="Test-time filter ensemble: comma-separated "
                                          "pre-processing strategies (e.g. median,wiener) whose "
                                          "probabilities are averaged; each is reported "
                                          "too.")] = None,
    pixel_spacing_mm: Annotated[float | None, typer.Option(
        "--pixel-spacing-mm", min=0.001, max=10.0,
        help="Millimetres per pixel of inputs that carry none of their own (PNG, JPEG, PGM; "
             "a DICOM header's spacing wins). Only a run pre-processed at a physical scale "
             "(preprocess.field_of_view_mm) uses it; such a run refuses images of unknown "
             "spacing.")] = None,
    max_pixels: MaxPixelsOption = None,
    max_file_mb: MaxFileMbOption = None,
    backend: BackendOption = Backend.keras,
) -> None:
    """Predict the malignancy of ROI crops with a trained run: the run's own
    pre-processing, model and decision threshold (chosen on validation).

    Writes one CSV row per image: path, probability, label, prediction,
    threshold, kept_fraction, roi_empty, warnings, error. Unreadable or
    invalid files get a row with their error, the others are still
    predicted, and the exit status is then 3 (1 if none could be predicted).

    With --backend onnxruntime, RUN_DIR may also be the ONNX file itself
    (mammohybrid export), which carries the configuration and threshold;
    no TensorFlow is needed.
    """
    from mammohybrid.config import save_config
    from mammohybrid.fileio import atomic_open, refuse_overwriting_inputs, stop_on_full_disk
    from mammohybrid.inference import (
        GRADCAM_NEEDS_KERAS,
        GradCamUnavailableError,
        Predictor,
        inputs_read,
        parse_strategies,
        predictions_csv,
    )
    from mammohybrid.run_dir import RunDir

    if gradcam is not None and backend is not Backend.keras:
        raise GradCamUnavailableError(f"--gradcam with --backend {backend.value}: "
                                      f"{GRADCAM_NEEDS_KERAS}")
    strategies = parse_strategies(filters)
    config_out = out.with_name(out.stem + ".config.yaml")
    run = RunDir.at(run_dir)
    read = ([run.onnx_model] if run_dir.is_dir() else [run_dir]) \
        if backend is Backend.onnxruntime else [run.model]
    refuse_overwriting_inputs([out, config_out, *([gradcam] if gradcam else [])],
                              [run.config, run.threshold, *read, *inputs_read(inputs)])
    started = time.perf_counter()
    with Predictor.from_run(run_dir, strategies, pixel_spacing_mm, backend.value,
                            overrides=limit_overrides(max_pixels, max_file_mb)) as predictor:
        frame = predictor.predict_paths(inputs, batch_size=batch_size, workers=workers,
                                        gradcam_dir=gradcam)
    with stop_on_full_disk(out.parent, f"run predict again ({out} was not written)"):
        with atomic_open(out, "w", newline="", encoding="utf-8") as handle:
            handle.write(predictions_csv(frame))
        save_config(predictor.config, config_out)

    failed = frame[frame["error"] != ""]
    predicted = frame[frame["error"] == ""]
    malignant = int((predicted["label"] == 1).sum())
    threshold = predictor.threshold
    typer.echo(f"predicted {len(predicted)} of {len(frame)} image(s) in "
               f"{time.perf_counter() - started:.1f} s: {malignant} malignant, "
               f"{len(predicted) - malignant} benign at threshold {threshold.value:.4g} "
               f"({threshold.method}); {int(predicted['roi_empty'].sum())} with an empty ROI; "
               + (f"{len(failed)} FAILED (column 'error')" if len(failed) else "none failed"))
    for error in failed["error"].head(SHOWN_FAILURES):
        typer.echo(f"  failed: {error}")
    if len(failed) > SHOWN_FAILURES:
        typer.echo(f"  ... and {len(failed) - SHOWN_FAILURES} more")
    if not predictor.ensemble.is_training_strategy:
        typer.echo(f"note: probabilities averaged over {', '.join(predictor.strategies)}; the "
                   "threshold was chosen on validation for "
                   f"'{predictor.config.preprocess.strategy}' alone")
    typer.echo(f"predictions: {out}")
    if gradcam is not None:
        typer.echo(f"Grad-CAM overlays: {gradcam}")
    exit_for_items(len(predicted), len(failed))
