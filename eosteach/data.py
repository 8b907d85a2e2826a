"""CIFAR-10 as Cohen et al. (ICLR 2021) use it, and a synthetic stand-in for offline work.

Source: the official *binary version* of CIFAR-10 (Krizhevsky, "Learning Multiple Layers
of Features from Tiny Images", 2009), ``cifar-10-binary.tar.gz``. It extracts to
``cifar-10-batches-bin/``: five training files and one test file, each 10,000 records of
3,073 bytes (one label byte 0-9, then the 1,024 red, 1,024 green and 1,024 blue values of
a 32x32 image, each plane row-major).

Preprocessing, exactly as in Cohen et al.'s code:

    x = pixels / 255                                   (n, 3072), channel-major (C, H, W)
    x = (x - mean_train) / std_train                   per feature, over ALL 50,000 training images

The statistics come from the full training set even when a subset is used, so a subset
is a slice of the same standardised data. The subset of size n is the first n training
images ("cifar10-5k" is n = 5,000). The feature order (C, H, W) is the one
``torch.nn.Conv2d`` expects after ``x.view(n, 3, 32, 32)``; it is also the order of
Cohen et al.'s tensors.

Targets: one-hot rows (n, c) for the MSE loss, class indices (n,) for cross-entropy.

Where the files live: ``root`` argument, else ``$EOSTEACH_DATA``, else the platform's cache
(``eosteach.config.data_dir``). An extracted ``cifar-10-batches-bin/`` found there is read
as is, even from a read-only folder, and nothing is ever written into it. Otherwise the
archive is downloaded, checked against its MD5 and extracted (``download_cifar10``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch

from . import config, validate
from .losses import LOSSES, one_hot

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
ARCHIVE_NAME = "cifar-10-binary.tar.gz"
FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
META_FILE = "batches.meta.txt"
REQUIRED_FILES = TRAIN_FILES + (TEST_FILE, META_FILE)
# The official archive also ships readme.html; it is extracted when present, never required.
EXPECTED_MEMBERS = frozenset(f"{FOLDER}/{name}" for name in REQUIRED_FILES + ("readme.html",))

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SHAPE = (3, 32, 32)
INPUT_DIM = 3 * 32 * 32
RECORD_BYTES = 1 + INPUT_DIM

DATASETS = ("cifar10", "synthetic")

# A partial download older than this is taken to be left over by a killed process.
_STALE_PARTIAL_SECONDS = 300


class DownloadError(RuntimeError):
    """The archive could not be fetched, failed its checksum, or held an unsafe member."""


# --------------------------------------------------------------------------- dataset


@dataclasses.dataclass(repr=False)
class Dataset:
    """A train/test split ready for full-batch training.

    x_train (n, d) float, y_train (n, c) one-hot float for MSE or (n,) long for CE;
    x_test, y_test likewise; ``classes`` names the c classes in label order.
    ``synthetic`` is True for generated data that is NOT CIFAR-10 (``note`` says what it is).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple
    synthetic: bool = False
    loss: str = "mse"
    note: str = ""

    @property
    def n_train(self) -> int:
        return self.x_train.shape[0]

    @property
    def n_test(self) -> int:
        return self.x_test.shape[0]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def input_dim(self) -> int:
        return self.x_train.shape[1]

    def to(self, device=None, dtype=None) -> "Dataset":
        """A copy on ``device`` with float tensors (inputs, one-hot targets) cast to ``dtype``."""
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype if torch.is_floating_point(t) else None)

        return dataclasses.replace(
            self, x_train=move(self.x_train), y_train=move(self.y_train),
            x_test=move(self.x_test), y_test=move(self.y_test),
        )

    def __repr__(self) -> str:
        kind = "SYNTHETIC (not CIFAR-10) " if self.synthetic else ""
        return (
            f"{kind}Dataset(name={self.name!r}, n_train={self.n_train}, n_test={self.n_test}, "
            f"classes={self.n_classes}, loss={self.loss!r}, dtype={self.x_train.dtype}, "
            f"device={self.x_train.device})"
        )


# --------------------------------------------------------------------------- reading


def _data_root(root) -> Path:
    """The folder that holds ``cifar-10-batches-bin/`` (``config.data_dir`` rules).

    Pointing at ``cifar-10-batches-bin`` itself is understood as pointing at its parent.
    """
    root = config.data_dir(root)
    return root.parent if root.name == FOLDER else root


def _folder(root) -> Path:
    return _data_root(root) / FOLDER


def is_extracted(root=None) -> bool:
    """True when ``root`` (default: ``config.data_dir()``) holds a complete ``cifar-10-batches-bin/``."""
    folder = _folder(root)
    return all((folder / name).is_file() for name in REQUIRED_FILES)


def _read_records(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise ValueError(f"{path} is not a CIFAR-10 binary file: {raw.size} bytes is not a multiple of {RECORD_BYTES}")
    records = raw.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= len(CLASSES):
        raise ValueError(f"{path} holds a label {labels.max()} outside 0-9; is it CIFAR-100?")
    return np.ascontiguousarray(records[:, 1:]), labels


@functools.lru_cache(maxsize=4)
def _read_folder(folder: str):
    """(x_train uint8 (N, 3072), y_train (N,), x_test, y_test, class names), read-only arrays.

    Cached per folder for the life of the process: the 180 MB are parsed once.
    """
    folder = Path(folder)
    parts = [_read_records(folder / name) for name in TRAIN_FILES]
    x_train = np.concatenate([x for x, _ in parts])
    y_train = np.concatenate([y for _, y in parts])
    x_test, y_test = _read_records(folder / TEST_FILE)
    names = tuple(line.strip() for line in (folder / META_FILE).read_text().splitlines() if line.strip())
    for array in (x_train, y_train, x_test, y_test):
        array.setflags(write=False)
    return x_train, y_train, x_test, y_test, names or CLASSES


@functools.lru_cache(maxsize=4)
def _feature_stats(folder: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) std of each of the 3,072 features over the training set, 0-255 scale.

    Computed exactly in integer arithmetic: var = (N sum x^2 - (sum x)^2) / N^2.
    """
    x = _read_folder(folder)[0]
    n = x.shape[0]
    total = x.sum(axis=0, dtype=np.int64)
    squares = np.zeros(x.shape[1], dtype=np.int64)
    for start in range(0, n, 5000):  # 255^2 fits in uint16: small chunks, exact squares
        chunk = x[start:start + 5000].astype(np.uint16)
        chunk *= chunk
        squares += chunk.sum(axis=0, dtype=np.int64)
    mean = total / n
    std = np.sqrt((n * squares - total * total) / float(n) ** 2)
    mean.setflags(write=False)
    std.setflags(write=False)
    return mean, std


def read_cifar10(root=None, *, download: bool = True):
    """The raw CIFAR-10 arrays: ``(x_train, y_train, x_test, y_test, classes)``.

    x_* are uint8 (N, 3072) in the binary file's (C, H, W) order, y_* int64 labels 0-9,
    read-only numpy arrays shared by every caller (copy before modifying).
    """
    root = _data_root(root)
    if not is_extracted(root):
        if not download:
            raise FileNotFoundError(
                f"no extracted CIFAR-10 under {root} (expected {FOLDER}/ with {', '.join(REQUIRED_FILES)}); "
                "pass download=True, or point root / EOSTEACH_DATA at the folder that holds it"
            )
        download_cifar10(root)
    return _read_folder(str(_folder(root).resolve()))


def feature_stats(root=None, *, download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std (3072,) of the 50,000 training images, on the 0-255 scale."""
    read_cifar10(root, download=download)
    return _feature_stats(str(_folder(root).resolve()))


def _select_classes(classes) -> tuple[int, ...]:
    """``None`` -> all ten; an int k -> the first k; names or indices -> those, in that order."""
    if classes is None:
        return tuple(range(len(CLASSES)))
    if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
        k = validate.positive_int("classes", classes, minimum=2)
        if k > len(CLASSES):
            raise ValueError(f"classes must be at most {len(CLASSES)}, got {classes!r}")
        return tuple(range(k))
    if isinstance(classes, str):
        classes = classes.split(",")
    chosen = []
    for c in classes:
        if isinstance(c, str):
            validate.choice("classes", c.strip(), CLASSES)
            chosen.append(CLASSES.index(c.strip()))
        elif isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c < len(CLASSES):
            chosen.append(int(c))
        else:
            raise ValueError(f"classes must hold class names {CLASSES} or indices 0-9; got {c!r}")
    if len(set(chosen)) != len(chosen) or len(chosen) < 2:
        raise ValueError(f"classes must name at least two distinct classes, got {classes!r}")
    return tuple(chosen)


def _pick(labels: np.ndarray, chosen: tuple[int, ...], n: int | None, balanced: bool, what: str) -> np.ndarray:
    """Indices of the first n examples whose label is in ``chosen`` (in file order).

    ``balanced``: the first n // c of each class (the first n % c classes get one more),
    kept in file order.
    """
    in_chosen = np.isin(labels, chosen)
    available = int(in_chosen.sum())
    if n is None:
        return np.flatnonzero(in_chosen)
    if n > available:
        raise ValueError(f"{what} must be at most {available} for these classes, got {n}")
    if not balanced:
        return np.flatnonzero(in_chosen)[:n]
    per_class = [n // len(chosen) + (i < n % len(chosen)) for i in range(len(chosen))]
    picked = []
    for c, count in zip(chosen, per_class):
        of_class = np.flatnonzero(labels == c)
        if count > of_class.size:
            raise ValueError(f"{what}={n} balanced needs {count} images of class {CLASSES[c]!r}, only {of_class.size} exist")
        picked.append(of_class[:count])
    return np.sort(np.concatenate(picked))


def _targets(labels: np.ndarray, loss: str, n_classes: int, dtype) -> torch.Tensor:
    y = torch.from_numpy(np.ascontiguousarray(labels)).long()
    return one_hot(y, n_classes, dtype) if loss == "mse" else y


def _size_name(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def load_cifar10(
    n_train: int | None = 5000,
    *,
    n_test: int | None = None,
    root=None,
    download: bool = True,
    classes=None,
    balanced: bool = False,
    loss: str = "mse",
    device="cpu",
    dtype=torch.float32,
) -> Dataset:
    """CIFAR-10 preprocessed as in Cohen et al. (2021), as a ``Dataset``.

    n_train: the first n_train training images (5,000 = "cifar10-5k"; None = all 50,000).
    n_test: the first n_test test images (None = all 10,000).
    classes: None (all ten), an int k (the first k classes), or names / indices such as
        ("cat", "dog"); labels are renumbered 0..c-1 in the order given.
    balanced: take the first n // c images of each class instead of the first n overall.
    loss: "mse" gives one-hot targets (n, c), "ce" class indices (n,).
    Inputs: (n, 3072) of ``dtype`` on ``device``, standardised with the full training set.
    """
    validate.choice("loss", loss, LOSSES)
    validate.choice("balanced", balanced, (False, True))
    validate.choice("download", download, (True, False))
    if n_train is not None:
        n_train = validate.positive_int("n_train", n_train)
    if n_test is not None:
        n_test = validate.positive_int("n_test", n_test)
    chosen = _select_classes(classes)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a torch floating dtype such as torch.float32 or torch.float64, got {dtype!r}")
    device = config.device(device)

    x_train, y_train, x_test, y_test, _ = read_cifar10(root, download=download)
    mean, std = feature_stats(root, download=False)
    train_idx = _pick(y_train, chosen, n_train, balanced, "n_train")
    test_idx = _pick(y_test, chosen, n_test, balanced, "n_test")

    relabel = np.full(len(CLASSES), -1, dtype=np.int64)
    relabel[list(chosen)] = np.arange(len(chosen))

    mean_t = torch.tensor(mean, device=device, dtype=dtype)
    std_t = torch.tensor(std, device=device, dtype=dtype)

    def features(x: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        # (x/255 - m/255) / (s/255) = (x - m) / s; the pixels travel as bytes, then are
        # converted on the device (a quarter of the transfer, no float64 copy of 50k images).
        pixels = torch.from_numpy(x[idx]).to(device)
        return pixels.to(dtype).sub_(mean_t).div_(std_t)

    name = f"cifar10-{_size_name(len(train_idx))}"
    if balanced:
        name += "-balanced"
    if classes is not None:
        name += "-" + "+".join(CLASSES[c] for c in chosen)
    return Dataset(
        name=name,
        x_train=features(x_train, train_idx),
        y_train=_targets(relabel[y_train[train_idx]], loss, len(chosen), dtype).to(device),
        x_test=features(x_test, test_idx),
        y_test=_targets(relabel[y_test[test_idx]], loss, len(chosen), dtype).to(device),
        classes=tuple(CLASSES[c] for c in chosen),
        synthetic=False,
        loss=loss,
        note="CIFAR-10 (Krizhevsky, 2009), official binary version, standardised as in Cohen et al. (2021).",
    )


# --------------------------------------------------------------------------- synthetic


def synthetic(
    n_train: int = 1000,
    *,
    n_test: int = 1000,
    n_classes: int = 10,
    dim: int = INPUT_DIM,
    seed: int = 0,
    loss: str = "mse",
    separation: float = 1.0,
    device="cpu",
    dtype=torch.float32,
) -> Dataset:
    """A SYNTHETIC dataset for offline use (no download): it is NOT CIFAR-10.

    A Gaussian mixture: class means mu_c with independent N(0, (separation / 4)^2)
    coordinates, labels y uniform over the classes, x = mu_y + N(0, I_dim); then each
    feature is standardised with the mixture's exact (population) mean and standard
    deviation, the analogue of CIFAR-10's full-training-set statistics. Means, training
    labels, training noise, test labels and test noise come from five separate random
    streams, so the first n training examples do not depend on n_test and are the first n
    of any larger ``n_train`` (as "the first n" CIFAR-10 images are). Same shapes and
    target conventions as ``load_cifar10``; deterministic in ``seed`` on every platform.
    """
    n_train = validate.positive_int("n_train", n_train)
    n_test = validate.positive_int("n_test", n_test)
    n_classes = validate.positive_int("n_classes", n_classes, minimum=2)
    dim = validate.positive_int("dim", dim)
    seed = validate.positive_int("seed", seed, minimum=0)
    separation = validate.nonnegative("separation", separation)
    validate.choice("loss", loss, LOSSES)
    device = config.device(device)

    means = np.random.default_rng([seed, 0]).standard_normal((n_classes, dim)) * separation / 4.0
    # Mixture with uniform weights: E[x] = mean of the mu_c, Var[x_j] = 1 + variance of the mu_cj.
    centre = means.mean(axis=0)
    scale = np.sqrt(1.0 + ((means - centre) ** 2).mean(axis=0))

    def draw(n: int, stream: int) -> tuple[torch.Tensor, np.ndarray]:
        labels = np.random.default_rng([seed, stream]).integers(n_classes, size=n)
        noise = np.random.default_rng([seed, stream + 1]).standard_normal((n, dim))
        x = (means[labels] + noise - centre) / scale
        return torch.from_numpy(x).to(device=device, dtype=dtype), labels

    x_train, y_train = draw(n_train, 1)
    x_test, y_test = draw(n_test, 3)
    return Dataset(
        name=f"synthetic-{_size_name(n_train)} (not CIFAR-10)",
        x_train=x_train,
        y_train=_targets(y_train, loss, n_classes, dtype).to(device),
        x_test=x_test,
        y_test=_targets(y_test, loss, n_classes, dtype).to(device),
        classes=tuple(f"synthetic-{c}" for c in range(n_classes)),
        synthetic=True,
        loss=loss,
        note=(
            f"Synthetic data (seed {seed}): a {n_classes}-class Gaussian mixture in {dim} dimensions, "
            "NOT CIFAR-10. For offline testing; numbers from it are not the paper's."
        ),
    )


def load_dataset(name: str, **kwargs) -> Dataset:
    """``load_cifar10(**kwargs)`` for "cifar10", ``synthetic(**kwargs)`` for "synthetic".

    For "synthetic", CIFAR-only keywords are translated or dropped: ``classes`` (an int or
    a list) sets ``n_classes``; ``root``, ``download`` and ``balanced`` are ignored.
    """
    validate.choice("data", name, DATASETS)
    if name == "cifar10":
        return load_cifar10(**kwargs)
    for key in ("root", "download", "balanced"):
        kwargs.pop(key, None)
    classes = kwargs.pop("classes", None)
    if classes is not None:
        kwargs["n_classes"] = classes if isinstance(classes, int) else len(_select_classes(classes))
    if kwargs.get("n_train", 1) is None:
        kwargs.pop("n_train")
    if kwargs.get("n_test", 1) is None:
        kwargs.pop("n_test")
    return synthetic(**kwargs)


# --------------------------------------------------------------------------- download


def _safe_member_name(member: tarfile.TarInfo) -> str:
    """The member's normalised name; DownloadError if it could write outside the target."""
    name = member.name
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise DownloadError(f"refusing unsafe archive member {name!r} (absolute path or '..')")
    if not (member.isfile() or member.isdir()):
        raise DownloadError(f"refusing archive member {name!r}: links and special files are not allowed")
    return "/".join(p for p in parts if p not in ("", "."))


def _extract(archive: Path, root: Path) -> None:
    """Extract the expected members of ``archive`` into ``root/cifar-10-batches-bin``, atomically.

    Files are written into a hidden temporary folder next to the target, which is renamed
    into place only when every required file is there. tarfile's own extract is never
    called: each member's bytes are copied to a path built from the expected names only.
    """
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{FOLDER}.", suffix=".tmp"))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = _safe_member_name(member)
                if name not in EXPECTED_MEMBERS:
                    continue
                source = tar.extractfile(member)
                with source, open(staging / Path(name).name, "wb") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
                    target.flush()
                    os.fsync(target.fileno())
        missing = [n for n in REQUIRED_FILES if not (staging / n).is_file()]
        if missing:
            raise DownloadError(f"archive {archive.name} lacks {FOLDER}/{', '.join(missing)}")
        try:
            os.replace(staging, root / FOLDER)
        except OSError:
            if not is_extracted(root):  # else another process finished first: use its copy
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _remove_stale_partials(root: Path) -> None:
    """Delete partial downloads left by a process killed mid-download (not by a live one)."""
    now = time.time()
    for pattern in (f".{ARCHIVE_NAME}.*.part", f".{FOLDER}.*.tmp"):
        for path in root.glob(pattern):
            try:
                if now - path.stat().st_mtime > _STALE_PARTIAL_SECONDS:
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
            except OSError:
                pass


def _fetch(url: str, target, progress: bool, timeout: float) -> str:
    """Stream ``url`` into the open binary file ``target``; return the MD5 hex digest.

    Raises DownloadError when the server sends fewer bytes than it announced (a dropped
    connection ends the stream quietly in http.client, so the length is checked here).
    """
    from tqdm.auto import tqdm

    digest = hashlib.md5(usedforsecurity=False)  # an integrity check, not security
    received = 0
    with urllib.request.urlopen(url, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length is not None else None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=f"downloading {ARCHIVE_NAME}", disable=not progress) as bar:
            while chunk := response.read(1 << 20):
                target.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise DownloadError(f"download of {url} interrupted after {received} of {total} bytes; call again to restart it")
    return digest.hexdigest()


def download_cifar10(
    root=None,
    *,
    url: str = CIFAR10_URL,
    md5: str = CIFAR10_MD5,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download, verify and extract the CIFAR-10 binary archive; return the data folder.

    root: the data folder (default ``config.data_dir()``: ``$EOSTEACH_DATA`` or the
    platform cache); on return it holds ``cifar-10-batches-bin/``. Nothing is done when
    that folder is already complete.

    Safety: the archive is streamed to a hidden ``*.part`` temporary file, so an
    interrupted download never looks complete and the next call starts again from zero;
    its MD5 must equal ``md5`` (else DownloadError, and the file is deleted); only the
    expected members are extracted, and a member with an absolute path, ``..``, or a link
    is refused. The archive itself is deleted after extraction.
    """
    root = _data_root(root)
    if is_extracted(root):
        return root
    if (root / FOLDER).exists():
        raise DownloadError(
            f"{root / FOLDER} exists but is incomplete (needs {', '.join(REQUIRED_FILES)}); "
            "remove it or choose another data folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(root)
    fd, partial = tempfile.mkstemp(dir=root, prefix=f".{ARCHIVE_NAME}.", suffix=".part")
    partial = Path(partial)
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                got = _fetch(url, f, progress, timeout)
            except (OSError, http.client.HTTPException) as error:  # URLError, timeouts, resets
                raise DownloadError(f"download of {url} failed ({error}); call again to restart it") from error
        if got != md5.lower():
            raise DownloadError(f"checksum mismatch for {url}: MD5 {got}, expected {md5}; the file was deleted")
        _extract(partial, root)
    finally:
        partial.unlink(missing_ok=True)
    return root
