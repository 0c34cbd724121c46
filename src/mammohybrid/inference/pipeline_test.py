"""Decoding and pre-processing for prediction: bad files become errors naming the file, worker
processes give what the main process gives, the display copy for overlays."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mammohybrid.config import PreprocessConfig
from mammohybrid.data.synth import render_roi_crop
from mammohybrid.imaging import write_dicom, write_png
from mammohybrid.inference.ensemble import StrategyEnsemble
from mammohybrid.inference.pipeline import Prepare, Preparer
from mammohybrid.preprocess import preprocess_image

CONFIG = PreprocessConfig(output_size=48, working_max_side=128)


def _crop(seed: int, size: int = 90) -> np.ndarray:
    return render_roi_crop(np.random.default_rng(seed), size, malignant=bool(seed % 2))


def _corrupt_png(path: Path) -> Path:
    write_png(path, _crop(0))
    data = path.read_bytes()
    path.write_bytes(data[:60] + b"\x00" * 40)  # the header survives, the pixel data does not
    return path


def _truncated_dicom(path: Path) -> Path:
    write_dicom(path, _crop(1))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _text_as_png(path: Path) -> Path:
    path.write_text("patient list, not an image\n")
    return path


@pytest.mark.parametrize("make, name", [(_corrupt_png, "corrupt.png"),
                                        (_truncated_dicom, "truncated.dcm"),
                                        (_text_as_png, "notes.png")])
def test_bad_files_become_errors_naming_the_file(tmp_path, make, name) -> None:
    path = make(tmp_path / name)
    prepared = Prepare(StrategyEnsemble(CONFIG)).path(3, str(path))
    assert not prepared.ok and prepared.index == 3 and prepared.inputs == {}
    assert str(path) in prepared.error


def test_missing_file_is_an_error(tmp_path) -> None:
    prepared = Prepare(StrategyEnsemble(CONFIG)).path(0, str(tmp_path / "gone.png"))
    assert "no such file" in prepared.error and str(tmp_path / "gone.png") in prepared.error


def test_a_good_file_gives_the_chain_output(tmp_path) -> None:
    image = _crop(2)
    path = write_png(tmp_path / "crop.png", image)
    prepared = Prepare(StrategyEnsemble(CONFIG, ["median", "wiener"])).path(0, str(path))
    assert prepared.ok and list(prepared.inputs) == ["median", "wiener"]
    expected = preprocess_image(image, CONFIG)
    np.testing.assert_array_equal(prepared.inputs["median"], expected.image)
    assert prepared.kept_fraction == expected.kept_fraction
    assert prepared.display is None


def test_display_copy_is_8_bit_and_at_most_512_px() -> None:
    image = (np.arange(600 * 300, dtype=np.uint32).reshape(600, 300) % 65536).astype(np.uint16)
    prepared = Prepare(StrategyEnsemble(CONFIG)).array(0, "big", image, display=True)
    assert prepared.display is not None
    assert prepared.display.dtype == np.uint8 and prepared.display.shape == (512, 256)


@pytest.mark.slow
def test_workers_give_what_the_main_process_gives(tmp_path) -> None:
    paths = [str(write_png(tmp_path / f"crop{i}.png", _crop(i, 60 + 10 * i))) for i in range(5)]
    paths.insert(2, str(_text_as_png(tmp_path / "bad.png")))
    ensemble = StrategyEnsemble(CONFIG, ["median", "gaussian"])
    with Preparer(ensemble, workers=0) as here:
        expected = {item.index: item for item in here.map(paths)}
    with Preparer(ensemble, workers=2) as pool:
        # max_in_flight 1 still keeps one task per worker in flight and finishes everything.
        got = {item.index: item for item in pool.map(paths, max_in_flight=1)}
        first_pool = pool._pool
        again = sorted(item.index for item in pool.map(paths[:2]))
        assert pool._pool is first_pool  # started once, reused
    assert pool._pool is None
    assert again == [0, 1]
    assert sorted(got) == list(range(6))
    for index, item in expected.items():
        assert got[index].name == item.name == paths[index]
        assert got[index].error == item.error
        assert got[index].warnings == item.warnings
        assert list(got[index].inputs) == list(item.inputs)
        for strategy, array in item.inputs.items():
            np.testing.assert_array_equal(got[index].inputs[strategy], array)
    assert not got[2].ok and got[1].ok


def test_negative_workers_are_refused() -> None:
    with pytest.raises(ValueError, match="workers"):
        Preparer(StrategyEnsemble(CONFIG), workers=-1)


@pytest.mark.slow
def test_workers_import_no_tensorflow() -> None:
    # Each spawned worker imports this package: TensorFlow there would cost seconds and
    # hundreds of MB per worker.
    code = ("import sys, mammohybrid.inference.pipeline; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_a_physical_scale_takes_the_dicom_spacing_else_the_given_one_else_refuses(tmp_path):
    config = PreprocessConfig(strategy="none", output_size=40, field_of_view_mm=20)
    lesion = np.zeros((50, 50), np.uint8)
    lesion[20:30, 20:30] = 200  # 10 px
    png = write_png(tmp_path / "crop.png", lesion)
    dicom = write_dicom(tmp_path / "crop.dcm", lesion,
                        attributes={"PixelSpacing": [0.25, 0.25]})
    ensemble = StrategyEnsemble(config)

    def lesion_side(prepared) -> int:
        assert prepared.ok, prepared.error
        return int((prepared.inputs["none"] > 100).any(axis=0).sum())

    unknown = Prepare(ensemble).path(0, str(png))
    assert not unknown.ok and "pixel spacing is unknown" in unknown.error
    # 0.5 mm per output pixel: 10 px at 1 mm -> 20 px; at the header's 0.25 mm -> 5 px.
    assert lesion_side(Prepare(ensemble, pixel_spacing_mm=1.0).path(0, str(png))) == 20
    assert lesion_side(Prepare(ensemble, pixel_spacing_mm=1.0).path(0, str(dicom))) == 5
