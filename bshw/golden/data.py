"""Data sets: MNIST-like IDX files and CIFAR-10 pickles, read strictly into torch tensors.

Every defect of a data file (missing, wrong magic or dims, truncated, trailing bytes, corrupt gzip,
checksum mismatch, bad labels) raises :class:`bshw.errors.BshwError` with one line naming the
file and the fault, never a traceback from gzip/struct/numpy.

Search order when no directory is named (:func:`resolve_data_dir`):
``$BSHW_DATA`` (the files themselves, or a subfolder named after the data set), then
``<repo>/../shared/data/<name>`` (the shared folder beside the checkout), then, for MNIST only,
the small subset committed in ``bshw/golden/data/mnist-subset/`` (see its README.md; rebuild it with
``python -m bshw.golden.data make-subset --src DIR --out DIR``).
"""

import argparse
import gzip
import hashlib
import os
import pickle
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bshw.errors import BshwError
from bshw.golden.config import DATASETS
from bshw.io import atomic_write_bytes, atomic_write_text

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SUBSET_DIR = Path(__file__).resolve().parent / "data" / "mnist-subset"
ENV_VAR = "BSHW_DATA"
SUMS = "SHA256SUMS"

# IDX format (LeCun et al., the MNIST distribution): 2 zero bytes, dtype byte (0x08 = uint8),
# number of dims, then one big-endian uint32 per dim, then the payload in C order.
IDX_FILES = {  # split -> (images file, labels file), names without .gz
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801
IMAGE_HW = (28, 28)
N_CLASSES = 10

CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"
CIFAR_SUBDIR = "cifar-10-batches-py"
CIFAR_ROWS = 10000  # images per canonical batch file
CIFAR_COLS = 3 * 32 * 32  # one row: 1024 R, then 1024 G, then 1024 B, each 32x32 row-major


@dataclass
class Dataset:
    """One data set, both splits, as stored (no normalisation: that belongs to the model).

    Attributes
    ----------
    name : {"mnist", "fashion-mnist", "cifar10"}
    source : str
        The directory actually read (for logs and reports).
    train_x, test_x : torch.Tensor
        uint8, ``[N, 28, 28]`` for MNIST-like sets, ``[N, 3, 32, 32]`` for CIFAR-10.
    train_y, test_y : torch.Tensor
        int64 ``[N]``, class indices 0..9.
    subset : bool
        True when the small committed MNIST subset was used.
    """

    name: str
    source: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    subset: bool

    def __str__(self) -> str:
        kind = " (committed subset)" if self.subset else ""
        return (f"{self.name}{kind} from {self.source}: train {tuple(self.train_x.shape)}, "
                f"test {tuple(self.test_x.shape)}")


# ----------------------------------------------------------------------------------------- IDX


def read_sums(directory) -> dict[str, str]:
    """Parse ``directory/SHA256SUMS`` (``sha256sum`` output) into {filename: hex}; {} if absent."""
    path = Path(directory) / SUMS
    if not path.is_file():
        return {}
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise BshwError(f"{path}: unreadable: {e}") from None
    sums = {}
    for i, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        digest, sep, name = line.partition(" ")
        name = name[1:] if name[:1] in " *" else name  # "  name" (text mode) or " *name" (binary)
        if not sep or len(digest) != 64 or not name or any(c not in "0123456789abcdefABCDEF" for c in digest):
            raise BshwError(f"{path}: line {i} is not '<sha256 hex>  <filename>': {line!r}")
        sums[name] = digest.lower()
    return sums


def _read_bytes(path: Path, sha256: str | None) -> bytes:
    """The file's bytes, checked against ``sha256`` when given, gunzipped when it ends in .gz."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise BshwError(f"{path.name}: cannot read {path}: {e.strerror or e}") from None
    if sha256 is not None:
        got = hashlib.sha256(raw).hexdigest()
        if got != sha256:
            raise BshwError(f"{path.name}: checksum mismatch: {SUMS} says {sha256[:16]}..., "
                            f"file has {got[:16]}... (corrupt or replaced file in {path.parent})")
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; EOFError: truncated
        raise BshwError(f"{path.name}: corrupt gzip: {e}") from None


def read_idx(path, *, expect: str | None = None, sha256: str | None = None) -> torch.Tensor:
    """Read one IDX file of MNIST images (uint8 ``[N, 28, 28]``) or labels (int64 ``[N]``).

    Parameters
    ----------
    path : str or Path
        The file, gzip-compressed when its name ends in ``.gz``, raw otherwise.
    expect : {"images", "labels"} or None
        What the file must hold; None: whatever its magic number says.
    sha256 : str or None
        Expected SHA-256 of the file as stored (before gunzip); None: not checked.

    Raises
    ------
    BshwError
        One line naming the file: unreadable, checksum mismatch, corrupt gzip, bad magic, wrong
        dims, truncated or trailing payload, a label outside 0..9.
    """
    if expect not in (None, "images", "labels"):
        raise BshwError(f"read_idx: expect={expect!r}: use 'images', 'labels' or None")
    path = Path(path)
    data = _read_bytes(path, sha256)
    name = path.name
    if len(data) < 4:
        raise BshwError(f"{name}: truncated: {len(data)} bytes, not even an IDX magic number")
    magic = int.from_bytes(data[:4], "big")
    kinds = {IMAGE_MAGIC: "images", LABEL_MAGIC: "labels"}
    if magic not in kinds or (expect and kinds[magic] != expect):
        want = {"images": f"0x{IMAGE_MAGIC:08x}", "labels": f"0x{LABEL_MAGIC:08x}"}
        want = want[expect] if expect else f"0x{IMAGE_MAGIC:08x} or 0x{LABEL_MAGIC:08x}"
        raise BshwError(f"{name}: bad magic number 0x{magic:08x}: expected {want} "
                        f"(IDX uint8 {expect or 'images or labels'}); not an MNIST IDX file?")
    kind, ndim = kinds[magic], magic & 0xFF
    head = 4 + 4 * ndim
    if len(data) < head:
        raise BshwError(f"{name}: truncated: {len(data)} bytes, shorter than its {head}-byte header")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    n = dims[0]
    if kind == "images" and tuple(dims[1:]) != IMAGE_HW:
        raise BshwError(f"{name}: images are {dims[1]}x{dims[2]}, expected "
                        f"{IMAGE_HW[0]}x{IMAGE_HW[1]} (MNIST-like data only)")
    if n == 0:
        raise BshwError(f"{name}: header says 0 {kind}: empty file")
    per = int(np.prod(dims[1:], dtype=np.int64))  # bytes per item (1 for labels)
    held = len(data) - head
    if held != n * per:
        unit = f"{kind} of {dims[1]}x{dims[2]}" if kind == "images" else kind
        what = "truncated" if held < n * per else "trailing bytes"
        holds = f"{held // per} {kind}" + (f" + {held % per} bytes" if held % per else "")
        raise BshwError(f"{name}: {what}: header says {n} {unit}, file holds {holds}")
    arr = torch.frombuffer(bytearray(memoryview(data)[head:]), dtype=torch.uint8)
    if kind == "images":
        return arr.view(n, *IMAGE_HW)
    if int(arr.max()) >= N_CLASSES:
        i = int(torch.nonzero(arr >= N_CLASSES)[0])
        raise BshwError(f"{name}: label {int(arr[i])} at index {i} is outside 0..{N_CLASSES - 1}")
    return arr.long()


def _idx_path(directory: Path, stem: str) -> Path | None:
    """``stem.gz`` or ``stem`` in ``directory`` (the .gz when both are there), None if neither."""
    for p in (directory / f"{stem}.gz", directory / stem):
        if p.is_file():
            return p
    return None


def _has_idx(directory: Path) -> bool:
    return any(_idx_path(directory, s) for pair in IDX_FILES.values() for s in pair)


def _has_cifar(directory: Path) -> bool:
    return (directory / CIFAR_TEST).is_file() or (directory / CIFAR_SUBDIR / CIFAR_TEST).is_file()


def load_idx_dir(directory, name: str = "mnist", subset: bool = False) -> Dataset:
    """Read the four standard IDX files of ``directory``, verifying any listed in its SHA256SUMS."""
    directory = Path(directory)
    sums = read_sums(directory)
    out = {}
    for split, stems in IDX_FILES.items():
        paths = []
        for stem in stems:
            p = _idx_path(directory, stem)
            if p is None:
                raise BshwError(f"{stem}: missing: neither {stem}.gz nor {stem} is in {directory}")
            paths.append(p)
        x = read_idx(paths[0], expect="images", sha256=sums.get(paths[0].name))
        y = read_idx(paths[1], expect="labels", sha256=sums.get(paths[1].name))
        if len(x) != len(y):
            raise BshwError(f"{paths[1].name}: holds {len(y)} labels but {paths[0].name} "
                            f"holds {len(x)} images")
        out[split] = (x, y)
    return Dataset(name, str(directory), *out["train"], *out["test"], subset=subset)


# ------------------------------------------------------------------------------------ CIFAR-10


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a data file must not run code."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refuses to load {module}.{name} (only numpy arrays)")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not path.is_file():
        raise BshwError(f"{path.name}: missing: not in {path.parent} (expected the CIFAR-10 "
                        f"python version: {', '.join(CIFAR_TRAIN)}, {CIFAR_TEST})")
    try:
        with open(path, "rb") as f:
            d = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as e:  # any unpickling fault of a foreign file is a data error
        raise BshwError(f"{path.name}: not a readable CIFAR-10 pickle: "
                        f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        keys = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise BshwError(f"{path.name}: expected a dict with keys b'data' and b'labels', got {keys}")
    x, y = d[b"data"], d[b"labels"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.shape != (rows, CIFAR_COLS):
        got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise BshwError(f"{path.name}: b'data' is {got}, expected uint8 ({rows}, {CIFAR_COLS})")
    try:
        y = np.asarray(y, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise BshwError(f"{path.name}: b'labels' is not a list of integers") from None
    if y.shape != (rows,):
        raise BshwError(f"{path.name}: b'labels' has shape {y.shape}, expected ({rows},)")
    bad = np.flatnonzero((y < 0) | (y >= N_CLASSES))
    if bad.size:
        raise BshwError(f"{path.name}: label {y[bad[0]]} at index {bad[0]} is outside 0..{N_CLASSES - 1}")
    return torch.from_numpy(x.reshape(rows, 3, 32, 32).copy()), torch.from_numpy(y)


def load_cifar10(data_dir, *, rows: int = CIFAR_ROWS) -> Dataset:
    """Read CIFAR-10's "python version" (``data_batch_1..5``, ``test_batch``) into a :class:`Dataset`.

    Parameters
    ----------
    data_dir : str or Path
        Holds the six pickles, or holds them in its ``cifar-10-batches-py/`` subfolder (the layout
        of the unpacked ``cifar-10-python.tar.gz``).
    rows : int
        Images per batch file: 10000 in CIFAR-10; smaller only for tests.
    """
    d = Path(data_dir)
    if not d.is_dir():
        raise BshwError(f"CIFAR-10 directory {d} does not exist")
    if not (d / CIFAR_TEST).is_file() and (d / CIFAR_SUBDIR).is_dir():
        d = d / CIFAR_SUBDIR
    parts = [_read_cifar_batch(d / f, rows) for f in CIFAR_TRAIN]
    test_x, test_y = _read_cifar_batch(d / CIFAR_TEST, rows)
    return Dataset("cifar10", str(d), torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]),
                   test_x, test_y, subset=False)


# ------------------------------------------------------------------------------- search & load


def _where_to_put(name: str) -> str:
    files = (f"{CIFAR_SUBDIR}/ ({', '.join(CIFAR_TRAIN)}, {CIFAR_TEST})" if name == "cifar10"
             else "the four IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                  "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])")
    return (f"no {name} data found: put {files} in {SHARED_DATA / name}, or in a directory named by "
            f"${ENV_VAR} or --data (this machine has no download)")


def resolve_data_dir(data_dir: str | None, name: str = "mnist") -> tuple[Path, bool]:
    """Find the directory to read ``name`` from; returns ``(directory, is_committed_subset)``.

    An explicit ``data_dir`` must hold the data set, itself or in a subfolder named ``name``;
    it is never silently replaced. With None the search is ``$BSHW_DATA`` (same rule; a path that
    does not exist is an error), ``<repo>/../shared/data/<name>``, then for MNIST the committed
    subset. A directory is taken when it holds any of the data set's files; missing ones are
    reported when it is loaded.
    """
    if name not in DATASETS:
        raise BshwError(f"unknown data set {name!r}: use one of {', '.join(DATASETS)}")
    has = _has_cifar if name == "cifar10" else _has_idx

    def pick(d: Path, what: str) -> Path | None:
        if not d.is_dir():
            raise BshwError(f"{what} {d} does not exist or is not a directory")
        return next((c for c in (d, d / name) if c.is_dir() and has(c)), None)

    if data_dir is not None:
        found = pick(Path(data_dir).expanduser(), "data directory")
        if found is None:
            raise BshwError(f"data directory {data_dir} holds no {name} files; "
                            + _where_to_put(name).split(": ", 1)[1])
    else:
        found = None
        if os.environ.get(ENV_VAR):
            found = pick(Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}")
        for d in [SHARED_DATA / name] + ([SUBSET_DIR] if name == "mnist" else []):
            if found is None and d.is_dir() and has(d):
                found = d
        if found is None:
            raise BshwError(_where_to_put(name))
    return found, found.resolve() == SUBSET_DIR


def load_dataset(name: str = "mnist", data_dir: str | None = None) -> Dataset:
    """Load ``name`` ("mnist", "fashion-mnist" or "cifar10") from ``data_dir`` or the default search.

    See :func:`resolve_data_dir` for the search; every file problem raises a one-line BshwError.
    """
    d, subset = resolve_data_dir(data_dir, name)
    return load_cifar10(d) if name == "cifar10" else load_idx_dir(d, name, subset)


# ------------------------------------------------------------------------------ committed subset


def idx_bytes(t: torch.Tensor) -> bytes:
    """Encode a uint8 image tensor ``[N, H, W]`` or a label tensor ``[N]`` as an IDX file."""
    a = t.to(torch.uint8).contiguous().numpy()
    magic = IMAGE_MAGIC if a.ndim == 3 else LABEL_MAGIC
    return b"".join(int(v).to_bytes(4, "big") for v in (magic, *a.shape)) + a.tobytes()


def balanced_indices(y: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n // 10`` items of each class in source order (classes 0.. get one more for
    the remainder), returned in source order."""
    if not 1 <= n <= len(y):
        raise BshwError(f"subset size {n} must be between 1 and {len(y)}")
    quota = torch.full((N_CLASSES,), n // N_CLASSES)
    quota[: n % N_CLASSES] += 1
    onehot = torch.nn.functional.one_hot(y, N_CLASSES)
    rank = (onehot.cumsum(0) * onehot).sum(1) - 1  # rank of each item within its class
    keep = torch.nonzero(rank < quota[y]).flatten()
    if len(keep) != n:
        raise BshwError(f"cannot take {n} class-balanced items: some class has fewer than {int(quota.max())}")
    return keep


def make_subset(src, out, n_train: int = 3000, n_test: int = 1000) -> list[Path]:
    """Write a class-balanced MNIST subset of ``src`` to ``out`` as IDX ``.gz`` files.

    Byte-reproducible: gzip level 9 with mtime 0 and no file name. Also writes ``SHA256SUMS``
    and ``README.md``; every file is written atomically. Returns the paths written.
    """
    ds = load_dataset("mnist", src)
    out = Path(out)
    written, sums = [], []
    for split, n, x, y in (("train", n_train, ds.train_x, ds.train_y), ("test", n_test, ds.test_x, ds.test_y)):
        keep = balanced_indices(y, n)
        for stem, t in zip(IDX_FILES[split], (x[keep], y[keep])):
            data = gzip.compress(idx_bytes(t), compresslevel=9, mtime=0)  # no name, fixed mtime
            written.append(atomic_write_bytes(out / f"{stem}.gz", data))
            sums.append(f"{hashlib.sha256(data).hexdigest()}  {stem}.gz\n")
    written.append(atomic_write_text(out / SUMS, "".join(sums)))
    written.append(atomic_write_text(out / "README.md", _SUBSET_README.format(
        n_train=n_train, n_test=n_test, per_train=n_train / N_CLASSES, per_test=n_test / N_CLASSES)))
    return written


_SUBSET_README = """\
# MNIST subset committed with bshw

A small class-balanced slice of MNIST so that tests, the demo and CI run with no data set
installed. `bshw.golden.data.load_dataset("mnist")` falls back to it only when neither `$BSHW_DATA`
nor `../shared/data/mnist` (beside the checkout) holds MNIST; `Dataset.subset` is then True.
Accuracies on it are for smoke tests only, not comparable with the paper.

- train: {n_train} images, the first {per_train:g} of each digit of the canonical 60,000-image
  training set, kept in their original order;
- test: {n_test} images, the first {per_test:g} of each digit of the canonical 10,000-image test set,
  likewise.

Standard IDX files (uint8 images 28x28, uint8 labels), gzip level 9 with mtime 0 so the bytes
are reproducible; `SHA256SUMS` covers them and is checked on every load.

Made with:

    python -m bshw.golden.data make-subset --src ../shared/data/mnist --out bshw/golden/data/mnist-subset \\
        --train {n_train} --test {n_test}
"""


# ---------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``check``: load and summarise a data set; ``make-subset``: rebuild the committed subset."""
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = sub.add_parser("check", help="load a data set, verify it and print its shape")
    p.add_argument("--name", default="mnist", choices=DATASETS)
    p.add_argument("--data", default=None, help="directory to read (default: the search order)")
    p = sub.add_parser("make-subset", help="write a class-balanced MNIST subset as IDX .gz files")
    p.add_argument("--src", required=True, help="directory holding full MNIST")
    p.add_argument("--out", required=True, help="directory to write (e.g. bshw/golden/data/mnist-subset)")
    p.add_argument("--train", type=int, default=3000, help="training images (default 3000)")
    p.add_argument("--test", type=int, default=1000, help="test images (default 1000)")


def run(args) -> int:
    if args.data_command == "check":
        ds = load_dataset(args.name, args.data)
        print(ds)
        print("train labels per class:", torch.bincount(ds.train_y, minlength=N_CLASSES).tolist())
        print("test labels per class: ", torch.bincount(ds.test_y, minlength=N_CLASSES).tolist())
    else:
        for p in make_subset(args.src, args.out, args.train, args.test):
            print(f"wrote {p} ({p.stat().st_size} bytes)")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bshw.golden.data", description="bshw data sets")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except BshwError as e:
        print(f"bshw.golden.data: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
