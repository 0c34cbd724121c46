"""The logistic head (``train.head: logistic``): an L2-regularised logistic regression fitted by
scikit-learn on the frozen backbones' pooled features, for datasets too small for SGD.

With frozen backbones (``model.trainable: none``), the hybrid's head - concatenation, global
pooling, Dense(1, sigmoid) - *is* a logistic regression on the pooled feature vector. Fitting it
with a convex solver instead of SGD removes the epochs, the learning rate and the early-stopping
split from the choices a small dataset has to make:

1. every training and validation image's pooled features are computed once (averaged over the
   dihedral views when ``model.tta: dihedral``) and kept in a cache beside the images, shared
   by every run, fold and grid cell with the same model settings;
2. the regularisation strength C is chosen among ``train.logistic_c`` by an inner,
   patient-grouped, stratified cross-validation on the training split (pooled out-of-fold AUC,
   ties to the stronger regularisation): the validation split is not used to fit or select;
3. standardisation + logistic regression are fitted on the whole training split and folded
   into the hybrid's own Dense layer (w / sigma, b - sum(w mu / sigma)), so ``model.keras`` is
   the usual complete image -> probability model: ``evaluate``, ``predict``, Grad-CAM and the
   filter ensemble work on it unchanged;
4. the decision threshold is chosen on the validation split, as for every run.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from mammohybrid import __version__
from mammohybrid.config import Config
from mammohybrid.fileio import atomic_path
from mammohybrid.models.hybrid import OUTPUT_NAME, feature_extractor
from mammohybrid.models.tta import average_over_views
from mammohybrid.progress import console
from mammohybrid.training.callbacks import BatchProgress, epoch_logs
from mammohybrid.training.data import ImageSplit

CACHE_FOLDER = ".pooled-features"  # beside the images, one .npz per model setting


# --------------------------------------------------------------------------- features
def _feature_key(config: Config) -> str:
    """What the pooled features depend on: the backbones, their weights, input and pooling."""
    model = config.model
    settings = {"backbones": model.backbones, "weights": model.weights,
                "input_size": model.input_size, "pooling": model.pooling, "tta": model.tta,
                "version": __version__}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _image_key(path: str) -> str:
    """A cached vector is reused only for the very same file (name, size, modification time)."""
    stat = os.stat(path)
    return f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}"


class PooledFeatureCache:
    """Pooled feature vectors of images, on disk beside them, for one model setting."""

    def __init__(self, model: keras.Model, config: Config) -> None:
        self.config = config
        self.extractor = average_over_views(feature_extractor(model), config.model.tta)
        self.key = _feature_key(config)

    def features(self, frame: pd.DataFrame) -> np.ndarray:
        """(rows, features) float32 in row order; missing vectors are computed and saved."""
        paths = [os.fspath(p) for p in frame["image_path"]]
        if not paths:
            return np.empty((0, 0), np.float32)
        store = Path(os.path.commonpath([os.path.dirname(os.path.abspath(p))
                                         for p in paths])) / CACHE_FOLDER / f"{self.key}.npz"
        cached = self._load(store)
        keys = [_image_key(p) for p in paths]
        missing = sorted({k: p for k, p in zip(keys, paths, strict=True)
                          if k not in cached}.items())
        if missing:
            computed = self._compute(pd.DataFrame({"image_path": [p for _, p in missing]}))
            cached.update({k: v for (k, _), v in zip(missing, computed, strict=True)})
            self._save(store, cached)
        return np.stack([cached[k] for k in keys]).astype(np.float32)

    def _compute(self, frame: pd.DataFrame) -> np.ndarray:
        split = ImageSplit(frame, self.config.model.input_size, self.config.train.batch_size,
                           cache=False)
        views = "" if self.config.model.tta == "none" else f" ({self.config.model.tta} views)"
        values = self.extractor.predict(
            split.images(), verbose=0,
            callbacks=[BatchProgress(f"pooled features{views}", split.steps)])
        return np.asarray(values, np.float32).reshape(len(frame), -1)

    @staticmethod
    def _load(store: Path) -> dict[str, np.ndarray]:
        if not store.is_file():
            return {}
        with np.load(store, allow_pickle=False) as data:
            return dict(zip(data["keys"].tolist(), data["X"], strict=True))

    @staticmethod
    def _save(store: Path, vectors: dict[str, np.ndarray]) -> None:
        keys = sorted(vectors)
        with atomic_path(store) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, keys=np.array(keys, dtype=str),
                     X=np.stack([vectors[k] for k in keys]))


# --------------------------------------------------------------------------- fitting
@dataclass(frozen=True)
class StrengthChoice:
    """The regularisation strength chosen by inner cross-validation, and how."""

    c: float
    folds: int  # 0: inner cross-validation was impossible (too few patients per class)
    scores: dict[float, float]  # C -> pooled inner out-of-fold AUC

    def describe(self) -> str:
        if not self.folds:
            return f"C = {self.c:g} (too few patients per class for an inner cross-validation)"
        table = ", ".join(f"C={c:g}: {auc:.3f}" for c, auc in self.scores.items())
        return (f"C = {self.c:g} by {self.folds}-fold patient-grouped inner cross-validation on "
                f"the training split (pooled out-of-fold AUC: {table})")


def _classifier(c: float, class_weight: str) -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(
        C=c, max_iter=10_000, class_weight="balanced" if class_weight == "balanced" else None))


def choose_strength(features: np.ndarray, labels: np.ndarray, patients: np.ndarray,
                    config: Config) -> StrengthChoice:
    """C among ``train.logistic_c`` by stratified patient-grouped inner K-fold (see module doc).
    K is ``train.inner_folds``, or fewer when a class has fewer patients."""
    strengths = sorted(config.train.logistic_c)
    per_class = pd.Series(patients).groupby(labels).nunique()
    folds = int(min(config.train.inner_folds, per_class.min())) if len(per_class) == 2 else 0
    if folds < 2:
        middle = 1.0 if 1.0 in strengths else strengths[len(strengths) // 2]
        return StrengthChoice(middle, 0, {})
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=config.seed)
    splits = list(splitter.split(features, labels, patients))
    scores: dict[float, float] = {}
    for c in strengths:
        out_of_fold = np.empty(len(labels))
        for fit_rows, held_rows in splits:
            model = _classifier(c, config.train.class_weight).fit(features[fit_rows],
                                                                   labels[fit_rows])
            out_of_fold[held_rows] = model.predict_proba(features[held_rows])[:, 1]
        scores[c] = float(roc_auc_score(labels, out_of_fold))
    best = max(strengths, key=lambda c: (scores[c], -c))  # ties: the stronger regularisation
    return StrengthChoice(best, folds, scores)


def fit_logistic_head(model: keras.Model, config: Config,
                      splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Fit the logistic head on ``splits['train']`` and write it into ``model``'s Dense layer;
    return the epoch-like logs (train/val loss, accuracy, AUC) and what was chosen."""
    cache = PooledFeatureCache(model, config)
    train, val = splits["train"], splits["val"]
    x_train, x_val = cache.features(train), cache.features(val)
    y_train, y_val = train["label"].to_numpy(int), val["label"].to_numpy(int)
    choice = choose_strength(x_train, y_train, train["patient_id"].to_numpy(str), config)
    console.print(f"logistic head: {choice.describe()}", highlight=False)
    classifier = _classifier(choice.c, config.train.class_weight).fit(x_train, y_train)
    scaler, regression = classifier[0], classifier[-1]
    weights = regression.coef_[0] / scaler.scale_
    bias = regression.intercept_[0] - float(np.sum(weights * scaler.mean_))
    model.get_layer(OUTPUT_NAME).set_weights([weights[:, None].astype(np.float32),
                                              np.array([bias], np.float32)])
    logs = {**epoch_logs(y_train, classifier.predict_proba(x_train)[:, 1]),
            **epoch_logs(y_val, classifier.predict_proba(x_val)[:, 1], "val_")}
    return {"logs": logs, "logistic_c": choice.c, "logistic_selection": choice.describe(),
            "logistic_inner_auc": {f"{c:g}": auc for c, auc in choice.scores.items()}}
