"""A seeded mutation fuzzer for every input the tool reads: images of every format (PNG 8/16-bit
grey and colour, JPEG, PGM 8/16-bit, TIFF, BMP, DICOM uncompressed and RLE), config YAML,
manifests, and a run directory's ``threshold.json`` and ``config.yaml``.

Each mutant goes through the real reader in a worker process (:func:`decode_image`,
:func:`load_config`, :func:`read_manifest`, :meth:`RunDir.load_threshold`). A mutant passes when
the reader returns a valid value (a 2-D image; a config; a manifest whose labels, splits and
paths obey the rules; a threshold in [0, 1]) or raises the tool's own error with a one-line
message. It fails on any other exception, a crash of the worker (through
:class:`~mammohybrid.workers.CrashSafePool`), a hang (``alarm``), or a peak RSS over 2 GB.

``make fuzz`` (``python -m tests.robustness.fuzz --seconds 180``) runs a large round and prints
``fuzz mutants=<n> failing=<k>`` last; ``test_fuzz.py`` runs a small one in ``make test``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import re
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# A mutant that takes longer than this in its reader counts as a hang (the worker is killed).
HANG_SECONDS = 20
RSS_LIMIT_KIB = 2 * 1024 * 1024
INTERESTING_INTS = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 30000, 46000,
                    0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 4_143_978_297]
INTERESTING_TOKENS = ["0x1F", "1e400", "-1", "-0.1", "2.0", "NaN", ".nan", ".inf", "Infinity",
                      "true", "false", "null", "", "0.9999999999999999999", "[", "]", "{", "*a",
                      "&a x", "'", '"', "\\xff", "1_000", "99999999999999999999999", "~", ":",
                      "!!python/object/apply:os.system ['true']"]


@dataclass(frozen=True)
class Mutant:
    kind: str  # "image", "config", "manifest", "threshold"
    name: str  # the seed's name (format)
    suffix: str
    number: int
    data: bytes


# --------------------------------------------------------------------------- seeds
def _crop(dtype: type = np.uint8, shape: tuple[int, int] = (48, 40)) -> np.ndarray:
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    blob = np.exp(-((rows - shape[0] / 2) ** 2 + (cols - shape[1] / 2) ** 2) / 120.0)
    return (blob * np.iinfo(dtype).max * 0.9).astype(dtype)


def _encoded(suffix: str, image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(suffix, image)
    assert ok, suffix
    return data.tobytes()


def image_seeds() -> dict[str, tuple[str, bytes]]:
    """One small valid file per format the tool reads: name -> (suffix, bytes)."""
    from mammohybrid.imaging import write_dicom

    grey, grey16 = _crop(), _crop(np.uint16)
    colour = cv2.merge([grey, grey // 2, 255 - grey])
    seeds = {
        "png8": (".png", _encoded(".png", grey)),
        "png16": (".png", _encoded(".png", grey16)),
        "png-rgb": (".png", _encoded(".png", colour)),
        "jpeg": (".jpg", _encoded(".jpg", grey)),
        "pgm8": (".pgm", _encoded(".pgm", grey)),
        "pgm16": (".pgm", _encoded(".pgm", grey16)),
        "tiff": (".tif", _encoded(".tif", grey16)),
        "bmp": (".bmp", _encoded(".bmp", grey)),
    }
    with tempfile.TemporaryDirectory() as folder:
        for syntax in ("explicit", "rle"):
            # A fixed instance UID: the same seed must give the same bytes.
            path = write_dicom(Path(folder) / f"{syntax}.dcm", grey16, bits_stored=12,
                               transfer_syntax=syntax,
                               attributes={"SOPInstanceUID": "1.2.826.0.1.3680043.10.999"})
            seeds[f"dicom-{syntax}"] = (".dcm", path.read_bytes())
    return seeds


def text_seeds() -> dict[str, tuple[str, str, bytes]]:
    """name -> (kind, suffix, bytes) for configs, manifests and run-dir files."""
    from mammohybrid.config import config_to_yaml, load_config

    config = config_to_yaml(load_config(None, ["data.manifest=data/manifest.csv"]))
    manifest = ("image_path,label,pathology,patient_id,lesion_id,split,dataset,status\n"
                "a.png,0,BENIGN,P1,L1,train,folder,ok\n"
                "b.png,1,MALIGNANT,P2,L2,val,folder,ok\n"
                "c.png,0,BENIGN,P3,L3,test,folder,ok\n"
                ",1,MALIGNANT,P4,L4,test,folder,error\n")
    threshold = ('{\n  "value": 0.4375,\n  "method": "youden",\n  "split": "val",\n'
                 '  "detail": "Youden J on 40 images"\n}\n')
    return {"config": ("config", ".yaml", config.encode()),
            "manifest": ("manifest", ".csv", manifest.encode()),
            "threshold": ("threshold", ".json", threshold.encode()),
            "run-config": ("run-config", ".yaml", config.encode())}


# --------------------------------------------------------------------------- mutations
def _position(rng: random.Random, size: int) -> int:
    # Headers decide allocations: half the mutations land in the first 300 bytes.
    return rng.randrange(min(size, 300)) if rng.random() < 0.5 else rng.randrange(size)


def _flip_bit(buf: bytearray, rng: random.Random) -> None:
    buf[_position(rng, len(buf))] ^= 1 << rng.randrange(8)


def _set_byte(buf: bytearray, rng: random.Random) -> None:
    buf[_position(rng, len(buf))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])


def _set_int(buf: bytearray, rng: random.Random) -> None:
    width = rng.choice([2, 4])
    value = rng.choice(INTERESTING_INTS) & ((1 << (8 * width)) - 1)
    at = _position(rng, len(buf))
    buf[at:at + width] = value.to_bytes(width, rng.choice(["little", "big"]))


def _delete(buf: bytearray, rng: random.Random) -> None:
    at = rng.randrange(len(buf))
    del buf[at:at + rng.randint(1, 256)]


def _duplicate(buf: bytearray, rng: random.Random) -> None:
    at = rng.randrange(len(buf))
    buf[at:at] = buf[at:at + rng.randint(1, 256)]


def _insert(buf: bytearray, rng: random.Random) -> None:
    at = _position(rng, len(buf))
    buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))


def _truncate(buf: bytearray, rng: random.Random) -> None:
    del buf[rng.randrange(len(buf)):]  # an empty file is a mutant too


def _dicom_size(buf: bytearray, rng: random.Random) -> None:
    # Rows (0028,0010), Columns (0028,0011), NumberOfFrames (0028,0008): values to extremes.
    tag = rng.choice([b"\x28\x00\x10\x00", b"\x28\x00\x11\x00", b"\x28\x00\x00\x01"])
    at = buf.find(tag)
    if at >= 0:
        buf[at + 8:at + 10] = rng.choice([0, 1, 0x7FFF, 0xFFFF]).to_bytes(2, "little")


BINARY_MUTATIONS: list[Callable[[bytearray, random.Random], None]] = [
    _flip_bit, _set_byte, _set_int, _delete, _duplicate, _insert, _truncate, _dicom_size]


def _replace_token(text: str, rng: random.Random) -> str:
    tokens = list(re.finditer(r"[^\s:,{}\[\]\"]+", text))
    if not tokens:
        return text + rng.choice(INTERESTING_TOKENS)
    token = rng.choice(tokens)
    return text[:token.start()] + rng.choice(INTERESTING_TOKENS) + text[token.end():]


def _edit_lines(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    at = rng.randrange(len(lines))
    choice = rng.randrange(4)
    if choice == 0:
        del lines[at]
    elif choice == 1:
        lines.insert(at, lines[rng.randrange(len(lines))])
    elif choice == 2:
        lines[at] = lines[at] + rng.choice(INTERESTING_TOKENS)
    else:
        lines.insert(at, "  " * rng.randint(0, 3) + "[" * rng.choice([10, 1000, 20000]))
    return "\n".join(lines)


def mutate(data: bytes, rng: random.Random, text: bool) -> bytes:
    """1-4 random mutations of ``data`` (token and line edits too for text files)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            break
        if text and rng.random() < 0.6:
            edit = _replace_token if rng.random() < 0.6 else _edit_lines
            buf = bytearray(edit(buf.decode("utf-8", errors="replace"), rng).encode())
        else:
            rng.choice(BINARY_MUTATIONS)(buf, rng)
    return bytes(buf)


def mutants(seed: int, per_seed: int) -> Iterator[Mutant]:
    """``per_seed`` mutants of every seed file, interleaved (a time budget still sees every
    format); the same seed gives the same mutants."""
    rng = random.Random(seed)
    sources = [("image", name, suffix, data) for name, (suffix, data) in image_seeds().items()]
    sources += [(kind, name, suffix, data)
                for name, (kind, suffix, data) in text_seeds().items()]
    for number in range(per_seed):
        for kind, name, suffix, data in sources:
            yield Mutant(kind, name, suffix, number, mutate(data, rng, kind != "image"))


# --------------------------------------------------------------------------- checking
def _check_image(path: Path) -> str:
    from mammohybrid.errors import ImageReadError
    from mammohybrid.imaging import decode_image

    try:
        image = decode_image(path).image
    except ImageReadError as error:
        return _one_line(error)
    if image.ndim != 2 or image.dtype not in (np.uint8, np.uint16, np.float32):
        return f"FAIL: accepted an image of shape {image.shape} and dtype {image.dtype}"
    return ""


def _check_config(path: Path) -> str:
    from mammohybrid.config import Config, load_config
    from mammohybrid.errors import ConfigError

    try:
        config = load_config(path)
    except ConfigError as error:
        return _one_line(error)
    # What was accepted must be what the model allows (no coercion slipped through).
    Config.model_validate(config.model_dump(), strict=True)
    return ""


def _check_manifest(path: Path) -> str:
    from mammohybrid.data.manifest import SPLITS, read_manifest
    from mammohybrid.errors import ManifestError

    try:
        frame = read_manifest(path)
    except ManifestError as error:
        return _one_line(error)
    listed = frame["image_path"].dropna()
    if not (frame["label"].isin([0, 1]).all() and frame["split"].isin(SPLITS).all()
            and frame["patient_id"].notna().all() and not listed.duplicated().any()):
        return "FAIL: accepted a manifest with an invalid label, split, patient or duplicate"
    return ""


def _check_threshold(path: Path) -> str:
    import math

    from mammohybrid.errors import MammohybridError
    from mammohybrid.run_dir import RunDir

    run = RunDir.at(path.parent)
    try:
        choice = run.load_threshold()
    except MammohybridError as error:
        return _one_line(error)
    if choice is None or not (math.isfinite(choice.value) and 0 <= choice.value <= 1):
        return f"FAIL: accepted threshold {choice}"
    return ""


CHECKS: dict[str, tuple[Callable[[Path], str], str]] = {
    "image": (_check_image, "input"),
    "config": (_check_config, "config"),
    "manifest": (_check_manifest, "manifest"),
    "threshold": (_check_threshold, "threshold"),
    "run-config": (_check_config, "config"),
}


def _one_line(error: BaseException) -> str:
    message = str(error)
    return f"FAIL: error message is not one line: {message[:200]!r}" if (
        "\n" in message or not message) else ""


def _peak_kib() -> int:
    with open("/proc/self/status") as status:
        match = re.search(r"VmHWM:\s+(\d+) kB", status.read())
    return int(match.group(1)) if match else 0


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # resets VmHWM (Linux >= 4.0)
    except OSError:
        pass


def check_mutant(mutant: Mutant) -> tuple[Mutant, str]:
    """Run one mutant through its reader in this (worker) process: ``""`` passes, else why
    not. A hang ends the process (SIGALRM's default action), as a crash does."""
    check, stem = CHECKS[mutant.kind]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{stem}{mutant.suffix}"
        if mutant.kind == "threshold":
            path = path.with_name("threshold.json")
        path.write_bytes(mutant.data)
        _reset_peak()
        signal.alarm(HANG_SECONDS)
        try:
            verdict = check(path)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as error:  # exactly what the fuzzer looks for
            verdict = f"FAIL: uncaught {type(error).__name__}: {str(error)[:200]}"
        finally:
            signal.alarm(0)
    if _peak_kib() > RSS_LIMIT_KIB:
        verdict = f"FAIL: peak RSS {_peak_kib() // 1024} MB over 2 GB"
    return mutant, verdict


def _init_worker() -> None:
    # The fuzzed readers must stay quiet on their own; nothing here hides their output.
    cv2.setNumThreads(1)


def _crashed(mutant: Mutant) -> tuple[Mutant, str]:
    return mutant, "FAIL: the worker process died (crash, or a hang over " \
                   f"{HANG_SECONDS} s)"


@dataclass
class FuzzResult:
    mutants: int
    failures: list[tuple[Mutant, str]]


def run_fuzz(seed: int, per_seed: int, seconds: float = float("inf"), workers: int = 1,
             keep: Path | None = None) -> FuzzResult:
    """Run up to ``per_seed`` mutants of every seed file (fewer if ``seconds`` run out)."""
    from mammohybrid.workers import CrashSafePool

    deadline = time.monotonic() + seconds
    count, failures = 0, []
    tasks = itertools.takewhile(lambda _: time.monotonic() < deadline, mutants(seed, per_seed))
    with CrashSafePool(workers, check_mutant, _crashed, initializer=_init_worker) as pool:
        for mutant, verdict in pool.map_unordered(tasks, max_in_flight=4 * workers):
            count += 1
            if verdict:
                failures.append((mutant, verdict))
                if keep is not None:
                    keep.mkdir(parents=True, exist_ok=True)
                    (keep / f"{mutant.name}-{mutant.number}{mutant.suffix}").write_bytes(
                        mutant.data)
    return FuzzResult(count, failures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None,
                        help="mutation seed (default: a new one, printed)")
    parser.add_argument("--per-seed", type=int, default=100_000,
                        help="mutants per seed file at most (14 seed files); the time budget "
                             "usually ends the round first")
    parser.add_argument("--seconds", type=float, default=180, help="time budget")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--keep", type=Path, default=None, help="save failing mutants here")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    print(f"fuzz seed={seed} per_seed={args.per_seed} budget={args.seconds:.0f}s "
          f"workers={args.workers}", flush=True)
    started = time.monotonic()
    result = run_fuzz(seed, args.per_seed, args.seconds, args.workers, args.keep)
    print(f"fuzz took {time.monotonic() - started:.0f} s")
    for mutant, verdict in result.failures[:20]:
        print(f"  {mutant.kind}/{mutant.name} #{mutant.number}: {verdict}")
    print(f"fuzz mutants={result.mutants} failing={len(result.failures)}")
    return 1 if result.failures else 0


if __name__ == "__main__":
    # Run through the package name, so that the worker processes can import what they run.
    from tests.robustness.fuzz import main as package_main

    sys.exit(package_main())
