import cv2
import numpy as np
import pandas as pd

from mammohybrid.config import PreprocessConfig
from mammohybrid.data.synth import render_roi_crop
from mammohybrid.imaging import write_png
from mammohybrid.preprocess.chain import build_chain
from mammohybrid.preprocess.qa import _pick_rows, qa_figure, save_qa_figure, write_qa_figures

CROP = render_roi_crop(np.random.default_rng(0), 120, malignant=False, faint=False)


def test_figure_shows_every_step_and_two_histograms():
    chain = build_chain(PreprocessConfig(strategy="median"))
    figure = qa_figure(CROP, chain, "a title")
    titles = [axis.get_title() for axis in figure.axes]
    assert len(figure.axes) == len(chain.steps) + 2
    last = len(chain.steps)
    assert titles[0].startswith("1. 8-bit") and titles[last - 1].startswith(f"{last}. resize")
    assert any("kept" in t for t in titles) and any("h=" in t for t in titles)
    assert titles[-2].startswith("grey-level histogram before NLM")
    assert titles[-1] == "grey-level histogram after NLM"
    # The histogram bars count every pixel of the image they describe.
    bars = figure.axes[-2].patches
    assert len(bars) == 256 and sum(bar.get_height() for bar in bars) == CROP.size
    assert figure.get_suptitle() == "a title"


def test_chain_without_nlm_shows_first_and_last_histograms():
    figure = qa_figure(CROP, build_chain(PreprocessConfig(strategy="none")))
    assert figure.axes[-2].get_title() == "grey-level histogram after 8-bit"
    assert figure.axes[-1].get_title() == "grey-level histogram after resize"


def test_saved_figure_is_a_readable_png(tmp_path):
    path = save_qa_figure(tmp_path / "qa" / "x.png", CROP, build_chain(PreprocessConfig()))
    image = cv2.imread(str(path))
    assert image is not None and image.shape[1] > 2 * image.shape[0]
    assert list((tmp_path / "qa").iterdir()) == [path]  # no temporary file left


def test_rows_alternate_between_classes():
    frame = pd.DataFrame({"label": [0, 0, 0, 1, 1], "name": list("abcde")})
    assert _pick_rows(frame, 4)["name"].tolist() == ["a", "d", "b", "e"]
    assert _pick_rows(frame, 10)["name"].tolist() == ["a", "d", "b", "e", "c"]


def test_write_qa_figures_keeps_existing_ones(tmp_path):
    source = write_png(tmp_path / "crop.png", CROP)
    frame = pd.DataFrame({"image_path": [str(tmp_path / "out" / "p.png")], "label": [0],
                          "source_path": [str(source)], "patient_id": ["P1"]})
    chain = build_chain(PreprocessConfig())
    [path] = write_qa_figures(frame, chain, tmp_path / "qa", 3)
    assert path == tmp_path / "qa" / "p.png" and path.is_file()
    mtime = path.stat().st_mtime_ns
    write_qa_figures(frame, chain, tmp_path / "qa", 3)
    assert path.stat().st_mtime_ns == mtime
