"""``mammohybrid features``: the pooled feature vector of every image of a manifest, for analysis
outside the tool (a linear probe, t-SNE, radiomics comparisons). A manifest whose images were
pre-processed with other settings than the run's training images is refused and a raw one gets
the run's pre-processing, as by ``evaluate``.

The vector is the output of the trained model's global pooling layer: the backbones' last
feature maps, concatenated and globally pooled (2048 + 2560 = 4608 values for the paper's
hybrid), averaged over the dihedral views when the run uses ``model.tta: dihedral``. Images go
through exactly the input pipeline used for prediction.

Output ``.npz``: ``image_path`` (str), ``X`` (float32, images x features), and ``label``,
``patient_id``, ``split`` when the manifest has them. Rows whose image failed pre-processing
(``status`` not ``ok``) are left out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mammohybrid.data import read_manifest, usable_rows
from mammohybrid.evaluation.evaluate import RunPredictor
from mammohybrid.fileio import atomic_path
from mammohybrid.preprocess import ensure_preprocessed
from mammohybrid.run_dir import RunDir

OPTIONAL_COLUMNS = ("label", "patient_id", "split")


def extract_features(run_dir: str | os.PathLike[str], manifest: str | os.PathLike[str],
                     out_path: str | os.PathLike[str]) -> Path:
    """Write the pooled features of every row of ``manifest`` to ``out_path`` (``.npz``)."""
    from mammohybrid.models import average_over_views, feature_extractor
    from mammohybrid.training import predict_manifest

    run = RunDir.at(run_dir)
    config = run.load_config()
    manifest = ensure_preprocessed(manifest, config)
    frame = usable_rows(read_manifest(manifest, require_split=False))
    predictor = RunPredictor(run, config)
    extractor = average_over_views(feature_extractor(predictor.model), config.model.tta)
    features = np.asarray(predict_manifest(extractor, frame, config), dtype=np.float32)
    features = features.reshape(len(frame), -1)
    # Fixed-width unicode, not object arrays: np.load then works without allow_pickle.
    # Any: numpy's stubs type savez_compressed's keywords as its allow_pickle flag.
    arrays: dict[str, Any] = {
        "image_path": np.array(frame["image_path"].astype(str).tolist(), dtype=str),
        "X": features}
    for column in OPTIONAL_COLUMNS:
        if column in frame.columns:
            arrays[column] = (frame[column].to_numpy(dtype=np.int64) if column == "label"
                              else np.array(frame[column].astype(str).tolist(), dtype=str))
    out_path = Path(out_path)
    if out_path.suffix != ".npz":
        out_path = out_path.with_name(out_path.name + ".npz")
    with atomic_path(out_path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return out_path
