"""The decode-and-prepare pool: bad files become errors naming the file, worker processes give
what the main process gives, a task's target gets the PNG, the display copy for overlays."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mammohybrid.config import LimitsConfig, PreprocessConfig
from mammohybrid.data.synth import render_roi_crop
from mammohybrid.imaging import read_image, write_dicom, write_png
from mammohybrid.preprocess import Record, build_chain, preprocess_image
from mammohybrid.preprocess.chain import ProcessedImage
from mammohybrid.preprocess.pool import (
    ImageProcessor,
    ImageTask,
    PreparedOutcome,
    PreprocessPool,
    SingleChain,
)

CONFIG = PreprocessConfig(output_size=48, working_max_side=128)


class Strategies:
    """A :class:`~mammohybrid.preprocess.pool.Preparation` of several strategies (their
    chains one after the other)."""

    def __init__(self, base: PreprocessConfig, names: list[str]) -> None:
        self.base = base
        self.chains = {name: build_chain(base.model_copy(update={"strategy": name}))
                       for name in names}

    @property
    def primary(self) -> str:
        return next(iter(self.chains))

    def __call__(self, image: np.ndarray, known: Record | None = None
                 ) -> dict[str, ProcessedImage]:
        return {name: chain(image, Record(**vars(known or Record())))
                for name, chain in self.chains.items()}


def _path(processor: ImageProcessor, index: int, path: object) -> PreparedOutcome:
    return processor.from_path(ImageTask(index, str(path)))


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
    prepared = _path(ImageProcessor(SingleChain(CONFIG)), 3, path)
    assert not prepared.ok and prepared.index == 3 and prepared.outputs == {}
    assert str(path) in prepared.error


def test_missing_file_is_an_error(tmp_path) -> None:
    prepared = _path(ImageProcessor(SingleChain(CONFIG)), 0, tmp_path / "gone.png")
    assert "no such file" in prepared.error and str(tmp_path / "gone.png") in prepared.error


def test_a_good_file_gives_the_chain_output(tmp_path) -> None:
    image = _crop(2)
    path = write_png(tmp_path / "crop.png", image)
    prepared = _path(ImageProcessor(Strategies(CONFIG, ["median", "wiener"])), 0, path)
    assert prepared.ok and list(prepared.outputs) == ["median", "wiener"]
    expected = preprocess_image(image, CONFIG)
    np.testing.assert_array_equal(prepared.outputs["median"], expected.image)
    assert prepared.kept_fraction == expected.kept_fraction
    assert prepared.input_shape == image.shape
    assert prepared.display is None


def test_a_target_gets_the_primary_output_as_png_and_no_pixels_come_back(tmp_path) -> None:
    image = _crop(4)
    path = write_png(tmp_path / "crop.png", image)
    target = tmp_path / "out" / "crop.png"
    prepared = ImageProcessor(SingleChain(CONFIG)).from_path(
        ImageTask(0, str(path), target=str(target)))
    assert prepared.ok and prepared.outputs == {}
    np.testing.assert_array_equal(read_image(target), preprocess_image(image, CONFIG).image)


def test_the_limits_given_are_the_ones_checked(tmp_path) -> None:
    path = write_png(tmp_path / "crop.png", _crop(5))
    tight = ImageProcessor(SingleChain(CONFIG), LimitsConfig(max_image_pixels=100))
    assert not _path(tight, 0, path).ok
    assert _path(ImageProcessor(SingleChain(CONFIG)), 0, path).ok


def test_display_copy_is_8_bit_and_at_most_512_px() -> None:
    image = (np.arange(600 * 300, dtype=np.uint32).reshape(600, 300) % 65536).astype(np.uint16)
    prepared = ImageProcessor(SingleChain(CONFIG)).from_array(0, "big", image, display=True)
    assert prepared.display is not None
    assert prepared.display.dtype == np.uint8 and prepared.display.shape == (512, 256)


@pytest.mark.slow
def test_workers_give_what_the_main_process_gives(tmp_path) -> None:
    paths = [str(write_png(tmp_path / f"crop{i}.png", _crop(i, 60 + 10 * i))) for i in range(5)]
    paths.insert(2, str(_text_as_png(tmp_path / "bad.png")))
    strategies = Strategies(CONFIG, ["median", "gaussian"])
    tasks = [ImageTask(index, path) for index, path in enumerate(paths)]
    with PreprocessPool(strategies, workers=0) as here:
        expected = {item.index: item for item in here.map(tasks)}
    with PreprocessPool(strategies, workers=2) as pool:
        # max_in_flight 1 still keeps one task per worker in flight and finishes everything.
        got = {item.index: item for item in pool.map(tasks, max_in_flight=1)}
        first_pool = pool._pool
        again = sorted(item.index for item in pool.map(tasks[:2]))
        assert pool._pool is first_pool  # started once, reused
    assert pool._pool is None
    assert again == [0, 1]
    assert sorted(got) == list(range(6))
    for index, item in expected.items():
        assert got[index].name == item.name == paths[index]
        assert got[index].error == item.error
        assert got[index].warnings == item.warnings
        assert list(got[index].outputs) == list(item.outputs)
        for strategy, array in item.outputs.items():
            np.testing.assert_array_equal(got[index].outputs[strategy], array)
    assert not got[2].ok and got[1].ok


def test_negative_workers_are_refused() -> None:
    with pytest.raises(ValueError, match="workers"):
        PreprocessPool(SingleChain(CONFIG), workers=-1)


@pytest.mark.slow
def test_workers_import_no_tensorflow() -> None:
    # Each spawned worker imports this package: TensorFlow there would cost seconds and
    # hundreds of MB per worker.
    code = ("import sys, mammohybrid.preprocess.pool; "
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
    chain = SingleChain(config)
    given = ImageProcessor(chain, pixel_spacing_mm=1.0)

    def lesion_side(prepared) -> int:
        assert prepared.ok, prepared.error
        return int((prepared.outputs["none"] > 100).any(axis=0).sum())

    unknown = _path(ImageProcessor(chain), 0, png)
    assert not unknown.ok and "pixel spacing is unknown" in unknown.error
    # 0.5 mm per output pixel: 10 px at 1 mm -> 20 px; at the header's 0.25 mm -> 5 px.
    assert lesion_side(_path(given, 0, png)) == 20
    assert lesion_side(_path(given, 0, dicom)) == 5
    # A manifest's spacing (the task's) wins over the header's: 10 px at 1 mm -> 20 px.
    manifest = given.from_path(ImageTask(0, str(dicom), Record(pixel_spacing_mm=1.0)))
    assert lesion_side(manifest) == 20
