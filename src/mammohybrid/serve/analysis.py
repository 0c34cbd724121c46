"""What the web page shows for a batch of uploaded crops: the probability row of each (from
:meth:`Predictor.predict_paths`, the call ``mammohybrid predict`` makes, so the numbers and the
CSV are the command's), the image after every pre-processing step, and Grad-CAM overlays.

No second prediction path: the probabilities, labels, warnings and error rows are the
Predictor's. The strip of intermediate images comes from the Predictor's own chain
(:meth:`~mammohybrid.preprocess.Chain.intermediates`), and Grad-CAM explains the model input
that chain ends in (the same uint8 image the Predictor feeds the model; a test checks that
Grad-CAM's probability equals the row's).

Every file is isolated: anything a decoder throws (even a :class:`BaseException` subclass from
native code), an image over the pixel limit or a failing step becomes that file's error and the
others are still predicted. Nothing is written outside the caller's temporary folder.
"""

from __future__ import annotations

import base64
import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import pandas as pd

from mammohybrid.imaging import read_image
from mammohybrid.inference import Predictor, predictions_csv
from mammohybrid.preprocess import DISPLAY_MAX_SIDE, LimitSize, Record

# An input whose shorter side, enlarged this many times, is still below the model's input side
# carries little detail for the model: the page warns about it (the CSV, which is
# ``predict``'s, does not).
TINY_IMAGE_ENLARGEMENT = 4

# Titles of the chain's steps on the page (steps not listed keep their own name).
STEP_TITLES = {"8-bit": "input (8-bit)", "working size": "working size", "nlm": "NLM",
               "roi": "ROI", "median": "median filter", "gaussian": "Gaussian filter",
               "wiener": "Wiener filter", "clahe": "CLAHE"}

# The longest file name (in bytes) most file systems take, and the longest suffix kept when an
# uploaded name is shortened to it.
MAX_NAME_BYTES = 255
MAX_SUFFIX_BYTES = 16
ELLIPSIS = "\u2026"

T = TypeVar("T")


@dataclass(frozen=True)
class UploadLimits:
    """Bounds on what one request may bring (bytes per file, files per request, decoded pixels
    per image) and on how many uploads the server takes at once."""

    max_file_bytes: int = 50 * 2**20
    max_files: int = 32
    max_pixels: int = 25_000_000
    max_uploads_at_once: int = 4

    @property
    def max_request_bytes(self) -> int:
        """The largest request body: every file at its limit, plus room for the form's
        headers."""
        return self.max_files * (self.max_file_bytes + 4096) + 65536

    @property
    def max_bytes_in_flight(self) -> int:
        """What all uploads being received or predicted together may bring: one upload at
        its limits. The model takes one upload at a time, so more would only wait, spooled
        in the temporary folder."""
        return self.max_request_bytes


@dataclass
class Upload:
    """One uploaded file: its name as the user's machine called it, where it was saved (inside
    the request's temporary folder), or why it was refused before decoding."""

    name: str
    path: Path | None = None
    error: str = ""


@dataclass
class _Inspection:
    """One readable upload after the Predictor's chain: every step's image and its record."""

    steps: list[tuple[str, np.ndarray]] = field(default_factory=list)
    record: Record = field(default_factory=Record)
    input_shape: tuple[int, int] = (0, 0)


def guarded(call: Callable[[], T]) -> tuple[T | None, BaseException | None]:
    """``call()``, or the exception it raised: whatever a native decoder throws stays with its
    file. Only an interrupt or an exit request goes on."""
    try:
        return call(), None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # one bad file must not end the request
        return None, error


def describe(name: str, error: BaseException) -> str:
    """One line for an error that is no :class:`MammohybridError` (which names its file)."""
    return f"{name}: {type(error).__name__}: {error}"


def safe_file_name(name: str) -> str:
    """The last component of an uploaded file's name, with characters a file system may
    refuse replaced (those UTF-8 cannot encode too), and shortened to the
    :data:`MAX_NAME_BYTES` of UTF-8 a file name may have (its end cut, an ellipsis before its
    suffix): the name the CSV's ``path`` column shows."""
    name = (name or "").encode("utf-8", "replace").decode("utf-8")
    base = re.split(r"[\\/]", name)[-1]
    base = re.sub(r"[\x00-\x1f<>:\"|?*]", "_", base).strip(" .") or "upload"
    if len(base.encode("utf-8")) <= MAX_NAME_BYTES:
        return base
    suffix = Path(base).suffix
    if len(suffix.encode("utf-8")) > MAX_SUFFIX_BYTES:
        suffix = ""
    room = MAX_NAME_BYTES - len((ELLIPSIS + suffix).encode("utf-8"))
    stem = base[:len(base) - len(suffix)].encode("utf-8")[:room].decode("utf-8", "ignore")
    return stem + ELLIPSIS + suffix


def png_data_uri(image: np.ndarray) -> str:
    """An 8-bit image (grey or BGR) as a ``data:image/png`` URI, for the page to show inline."""
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"cannot encode a {image.dtype} {image.shape} image as PNG")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


class UploadAnalyser:
    """Turns a batch of uploads into the page's results, with one :class:`Predictor`.

    Not thread-safe (neither is the Keras model): the server calls it under a lock.
    """

    def __init__(self, predictor: Predictor, limits: UploadLimits) -> None:
        self.predictor = predictor
        self.limits = limits
        self.chain = predictor.ensemble.chains[predictor.ensemble.primary]
        self.display_size = LimitSize(DISPLAY_MAX_SIDE)

    def analyse(self, uploads: Sequence[Upload], folder: Path) -> dict[str, Any]:
        """Results for ``uploads``, all saved below ``folder`` (the request's temporary
        folder, taken out of every path and message): one entry per upload, in order, and the
        CSV ``mammohybrid predict`` writes for the same files."""
        inspections: dict[int, _Inspection] = {}
        refused: dict[int, str] = {}
        for index, upload in enumerate(uploads):
            if upload.error or upload.path is None:
                refused[index] = upload.error or f"{upload.name}: not saved"
                continue
            inspection, error = guarded(functools.partial(self._inspect, upload.path))
            if isinstance(error, _OverPixelLimit):
                refused[index] = f"{upload.name}: {error}"
            elif error is not None and not isinstance(error, Exception):
                refused[index] = describe(upload.name, error)
            elif inspection is not None:
                inspections[index] = inspection
            # A file that failed with an ordinary exception goes to the Predictor too, which
            # gives it the error row the command would.

        predicted = [i for i in range(len(uploads)) if i not in refused]
        paths = [path for i in predicted if (path := uploads[i].path) is not None]  # all saved
        frame, error = guarded(lambda: self.predictor.predict_paths(paths, workers=0))
        if error is not None:  # the Predictor isolates files: this failed the whole batch
            refused.update({i: describe(uploads[i].name, error) for i in predicted})
            predicted, frame = [], self.predictor.predict_paths([], workers=0)
        frame = self._with_refused(_without_folder(frame, folder), predicted, refused, uploads)

        results = []
        for index, row in enumerate(frame.to_dict("records")):
            result = {"name": uploads[index].name, **_json_row(row, self.predictor.strategies)}
            inspection = inspections.get(index)
            if inspection is not None and not result["error"]:
                result["steps"] = self._strip(inspection)
                result["warnings"] = [*result["warnings"], *self._page_warnings(inspection)]
            results.append(result)
        self._add_gradcam(results, inspections)
        return {"results": results, "csv": predictions_csv(frame),
                "columns": list(frame.columns)}

    # ------------------------------------------------------------------ steps
    def _inspect(self, path: Path) -> _Inspection:
        image = read_image(path, self.predictor.config.limits)
        if image.size > self.limits.max_pixels:
            raise _OverPixelLimit(f"{image.shape[1]}x{image.shape[0]} = {image.size:,} pixels, "
                                  f"over the server's limit of {self.limits.max_pixels:,}")
        steps, record = self.chain.intermediates(image)
        return _Inspection(steps, record, (int(image.shape[0]), int(image.shape[1])))

    def _with_refused(self, frame: pd.DataFrame, predicted: list[int], refused: dict[int, str],
                      uploads: Sequence[Upload]) -> pd.DataFrame:
        """The Predictor's rows and the refused uploads' error rows, in upload order."""
        if not refused:
            return frame
        rows = pd.DataFrame({"path": [uploads[i].name for i in refused],
                             "threshold": self.predictor.threshold.value,
                             "prediction": "", "warnings": "", "error": list(refused.values())},
                            columns=frame.columns)
        combined = pd.concat([frame.set_axis(predicted), rows.set_axis(list(refused))])
        return combined.sort_index().reset_index(drop=True).astype(frame.dtypes.to_dict())

    def _strip(self, inspection: _Inspection) -> list[dict[str, str]]:
        """The image after every step of the chain, for the page: a step that changed nothing
        (the working size of a crop already small enough) is left out, and the chain's final
        resize is shown as the model input it becomes."""
        record = inspection.record
        strip = []
        previous: tuple[int, ...] = ()
        for name, image in inspection.steps[:-1]:
            if name == "working size" and image.shape == previous:
                continue
            previous = image.shape
            detail = f"{image.shape[1]}x{image.shape[0]}"
            if name == "roi" and record.roi_threshold is not None:
                detail += (f", pixels > {record.roi_threshold:g} kept: "
                           f"{record.kept_fraction:.1%}")
            if name == "nlm" and record.nlm_h is not None:
                detail += f", h = {record.nlm_h:.2f}"
            strip.append({"step": name, "title": STEP_TITLES.get(name, name), "detail": detail,
                          "image": png_data_uri(self.display_size(image))})
        side = self.predictor.input_size
        strip.append({"step": "model input", "title": "model input",
                      "detail": f"{side}x{side}, stretched to a square",
                      "image": png_data_uri(self._model_input(inspection)[..., 0]
                                            .astype(np.uint8))})
        return strip

    def _model_input(self, inspection: _Inspection) -> np.ndarray:
        return self.predictor.model_inputs([inspection.steps[-1][1]])[0]

    def _page_warnings(self, inspection: _Inspection) -> list[str]:
        height, width = inspection.input_shape
        side = self.predictor.config.preprocess.output_size
        if min(height, width) * TINY_IMAGE_ENLARGEMENT < side:
            return [(f"tiny image: {width}x{height} px is enlarged more than "
                     f"{TINY_IMAGE_ENLARGEMENT}x to the {side}x{side} model input")]
        return []

    # ------------------------------------------------------------------ Grad-CAM
    def _add_gradcam(self, results: list[dict[str, Any]],
                     inspections: dict[int, _Inspection]) -> None:
        """Grad-CAM overlays (each branch and combined) for every predicted upload, in one
        batch; a model Grad-CAM cannot explain, or a backend without Grad-CAM (ONNX Runtime),
        gets a note instead of maps."""
        explained = [i for i, result in enumerate(results) if "steps" in result]
        if not explained:
            return
        inputs = np.stack([self._model_input(inspections[i]) for i in explained])
        labels = np.array([results[i]["label"] for i in explained])
        explanation, error = guarded(lambda: self.predictor.gradcam(inputs))
        if error is not None:
            for i in explained:
                results[i]["gradcam_error"] = f"Grad-CAM unavailable: {error}"
            return
        assert explanation is not None  # guarded gives a result or an error
        # Only now: the Grad-CAM module imports Keras, which the ONNX backend does without.
        from mammohybrid.inference import overlay

        heatmaps = explanation.heatmaps(labels)
        for k, i in enumerate(explained):
            base = self.display_size(inspections[i].steps[0][1])
            # Full-strength overlays: the page's opacity control blends each over the plain
            # input, which at 0.6 gives exactly `predict --gradcam`'s overlay.
            results[i]["gradcam"] = {
                "base": png_data_uri(base),
                "maps": [{"name": name, "image": png_data_uri(overlay(base, maps[k], 1.0))}
                         for name, maps in heatmaps.items()],
                "probability": float(explanation.probabilities[k]),
            }


def _without_folder(frame: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """``frame`` with the request's temporary folder (and the file's numbered sub-folder) taken
    out of every path and message: the text ``predict`` gives when run where the files are."""
    prefix = re.compile(re.escape(str(folder)) + r"/\d+/")
    for column in ("path", "warnings", "error"):
        frame[column] = frame[column].str.replace(prefix, "", regex=True)
    return frame


class _OverPixelLimit(Exception):
    """A decoded image has more pixels than the server accepts."""


def _json_row(row: dict[str, Any], strategies: Sequence[str]) -> dict[str, Any]:
    """One row of the Predictor's frame as JSON for the page (NaN and NA -> None; the
    probability also as the text ``predict``'s users would round it to)."""
    def clean(value: Any) -> Any:
        if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            return None
        return value.item() if isinstance(value, np.generic) else value

    probability = clean(row["probability"])
    return {
        "probability": probability,
        "probability_text": "" if probability is None else f"{probability:.4f}",
        "label": clean(row["label"]),
        "prediction": row["prediction"],
        "threshold": clean(row["threshold"]),
        "kept_fraction": clean(row["kept_fraction"]),
        "roi_empty": clean(row["roi_empty"]),
        "warnings": [w for w in str(row["warnings"]).split("; ") if w],
        "error": row["error"],
        "strategies": {s: clean(row[f"probability_{s}"]) for s in strategies
                       if f"probability_{s}" in row},
    }
