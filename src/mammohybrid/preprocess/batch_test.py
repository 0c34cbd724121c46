import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammohybrid.config import Config, LimitsConfig, load_config
from mammohybrid.data.manifest import read_manifest, usable_rows
from mammohybrid.data.synth import render_roi_crop
from mammohybrid.errors import ConfigError, ManifestError
from mammohybrid.imaging import read_image, write_dicom, write_png
from mammohybrid.preprocess.batch import RECORDS_NAME, output_name, run_batch
from mammohybrid.preprocess.chain import preprocess_image


def _config() -> Config:
    config = Config()
    config.preprocess.output_size = 64  # small outputs keep the tests fast
    return config


def make_dataset(folder: Path, count: int = 6, bad: bool = True, dark: bool = True) -> Path:
    """A manifest of small synthetic 16-bit crops (+ a corrupt file and a dark crop)."""
    rng = np.random.default_rng(0)
    rows = []
    for index in range(count):
        path = folder / "crops" / f"case{index}" / "1-1.png"  # same name in every case
        write_png(path, render_roi_crop(rng, 60 + 10 * index, malignant=bool(index % 2),
                                        faint=False))
        rows.append({"image_path": str(path.relative_to(folder)), "label": index % 2,
                     "patient_id": f"P{index // 2}", "split": "train", "lesion_id": f"L{index}"})
    if dark:
        write_png(folder / "dark.png", np.full((50, 40), 100 * 257, np.uint16))
        rows.append({"image_path": "dark.png", "label": 0, "patient_id": "P8", "split": "val",
                     "lesion_id": "Ldark"})
    if bad:
        (folder / "broken.png").write_bytes(b"\x89PNG truncated")
        rows.append({"image_path": "broken.png", "label": 1, "patient_id": "P9",
                     "split": "test", "lesion_id": "Lbad"})
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def test_the_limits_given_are_checked_and_saved(tmp_path):
    manifest = make_dataset(tmp_path, count=2, bad=False, dark=False)
    limits = LimitsConfig(max_image_pixels=100)
    summary = run_batch(manifest, tmp_path / "out", _config(), limits=limits)
    assert summary.failed == 2
    assert "limits.max_image_pixels" in summary.failures[0][1]
    assert load_config(tmp_path / "out" / "config.yaml").limits == limits


def test_output_names_are_readable_unique_and_stable(tmp_path):
    first, second = tmp_path / "a" / "1-1.dcm", tmp_path / "b" / "1-1.dcm"
    assert output_name(first).startswith("1-1_") and output_name(first).endswith(".png")
    assert output_name(first) != output_name(second)
    assert output_name(first) == output_name(str(first))


def test_batch_writes_the_preprocessed_dataset_contract(tmp_path):
    manifest = make_dataset(tmp_path)
    summary = run_batch(manifest, tmp_path / "out", _config(), workers=1)
    assert (summary.images, summary.processed, summary.resumed) == (8, 8, 0)
    assert summary.failed == 1 and summary.roi_empty == 1
    assert "broken.png" in summary.failures[0][1]

    out = read_manifest(tmp_path / "out" / "manifest.csv")
    source = read_manifest(manifest)
    assert len(out) == len(source)
    for column in ("source_path", "status", "kept_fraction", "roi_empty", "input_height",
                   "input_width", "error", "lesion_id"):
        assert column in out.columns
    assert out["source_path"].tolist() == source["image_path"].tolist()
    assert out["status"].tolist() == ["ok"] * 7 + ["error"]

    ok = usable_rows(out)
    assert len(ok) == 7 and "Lbad" not in ok["lesion_id"].tolist()
    for _, row in ok.iterrows():
        image = read_image(row["image_path"])
        assert image.dtype == np.uint8 and image.shape == (64, 64)
        expected = preprocess_image(read_image(row["source_path"]), _config().preprocess)
        np.testing.assert_array_equal(image, expected.image)
        assert row["kept_fraction"] == pytest.approx(expected.kept_fraction)
        assert (row["input_height"], row["input_width"]) == read_image(row["source_path"]).shape
    dark = out[out["lesion_id"] == "Ldark"].iloc[0]
    assert dark["kept_fraction"] == 0 and str(dark["roi_empty"]) == "True"
    bad = out[out["status"] == "error"].iloc[0]
    assert pd.isna(bad["image_path"]) and "not a readable image" in bad["error"]

    saved = load_config(tmp_path / "out" / "config.yaml")
    assert saved.preprocess == _config().preprocess


def test_rerun_after_interruption_does_only_what_is_missing(tmp_path):
    manifest = make_dataset(tmp_path, bad=False, dark=False)
    out = tmp_path / "out"
    run_batch(manifest, out, _config(), workers=1)
    lines = (out / RECORDS_NAME).read_text().splitlines()
    first, last = (out / "images" / output_name(json.loads(line)["source_path"])
                   for line in (lines[0], lines[-1]))
    # Simulate a kill: the first image's PNG never written, the last journal line cut in half,
    # a temporary file left behind.
    first.unlink()
    (out / RECORDS_NAME).write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:25])
    untouched = {p: p.stat().st_mtime_ns for p in (out / "images").glob("*.png") if p != last}
    stale = out / "images" / ".x.png.k2j_9xq1.tmp.png"
    stale.write_bytes(b"half")
    stale_manifest = out / ".manifest.csv.a8zk3m0p.tmp.csv"  # killed writing the manifest
    mine = out / ".notes.tmp"  # not ours: kept
    mine.write_text("user file")
    stale_manifest.write_bytes(b"image_path,la")

    summary = run_batch(manifest, out, _config(), workers=1)
    assert summary.processed == 2 and summary.resumed == 4 and summary.failed == 0
    assert not stale.exists() and not stale_manifest.exists() and first.is_file()
    assert mine.read_text() == "user file"
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in untouched.items())
    # Every line of the journal is whole again.
    for line in (out / RECORDS_NAME).read_text().splitlines():
        json.loads(line)
    again = run_batch(manifest, out, _config(), workers=1)
    assert (again.processed, again.resumed) == (0, 6)


def test_failed_images_are_retried_on_rerun(tmp_path):
    manifest = make_dataset(tmp_path, count=1, dark=False)
    first = run_batch(manifest, tmp_path / "out", _config(), workers=1)
    assert first.failed == 1
    write_png(tmp_path / "broken.png", np.full((30, 30), 250, np.uint8))  # fixed meanwhile
    second = run_batch(manifest, tmp_path / "out", _config(), workers=1)
    assert (second.processed, second.resumed, second.failed) == (1, 1, 0)


def test_empty_policy_error_fails_that_image_only(tmp_path):
    manifest = make_dataset(tmp_path, count=2, bad=False)
    config = _config()
    config.preprocess.roi.empty_policy = "error"
    summary = run_batch(manifest, tmp_path / "out", config, workers=1)
    assert (summary.processed, summary.failed, summary.roi_empty) == (3, 1, 0)
    out = read_manifest(tmp_path / "out" / "manifest.csv")
    failed = out[out["status"] == "error"]
    assert failed["lesion_id"].tolist() == ["Ldark"]
    assert "dark.png" in failed["error"].iloc[0] and "ROI empty" in failed["error"].iloc[0]
    assert pd.isna(failed["image_path"].iloc[0])


def test_other_preprocess_settings_in_the_same_folder_are_refused(tmp_path):
    manifest = make_dataset(tmp_path, count=1, bad=False, dark=False)
    run_batch(manifest, tmp_path / "out", _config(), workers=1)
    other = _config()
    other.preprocess.clahe.clip_limit = 2.0
    with pytest.raises(ConfigError, match=r"preprocess\.clahe\.clip_limit"):
        run_batch(manifest, tmp_path / "out", other, workers=1)
    other = _config()
    other.train.epochs = 3  # settings outside preprocess do not matter
    assert run_batch(manifest, tmp_path / "out", other, workers=1).resumed == 1


def test_manifest_problems_are_reported_before_any_work(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        run_batch(tmp_path / "missing.csv", tmp_path / "out", _config())
    broken = tmp_path / "m.csv"
    broken.write_text("image_path,label,patient_id\nx.png,0,P1\n")
    with pytest.raises(ManifestError, match="split"):
        run_batch(broken, tmp_path / "out", _config())
    config = _config()
    config.preprocess.strategy = "sharpen"
    with pytest.raises(ConfigError, match="unknown strategy"):
        run_batch(broken, tmp_path / "out2", config)
    assert not (tmp_path / "out2").exists()


@pytest.mark.slow
def test_summary_lines_report_failures_and_empty_rois(tmp_path):
    summary = run_batch(make_dataset(tmp_path, count=2), tmp_path / "out", _config(), qa=2)
    text = "\n".join(summary.lines())
    assert "4 image(s): 4 processed now, 0 already done, 1 failed, 1 with an empty ROI" in text
    assert "broken.png" in text and "QA figures" in text
    assert len(summary.qa_figures) == 2 and all(p.is_file() for p in summary.qa_figures)
    assert os.path.dirname(summary.qa_figures[0]) == str(tmp_path / "out" / "qa")


def test_field_of_view_uses_the_manifests_spacing_else_the_dicom_header(tmp_path):
    """The physical scale through the batch: a PNG whose spacing the manifest gives, a DICOM
    whose header gives it, and a PNG of unknown spacing, refused on its own row."""
    lesion = np.zeros((100, 100), np.uint8)
    lesion[40:60, 40:60] = 200  # 20 px
    write_png(tmp_path / "given.png", lesion)
    write_png(tmp_path / "unknown.png", lesion)
    write_dicom(tmp_path / "header.dcm", lesion, attributes={"ImagerPixelSpacing": [0.1, 0.1]})
    off_centre = np.zeros((100, 100), np.uint8)
    off_centre[10:30, 60:80] = 200  # the lesion centre (19.5, 69.5) given in the manifest
    write_png(tmp_path / "off_centre.png", off_centre)
    pd.DataFrame([
        {"image_path": "given.png", "pixel_spacing_mm": 0.2},
        {"image_path": "header.dcm", "pixel_spacing_mm": None},
        {"image_path": "unknown.png", "pixel_spacing_mm": None},
        {"image_path": "off_centre.png", "pixel_spacing_mm": 0.2, "center_row": 19.5,
         "center_col": 69.5},
    ]).assign(label=[0, 1, 0, 1], patient_id=["P1", "P2", "P3", "P4"],
              split="train").to_csv(tmp_path / "manifest.csv", index=False)
    config = load_config(None, ["preprocess.strategy=none", "preprocess.output_size=100",
                                "preprocess.field_of_view_mm=40"])  # 0.4 mm per pixel
    summary = run_batch(tmp_path / "manifest.csv", tmp_path / "out", config, workers=1)
    out = read_manifest(summary.manifest_path)
    by_name = {Path(p).name: row for p, row in zip(out["source_path"], out.to_dict("records"),
                                                    strict=True)}
    assert by_name["unknown.png"]["status"] == "error"
    assert "pixel spacing is unknown" in by_name["unknown.png"]["error"]

    def bright_box(name: str) -> list[list[int]]:
        image = read_image(by_name[name]["image_path"])
        bright = np.argwhere(image > 100)
        return [bright.min(axis=0).tolist(), bright.max(axis=0).tolist()]

    # 20 px x 0.2 mm = 4 mm = 10 output pixels; 20 px x 0.1 mm = 2 mm = 5 output pixels;
    # each centred on the output centre 49.5 (the given centre for the off-centre crop).
    assert bright_box("given.png") == [[45, 45], [54, 54]]
    assert bright_box("off_centre.png") == [[45, 45], [54, 54]]
    header = bright_box("header.dcm")
    assert header[1][0] - header[0][0] + 1 in (5, 6) and 47 <= header[0][0] <= 48
