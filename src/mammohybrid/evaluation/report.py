"""Evaluation reports for people: one self-contained ``report.html`` (figures embedded, opens
offline) and the same content as ``report.md``.

A report is described once (:class:`Report`: metrics, threshold, figures, dataset summary,
configuration, notes) and rendered to both formats from the templates in ``templates/``;
each table is built once as rows and rendered by a small HTML or Markdown table function.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Protocol

import pandas as pd

from mammohybrid import __version__
from mammohybrid.config import Config, config_to_yaml
from mammohybrid.data import split_summary
from mammohybrid.evaluation.bootstrap import interval_key
from mammohybrid.evaluation.metrics import METRIC_LABELS, METRIC_NAMES, PAPER_EQ6_NOTE
from mammohybrid.fileio import atomic_write_text

BWC = "BENIGN_WITHOUT_CALLBACK"
_HEADLINE = ("auc", "accuracy", "sensitivity", "specificity", "f1")


# --------------------------------------------------------------------------- content
@dataclass(frozen=True)
class DatasetSummary:
    """What the report says about the data: counts per split and class, how
    BENIGN_WITHOUT_CALLBACK was mapped, and what pre-processing did (empty ROIs, failures)."""

    source: str
    splits: pd.DataFrame  # data.manifest.split_summary
    benign_without_callback: str  # the mapping (config data.benign_without_callback)
    bwc_per_split: dict[str, int] | None  # None: the manifest has no pathology column
    n_images: int
    roi_empty: int | None  # None: not a pre-processed manifest
    roi_empty_policy: str
    status_counts: dict[str, int] | None

    @classmethod
    def from_manifest(cls, frame: pd.DataFrame, config: Config,
                      source: str | os.PathLike[str] = "") -> DatasetSummary:
        bwc = None
        if "pathology" in frame.columns:
            is_bwc = frame["pathology"].astype(str).str.upper().eq(BWC)
            bwc = {str(k): int(v) for k, v in is_bwc.groupby(frame["split"]).sum().items()}
        roi_empty = None
        if "roi_empty" in frame.columns:
            roi_empty = int(frame["roi_empty"].map(_truthy).sum())
        status = None
        if "status" in frame.columns:
            status = {str(k): int(v) for k, v in frame["status"].fillna("missing")
                      .astype(str).value_counts().items()}
        return cls(source=str(source), splits=split_summary(frame),
                   benign_without_callback=config.data.benign_without_callback,
                   bwc_per_split=bwc, n_images=len(frame), roi_empty=roi_empty,
                   roi_empty_policy=config.preprocess.roi.empty_policy, status_counts=status)

    def bwc_sentence(self) -> str:
        mapping = {"benign": "mapped to benign (label 0)",
                   "malignant": "mapped to malignant (label 1)",
                   "exclude": "excluded from the dataset"}[self.benign_without_callback]
        text = (f"{BWC} (benign cases the radiologist did not call back) are {mapping} "
                f"(setting data.benign_without_callback = {self.benign_without_callback}).")
        if self.bwc_per_split is not None:
            counts = ", ".join(f"{split} {n}" for split, n in self.bwc_per_split.items())
            text += f" Such images in this manifest: {counts or 'none'}."
        return text

    def preprocessing_sentence(self) -> str:
        if self.roi_empty is None:
            text = ("The manifest has no roi_empty column, so how many ROIs came out empty in "
                    "pre-processing is unknown (not a manifest written by `mammohybrid "
                    "preprocess`).")
        else:
            share = self.roi_empty / self.n_images if self.n_images else 0.0
            policy = {"keep": "kept as black images (the paper's behaviour)",
                      "fallback": "replaced by the unmasked image",
                      "otsu": "re-thresholded at their own Otsu threshold",
                      "error": "reported as errors"}[self.roi_empty_policy]
            text = (f"{self.roi_empty} of {self.n_images} ROIs ({share:.1%}) came out empty in "
                    f"pre-processing (no pixel above the ROI threshold); they were {policy} "
                    f"(preprocess.roi.empty_policy = {self.roi_empty_policy}).")
        if self.status_counts:
            failed = sum(n for status, n in self.status_counts.items() if status != "ok")
            text += (" Pre-processing status: " + ", ".join(
                f"{k} {v}" for k, v in self.status_counts.items()) + "."
                + (f" The {failed} image(s) without status ok were left out of training and "
                   "evaluation." if failed else ""))
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "n_images": self.n_images,
                "splits": self.splits.to_dict(orient="records"),
                "benign_without_callback": self.benign_without_callback,
                "benign_without_callback_per_split": self.bwc_per_split,
                "roi_empty": self.roi_empty, "roi_empty_policy": self.roi_empty_policy,
                "status_counts": self.status_counts}


@dataclass(frozen=True)
class ReportSection:
    """An extra section (e.g. the demo's Grad-CAM overlays and filter-ensemble comparison):
    a heading, paragraphs, an optional table and (caption, PNG path) figures."""

    heading: str
    paragraphs: Sequence[str] = ()
    table: tuple[Sequence[str], Sequence[Sequence[Any]]] | None = None
    figures: Sequence[tuple[str, Path]] = ()


@dataclass(frozen=True)
class Report:
    """Everything a report shows. ``metrics`` is the content of ``metrics.json``; ``figures`` are
    (caption, PNG path) pairs, copied into the report's folder by the caller."""

    title: str
    subtitle: str
    metrics: Mapping[str, Any]
    config: Config
    dataset: DatasetSummary | None = None
    figures: Sequence[tuple[str, Path]] = ()
    notes: Sequence[str] = ()
    run_info: Mapping[str, Any] | None = None
    sections: Sequence[ReportSection] = ()
    generated: str = field(default_factory=lambda: _dt.datetime.now().isoformat(timespec="seconds"))


def write_report(report: Report, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Render ``report.html`` (self-contained) and ``report.md`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    atomic_write_text(html_path, _render(report, _HTML, out_dir))
    atomic_write_text(md_path, _render(report, _MARKDOWN, out_dir))
    return html_path, md_path


# --------------------------------------------------------------------------- formatting
def format_metric(name: str, value: float | None) -> str:
    """AUC as a number with 3 decimals, the other metrics as percentages (as the paper)."""
    if value is None:
        return "undefined"
    return f"{value:.3f}" if name == "auc" else f"{100 * value:.1f} %"


def format_interval(name: str, interval: Sequence[float | None] | None) -> str:
    if not interval or interval[0] is None or interval[1] is None:
        return "n/a"
    return f"{format_metric(name, interval[0])} – {format_metric(name, interval[1])}"


def metric_rows(metrics: Mapping[str, Any]) -> list[list[str]]:
    """Rows (metric, value, interval, note) of the metrics table."""
    undefined = metrics.get("undefined", {})
    rows = []
    for name in METRIC_NAMES:
        value = metrics.get(name)
        note = f"undefined: {undefined[name]}" if name in undefined else ""
        if name == "paper_eq6_score":
            note = (note + "; " if note else "") + "not F1: the paper's Eq. 6"
        rows.append([METRIC_LABELS[name], format_metric(name, value),
                     format_interval(name, metric_interval(metrics, name)), note])
    return rows


def metric_interval(metrics: Mapping[str, Any], name: str) -> Sequence[float | None] | None:
    """The interval of metric ``name`` in a metrics.json mapping, at its own level."""
    return metrics.get(interval_key(name, metrics.get("ci", {}).get("level", 0.95)))


class _Format(Protocol):
    """How one output format renders text, tables and figures."""

    template: str

    def text(self, value: str) -> str: ...
    def code(self, value: str) -> str: ...
    def heading(self, value: str) -> str: ...
    def paragraph(self, value: str) -> str: ...
    def note(self, value: str) -> str: ...
    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]],
              numeric: Sequence[int] = ()) -> str: ...
    def figure(self, caption: str, path: Path, out_dir: Path) -> str: ...
    def cards(self, metrics: Mapping[str, Any]) -> str: ...


class _HtmlFormat:
    template = "report.html"

    def text(self, value: str) -> str:
        return html.escape(value)

    def code(self, value: str) -> str:
        return f"<code>{html.escape(value)}</code>"

    def heading(self, value: str) -> str:
        return f"<h2>{html.escape(value)}</h2>"

    def paragraph(self, value: str) -> str:
        return f"<p>{value}</p>"

    def note(self, value: str) -> str:
        return f'<div class="note">{value}</div>'

    def table(self, header, rows, numeric=()):
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(
                f'<td class="num">{html.escape(str(c))}</td>' if i in numeric
                else f"<td>{html.escape(str(c))}</td>" for i, c in enumerate(row)) + "</tr>"
            for row in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def figure(self, caption, path, out_dir):
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        wide = ' class="wide"' if "training" in caption.lower() else ""
        return (f'<figure{wide}><img alt="{html.escape(caption)}" '
                f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}'
                "</figcaption></figure>")

    def cards(self, metrics):
        level = metrics.get("ci", {}).get("level", 0.95)
        out = []
        for name in _HEADLINE:
            interval = format_interval(name, metric_interval(metrics, name))
            out.append(f'<div class="card"><div class="label">{html.escape(METRIC_LABELS[name])}'
                       f'</div><div class="value">{format_metric(name, metrics.get(name))}</div>'
                       f'<div class="ci">{level:.0%} CI: {html.escape(interval)}</div></div>')
        return "\n".join(out)


class _MarkdownFormat:
    template = "report.md"

    def text(self, value: str) -> str:
        return value

    def code(self, value: str) -> str:
        return f"`{value}`"

    def heading(self, value: str) -> str:
        return f"## {value}\n"

    def paragraph(self, value: str) -> str:
        return value + "\n"

    def note(self, value: str) -> str:
        return f"> **Note.** {value}\n"

    def table(self, header, rows, numeric=()):
        def cell(value: Any) -> str:
            return str(value).replace("|", "\\|")

        lines = ["| " + " | ".join(cell(h) for h in header) + " |",
                 "|" + "|".join("---:" if i in numeric else "---" for i in range(len(header)))
                 + "|"]
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
        return "\n".join(lines) + "\n"

    def figure(self, caption, path, out_dir):
        try:
            target = Path(path).resolve().relative_to(out_dir.resolve()).as_posix()
        except ValueError:
            target = Path(path).resolve().as_posix()
        return f"![{caption}]({target})\n\n*{caption}*\n"

    def cards(self, metrics):
        return ""


_HTML: _Format = _HtmlFormat()
_MARKDOWN: _Format = _MarkdownFormat()


def _render(report: Report, fmt: _Format, out_dir: Path) -> str:
    metrics = report.metrics
    notes = [*report.notes, PAPER_EQ6_NOTE]
    threshold_text = (
        f"Threshold {metrics.get('threshold', float('nan')):.4g}: a case is called malignant "
        f"when its probability is at or above it. Chosen by: "
        f"{metrics.get('threshold_method', 'fixed')} "
        f"(split: {metrics.get('threshold_split', 'none')}; {metrics.get('threshold_detail', '')})."
        " The threshold is chosen on the validation split when training ends, or fixed; it is "
        "never chosen on the test split.")
    ci = metrics.get("ci", {})
    ci_text = (f"Intervals: {ci.get('level', 0.95):.0%} {ci.get('method', 'bootstrap')} "
               f"({ci.get('resamples', 0)} resamples of {ci.get('patients', '?')} patients, "
               f"seed {ci.get('seed', '?')}).")
    if ci.get("undefined_resamples"):
        ci_text += " Resamples in which a metric was undefined (left out of its interval): " + \
            ", ".join(f"{k} {v}" for k, v in ci["undefined_resamples"].items()) + "."
    confusion = metrics.get("confusion_matrix", {})
    confusion_rows = [["True benign", confusion.get("tn", ""), confusion.get("fp", "")],
                      ["True malignant", confusion.get("fn", ""), confusion.get("tp", "")]]
    parts = {
        "title": fmt.text(report.title),
        "subtitle": fmt.text(report.subtitle),
        "cards": fmt.cards(metrics),
        "notes": "\n".join(fmt.note(fmt.text(note)) for note in notes),
        "threshold": fmt.paragraph(fmt.text(threshold_text)),
        "metrics_table": fmt.table(["Metric", "Value", f"{ci.get('level', 0.95):.0%} CI", "Note"],
                                   metric_rows(metrics), numeric=(1,))
        + "\n" + fmt.paragraph(fmt.text(
            f"n = {metrics.get('n')} images ({metrics.get('n_malignant')} malignant, "
            f"{metrics.get('n_benign')} benign). {ci_text}")),
        "confusion_table": fmt.table(["", "Predicted benign", "Predicted malignant"],
                                     confusion_rows, numeric=(1, 2)),
        "figures": "\n".join(fmt.figure(caption, path, out_dir)
                             for caption, path in report.figures),
        "sections": "\n".join(_extra_section(section, fmt, out_dir)
                               for section in report.sections),
        "dataset": _dataset_section(report.dataset, fmt),
        "config_yaml": fmt.text(config_to_yaml(report.config)),
        "run_info": _run_info_section(report.run_info, fmt),
        "footer": fmt.text(f"mammohybrid {__version__} · generated {report.generated}"),
    }
    template = (resources.files("mammohybrid.evaluation") / "templates" / fmt.template)
    return Template(template.read_text(encoding="utf-8")).substitute(parts)


def _dataset_section(dataset: DatasetSummary | None, fmt: _Format) -> str:
    if dataset is None:
        return fmt.paragraph(fmt.text("No manifest was available for a dataset summary."))
    rows = dataset.splits[["split", "class", "images", "lesions", "patients"]].values.tolist()
    return "\n".join([
        fmt.paragraph(fmt.text("Manifest: ") + fmt.code(dataset.source)),
        fmt.table(["Split", "Class", "Images", "Lesions", "Patients"], rows, numeric=(2, 3, 4)),
        fmt.paragraph(fmt.text(dataset.bwc_sentence())),
        fmt.paragraph(fmt.text(dataset.preprocessing_sentence())),
    ])


def _extra_section(section: ReportSection, fmt: _Format, out_dir: Path) -> str:
    parts = [fmt.heading(section.heading)]
    parts += [fmt.paragraph(fmt.text(text)) for text in section.paragraphs]
    if section.table is not None:
        header, rows = section.table
        parts.append(fmt.table(header, rows, numeric=tuple(range(1, len(header)))))
    parts += [fmt.figure(caption, path, out_dir) for caption, path in section.figures]
    return "\n".join(parts)


def _run_info_section(run_info: Mapping[str, Any] | None, fmt: _Format) -> str:
    if not run_info:
        return ""
    rows = [[key, value if not isinstance(value, float) else f"{value:.4g}"]
            for key, value in run_info.items() if not isinstance(value, (dict, list))]
    return fmt.heading("Run") + "\n" + fmt.table(["Key", "Value"], rows)


def _truthy(value: object) -> bool:
    """``roi_empty`` read back from CSV: bool, 0/1 or the strings True/False."""
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return bool(value) and not pd.isna(value)
