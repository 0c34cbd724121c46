"""The logistic head (``train.head: logistic``): an L2-regularised logistic regression fitted by
scikit-learn on the frozen backbones' pooled features, for datasets too small for SGD.

With frozen backbones (``model.trainable: none``), the hybrid's head - concatenation, global
pooling, Dense(1, sigmoid) - *is* a logistic regression on the pooled feature vector. Fitting it
with a convex solver instead of SGD removes the epochs, the learning rate and the early-stopping
split from the choices a small dataset has to make:

1. every training and validation image's pooled features are computed once (averaged over the
   dihedral views when ``model.tta: dihedral``) and kept in a cache beside the images, shared
   by every run, fold and grid cell with the same model settings;
2. a convex head needs no early stopping, so no validation split is set aside: the head is
   fitted on the training *and* validation rows (on a small set, 15 % more patients); an
   inner, patient-grouped, stratified cross-validation of those rows chooses the
   regularisation strength C among ``train.logistic_c`` (pooled out-of-fold AUC, ties to the
   stronger regularisation) and gives every row an out-of-fold probability;
3. standardisation + logistic regression are fitted on all those rows and folded into the
   hybrid's own Dense layer (w / sigma, b - sum(w mu / sigma)), so ``model.keras`` is the usual
   complete image -> probability model: ``evaluate``, ``predict``, Grad-CAM and the filter
   ensemble work on it unchanged;
4. the decision threshold is chosen on the inner out-of-fold probabilities (never on rows the
   head was fitted on), and the run's "validation" figures (``val_auc``...) are theirs.

Nothing here depends on the fold or run but the head, so the rest is done once per process and
setting: the frozen model is built once (:func:`frozen_model`), the pooled features are
computed once per image and kept on disk, and ``model.keras`` is written from a template of
that model with only its Dense layer's two arrays replaced (:func:`write_model_with_head`,
instead of Keras' layer-by-layer save). A cross-validation of a logistic-head preset then costs
little more than one pass of feature extraction over its images.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from mammohybrid import __version__
from mammohybrid.config import Config, ModelConfig
from mammohybrid.errors import MammohybridError
from mammohybrid.fileio import atomic_path
from mammohybrid.models import (
    OUTPUT_NAME,
    average_over_views,
    build_model,
    feature_extractor,
    float32_policy,
)
from mammohybrid.training.callbacks import BatchProgress, epoch_logs
from mammohybrid.training.input_pipeline import ImageSplit

CACHE_FOLDER = ".pooled-features"  # beside the images, one .npz per model setting
WEIGHTS_MEMBER = "model.weights.h5"  # the weights inside a .keras archive
TOLERANCE = 1e-8  # the logistic regression's convergence tolerance


# --------------------------------------------------------------------------- the frozen model
@cache
def _frozen_model(settings: str) -> keras.Model:
    with float32_policy():
        return build_model(ModelConfig.model_validate_json(settings))


def frozen_model(model: ModelConfig) -> keras.Model:
    """The hybrid with ``model``'s frozen pretrained backbones, built once per process and
    setting (float32). Shared: callers read its features, never change its weights."""
    return _frozen_model(model.model_dump_json())


@cache
def _extractor(settings: str) -> keras.Model:
    # One model per setting, so that its prediction graph is traced once per process.
    model = ModelConfig.model_validate_json(settings)
    return average_over_views(feature_extractor(_frozen_model(settings)), model.tta)


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
    """Pooled feature vectors of images (averaged over the TTA views), on disk beside them, for
    one model setting. The model is built only when a vector is missing."""

    def __init__(self, config: Config) -> None:
        self.config = config
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
        extractor = _extractor(self.config.model.model_dump_json())
        split = ImageSplit(frame, self.config.model.input_size, self.config.train.batch_size,
                           cache=False)
        views = "" if self.config.model.tta == "none" else f" ({self.config.model.tta} views)"
        values = extractor.predict(
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
    folds: int  # 0: no inner cross-validation (too few patients per class)
    scores: dict[float, float]  # C -> pooled inner out-of-fold AUC
    reason: str = ""  # why there was no inner cross-validation
    out_of_fold: np.ndarray | None = None  # every row's inner out-of-fold probability at c

    def describe(self) -> str:
        if not self.folds:
            return f"C = {self.c:g} ({self.reason})"
        table = ", ".join(f"C={c:g}: {auc:.3f}" for c, auc in self.scores.items())
        how = (f"C = {self.c:g}, the only value of train.logistic_c" if len(self.scores) == 1
               else f"C = {self.c:g} by {self.folds}-fold patient-grouped inner "
                    "cross-validation")
        return f"{how} (pooled inner out-of-fold AUC: {table})"


def _fit_path(features: np.ndarray, labels: np.ndarray, strengths: list[float],
              class_weight: str) -> dict[float, tuple[np.ndarray, float]]:
    """Standardisation + L2 logistic regression at each strength, folded into (weights, bias)
    on the raw features.

    With far fewer rows n than features, the L2 solution lies in the span of the standardised
    rows (x_i . w sees only that part of w; any other part adds to the penalty alone), so the
    fit is done on the n coordinates of that span, from one SVD shared by all strengths: the
    same optimum as in the feature space, at the cost of an n-dimensional problem.
    """
    features = np.asarray(features, np.float64)
    # One BLAS thread: these matrices are small, and BLAS threads waiting for a core another
    # process holds slow every fit down on a busy machine.
    with threadpool_limits(limits=1):
        scaler = StandardScaler().fit(features)
        u, s, vt = np.linalg.svd(scaler.transform(features), full_matrices=False)
        return _fit_span(u * s, vt, scaler, labels, strengths, class_weight)


def _fit_span(span: np.ndarray, vt: np.ndarray, scaler: StandardScaler, labels: np.ndarray,
              strengths: list[float], class_weight: str) -> dict[float, tuple[np.ndarray, float]]:
    fitted = {}
    for c in strengths:
        # A tight tolerance: the n-dimensional problem converges in a few milliseconds.
        regression = LogisticRegression(
            C=c, solver="newton-cholesky", max_iter=1_000, tol=TOLERANCE,
            class_weight="balanced" if class_weight == "balanced" else None).fit(span, labels)
        weights = (vt.T @ regression.coef_[0]) / scaler.scale_
        fitted[c] = (weights, float(regression.intercept_[0] - np.sum(weights * scaler.mean_)))
    return fitted


def choose_strength(features: np.ndarray, labels: np.ndarray, patients: np.ndarray,
                    config: Config) -> StrengthChoice:
    """C among ``train.logistic_c`` by stratified patient-grouped inner K-fold (see module doc).
    K is ``train.inner_folds``, or fewer when a class has fewer patients."""
    strengths = sorted(config.train.logistic_c)
    per_class = pd.Series(patients).groupby(labels).nunique()
    folds = int(min(config.train.inner_folds, per_class.min())) if len(per_class) == 2 else 0
    if folds < 2:
        middle = 1.0 if 1.0 in strengths else strengths[len(strengths) // 2]
        return StrengthChoice(middle, 0, {}, "too few patients per class for an inner "
                                             "cross-validation; no out-of-fold probabilities")
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=config.seed)
    out_of_fold = {c: np.empty(len(labels)) for c in strengths}
    for fit_rows, held_rows in splitter.split(features, labels, patients):
        fitted = _fit_path(features[fit_rows], labels[fit_rows], strengths,
                           config.train.class_weight)
        for c, (weights, bias) in fitted.items():
            out_of_fold[c][held_rows] = expit(features[held_rows] @ weights + bias)
    scores = {c: float(roc_auc_score(labels, out_of_fold[c])) for c in strengths}
    best = max(strengths, key=lambda c: (scores[c], -c))  # ties: the stronger regularisation
    return StrengthChoice(best, folds, scores, out_of_fold=out_of_fold[best])


@dataclass(frozen=True)
class LogisticHead:
    """A fitted head in the pooled-feature space: probability = sigmoid(x . weights + bias),
    which is exactly what the hybrid's Dense layer computes once the head is written into it."""

    weights: np.ndarray  # (features,) float32
    bias: float
    choice: StrengthChoice | None = None  # None: read back from a model file

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        # The Dense layer's float32 arithmetic, so that both paths agree to round-off.
        logits = np.asarray(features, np.float32) @ self.weights + np.float32(self.bias)
        return expit(logits.astype(np.float64)).reshape(-1)

    def describe(self) -> dict[str, Any]:
        """What ``run.json`` records of the fit."""
        assert self.choice is not None, "a head read back from a model file has no fit record"
        return {"logistic_c": self.choice.c, "logistic_selection": self.choice.describe(),
                "logistic_inner_auc": {f"{c:g}": auc for c, auc in self.choice.scores.items()}}


def fit_head(features: np.ndarray, labels: np.ndarray, patients: np.ndarray,
             config: Config) -> LogisticHead:
    """Choose C (:func:`choose_strength`), fit standardisation + logistic regression on every
    row, and fold both into one weight vector and bias (see the module doc)."""
    choice = choose_strength(features, labels, patients, config)
    weights, bias = _fit_path(features, labels, [choice.c], config.train.class_weight)[choice.c]
    return LogisticHead(weights.astype(np.float32), float(np.float32(bias)), choice)


@dataclass(frozen=True)
class FittedHead:
    """What fitting the head on a run's training rows gives: the head, the epoch-like logs,
    and the out-of-fold labels and probabilities the threshold is chosen on (empty when the
    rows were too few for an inner cross-validation)."""

    head: LogisticHead
    logs: dict[str, float]
    labels: np.ndarray
    out_of_fold: np.ndarray


def fit_logistic_head(config: Config, splits: dict[str, pd.DataFrame]) -> FittedHead:
    """Fit the logistic head on the pooled features of ``splits['train']`` and
    ``splits['val']`` together (see the module doc). The logs: loss, accuracy and AUC of the
    fitted rows (``train``) and of their inner out-of-fold probabilities (``val_``)."""
    rows = pd.concat([splits["train"], splits["val"]], ignore_index=True)
    features = PooledFeatureCache(config).features(rows)
    labels = rows["label"].to_numpy(int)
    head = fit_head(features, labels, rows["patient_id"].to_numpy(str), config)
    logs = epoch_logs(labels, head.probabilities(features))
    out_of_fold = head.choice.out_of_fold if head.choice is not None else None
    if out_of_fold is None:
        return FittedHead(head, {**logs, "val_loss": np.nan, "val_accuracy": np.nan,
                                 "val_auc": np.nan}, np.empty(0, int), np.empty(0))
    return FittedHead(head, {**logs, **epoch_logs(labels, out_of_fold, "val_")}, labels,
                      out_of_fold)


# --------------------------------------------------------------------------- model files
@dataclass(frozen=True)
class _Template:
    """A saved frozen model, member by member, and where its Dense layer's arrays are."""

    members: list[tuple[str, bytes]]  # the .keras archive's members, in order
    kernel: str  # h5 path of the Dense kernel, (features, 1)
    bias: str  # h5 path of its bias, (1,)


def _dense_arrays(weights: h5py.File, features: int) -> tuple[str, str]:
    """The h5 paths of the output layer's kernel, (features, 1), and bias, (1,): the one
    top-level layer holding such a pair (the backbones are nested deeper)."""
    found = [f"layers/{name}/vars" for name in weights.get("layers", {})
             if weights.get(f"layers/{name}/vars/0", np.empty(0)).shape == (features, 1)
             and weights.get(f"layers/{name}/vars/1", np.empty(0)).shape == (1,)]
    if len(found) != 1:
        raise MammohybridError(f"cannot find the output layer in the saved model's weights "
                               f"({len(found)} top-level layers with a ({features}, 1) kernel)")
    return f"{found[0]}/0", f"{found[0]}/1"


@cache
def _template(settings: str) -> _Template:
    model = _frozen_model(settings)
    with tempfile.TemporaryDirectory() as folder:
        saved = Path(folder) / "template.keras"
        model.save(saved)
        with zipfile.ZipFile(saved) as archive:
            members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    weights = dict(members)[WEIGHTS_MEMBER]
    features = int(model.get_layer(OUTPUT_NAME).kernel.shape[0])
    with h5py.File(io.BytesIO(weights), "r") as h5:
        kernel, bias = _dense_arrays(h5, features)
    return _Template(members, kernel, bias)


def write_model_with_head(model: ModelConfig, head: LogisticHead, path: Path) -> Path:
    """``model.keras`` of the frozen model with ``head`` in its Dense layer, atomically: the
    template archive of :func:`frozen_model` with the Dense layer's two arrays replaced."""
    template = _template(model.model_dump_json())
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for name, data in template.members:
            if name == WEIGHTS_MEMBER:
                buffer = io.BytesIO(data)
                with h5py.File(buffer, "r+") as h5:
                    h5[template.kernel][...] = head.weights.reshape(-1, 1)
                    h5[template.bias][...] = np.array([head.bias], np.float32)
                data = buffer.getvalue()
            archive.writestr(name, data)
    return path


def read_head(path: Path, features: int) -> LogisticHead:
    """The Dense layer of a saved hybrid with ``features`` pooled features, without loading
    the model (what :func:`write_model_with_head` wrote)."""
    with zipfile.ZipFile(path) as archive, archive.open(WEIGHTS_MEMBER) as member, \
            h5py.File(io.BytesIO(member.read()), "r") as h5:
        kernel, bias = _dense_arrays(h5, features)
        return LogisticHead(np.asarray(h5[kernel], np.float32).reshape(-1),
                            float(np.asarray(h5[bias])[0]))
