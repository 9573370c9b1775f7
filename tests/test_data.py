"""bshw.golden.data: real MNIST, the committed subset, and every data-file fault as a one-line BshwError."""

import gzip
import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import bshw.golden
from bshw.errors import BshwError
from bshw.golden import data
from bshw.golden.data import (
    idx_bytes,
    load_cifar10,
    load_dataset,
    read_idx,
    resolve_data_dir,
)

REPO = Path(bshw.golden.__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
need_mnist = pytest.mark.skipif(not (SHARED / "mnist").is_dir(),
                                reason=f"full MNIST not installed at {SHARED / 'mnist'}")
STEMS = [s for pair in data.IDX_FILES.values() for s in pair]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("BSHW_DATA", raising=False)


def _one_line(e: pytest.ExceptionInfo, *needles):
    msg = str(e.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, msg
    return msg


def _write_idx(d: Path, n_train=20, n_test=10, gz=True, sums=False):
    """A tiny valid IDX data set in ``d``."""
    g = torch.Generator().manual_seed(0)
    d.mkdir(parents=True, exist_ok=True)
    lines = []
    for (xs, ys), n in zip(data.IDX_FILES.values(), (n_train, n_test)):
        for stem, t in ((xs, torch.randint(0, 256, (n, 28, 28), generator=g)), (ys, torch.arange(n) % 10)):
            b = gzip.compress(idx_bytes(t)) if gz else idx_bytes(t)
            name = stem + (".gz" if gz else "")
            (d / name).write_bytes(b)
            lines.append(f"{hashlib.sha256(b).hexdigest()}  {name}\n")
    if sums:
        (d / "SHA256SUMS").write_text("".join(lines))
    return d


# ------------------------------------------------------------------------------------ good data


@need_mnist
def test_real_mnist_canonical_counts():
    ds = load_dataset("mnist", str(SHARED / "mnist"))
    assert not ds.subset and ds.name == "mnist"
    assert ds.train_x.shape == (60000, 28, 28) and ds.test_x.shape == (10000, 28, 28)
    assert ds.train_x.dtype == torch.uint8 and ds.train_y.dtype == torch.int64
    assert torch.bincount(ds.train_y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(ds.test_y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert int(ds.train_x.max()) == 255 and int(ds.train_x.min()) == 0


@need_mnist
def test_default_search_prefers_shared_then_env(tmp_path, monkeypatch):
    assert resolve_data_dir(None, "mnist") == (SHARED / "mnist", False)
    _write_idx(tmp_path / "mnist")  # $BSHW_DATA holding a subfolder named after the data set
    monkeypatch.setenv("BSHW_DATA", str(tmp_path))
    assert resolve_data_dir(None, "mnist") == (tmp_path / "mnist", False)
    assert len(load_dataset().train_x) == 20


@need_mnist
def test_committed_subset_is_reproducible(tmp_path):
    data.make_subset(SHARED / "mnist", tmp_path)  # defaults: 3000 + 1000
    for f in ("SHA256SUMS", *(s + ".gz" for s in STEMS)):
        assert (tmp_path / f).read_bytes() == (data.SUBSET_DIR / f).read_bytes(), f


def test_subset_loads_and_verifies(monkeypatch):
    monkeypatch.setattr(data, "SHARED_DATA", Path("/nonexistent-shared"))
    ds = load_dataset("mnist")  # nothing else found: the committed subset
    assert ds.subset and Path(ds.source) == data.SUBSET_DIR
    assert ds.train_x.shape == (3000, 28, 28) and ds.test_x.shape == (1000, 28, 28)
    assert torch.bincount(ds.train_y).tolist() == [300] * 10 and torch.bincount(ds.test_y).tolist() == [100] * 10
    sums = data.read_sums(data.SUBSET_DIR)
    assert sorted(sums) == sorted(s + ".gz" for s in STEMS)
    for name, h in sums.items():
        assert hashlib.sha256((data.SUBSET_DIR / name).read_bytes()).hexdigest() == h
    size = sum(p.stat().st_size for p in data.SUBSET_DIR.iterdir())
    assert size < 2_000_000
    with pytest.raises(BshwError) as e:  # the subset is MNIST only
        load_dataset("fashion-mnist")
    _one_line(e, "no fashion-mnist data found", "BSHW_DATA")


def test_make_subset_balanced_and_byte_stable(tmp_path):
    a = data.make_subset(data.SUBSET_DIR, tmp_path / "a", n_train=25, n_test=10)
    data.make_subset(data.SUBSET_DIR, tmp_path / "b", n_train=25, n_test=10)
    assert all((tmp_path / "b" / p.name).read_bytes() == p.read_bytes() for p in a)
    ds = load_dataset("mnist", str(tmp_path / "a"))
    assert torch.bincount(ds.train_y).tolist() == [3] * 5 + [2] * 5 and len(ds.test_y) == 10
    with pytest.raises(BshwError, match="subset size 0"):
        data.make_subset(data.SUBSET_DIR, tmp_path / "c", n_train=0)


def test_raw_and_gz_give_same_tensors(tmp_path):
    gz = load_dataset("mnist", str(_write_idx(tmp_path / "gz")))
    raw = load_dataset("mnist", str(_write_idx(tmp_path / "raw", gz=False)))
    for f in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(gz, f), getattr(raw, f))
    assert raw.train_y.tolist() == [i % 10 for i in range(20)]
    # both forms present: the .gz wins (SHA256SUMS files usually list the .gz)
    (tmp_path / "gz" / STEMS[0]).write_bytes(b"junk")
    assert torch.equal(load_dataset("mnist", str(tmp_path / "gz")).train_x, gz.train_x)


# ----------------------------------------------------------------------------------- bad data


def _corrupt(tmp_path, stem, payload: bytes, gz=True):
    d = _write_idx(tmp_path / "d", gz=gz)
    (d / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(payload) if gz else payload)
    return d


def _hdr(*vals):
    return b"".join(v.to_bytes(4, "big") for v in vals)


TL, TI = "t10k-labels-idx1-ubyte", "t10k-images-idx3-ubyte"
BAD = {  # case -> (file, its bytes, words the message must hold)
    "bad magic": (TI, _hdr(0x804, 10, 28, 28) + bytes(7840), "bad magic number 0x00000804"),
    "labels magic in images": (TI, _hdr(0x801, 10) + bytes(10), "bad magic number 0x00000801"),
    "wrong dims": (TI, _hdr(0x803, 10, 32, 32) + bytes(10240), "images are 32x32, expected 28x28"),
    "truncated header": (TI, _hdr(0x803, 10), "shorter than its 16-byte header"),
    "truncated payload": (TL, _hdr(0x801, 10) + bytes(9), "truncated: header says 10 labels, file holds 9 labels"),
    "truncated images": (TI, _hdr(0x803, 10) + _hdr(28, 28) + bytes(784 * 9 + 5),
                         "truncated: header says 10 images of 28x28, file holds 9 images + 5 bytes"),
    "trailing bytes": (TL, _hdr(0x801, 10) + bytes(11), "trailing bytes: header says 10 labels, file holds 11"),
    "label count mismatch": (TL, _hdr(0x801, 9) + bytes(9), "holds 9 labels but t10k-images-idx3-ubyte.gz holds 10"),
    "bad label value": (TL, _hdr(0x801, 10) + bytes(4) + b"\x0c" + bytes(5), "label 12 at index 4 is outside 0..9"),
    "empty": (TL, _hdr(0x801, 0), "header says 0 labels"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_idx_file(tmp_path, case):
    stem, payload, needle = BAD[case]
    with pytest.raises(BshwError) as e:
        load_dataset("mnist", str(_corrupt(tmp_path, stem, payload)))
    _one_line(e, stem + ".gz:", needle)


def test_bad_raw_file_and_read_idx_expect(tmp_path):
    d = _corrupt(tmp_path, TL, _hdr(0x801, 10) + bytes(11), gz=False)
    with pytest.raises(BshwError) as e:
        load_dataset("mnist", str(d))
    _one_line(e, TL + ": trailing bytes")
    with pytest.raises(BshwError) as e:
        read_idx(d / "t10k-images-idx3-ubyte", expect="labels")
    _one_line(e, "t10k-images-idx3-ubyte: bad magic number 0x00000803: expected 0x00000801")


@pytest.mark.parametrize("how", ["truncated", "bit flip", "not gzip"])
def test_corrupt_gzip(tmp_path, how):
    d = _write_idx(tmp_path / "d")
    p = d / (TI + ".gz")
    b = bytearray(p.read_bytes())
    if how == "truncated":
        b = b[: len(b) // 2]
    elif how == "bit flip":
        b[len(b) // 2] ^= 0xFF
    else:
        b[:2] = b"PK"
    p.write_bytes(bytes(b))
    with pytest.raises(BshwError) as e:
        load_dataset("mnist", str(d))
    _one_line(e, TI + ".gz: corrupt gzip")


def test_missing_file(tmp_path):
    d = _write_idx(tmp_path / "d")
    (d / (TL + ".gz")).unlink()
    with pytest.raises(BshwError) as e:
        load_dataset("mnist", str(d))
    _one_line(e, TL, "missing", str(d))


def test_checksum_mismatch_and_bad_sums(tmp_path):
    d = _write_idx(tmp_path / "d", sums=True)
    assert len(load_dataset("mnist", str(d)).test_y) == 10  # listed and correct: loads
    good = (d / (TL + ".gz")).read_bytes()
    (d / (TL + ".gz")).write_bytes(gzip.compress(gzip.decompress(good), compresslevel=1, mtime=1))
    with pytest.raises(BshwError) as e:
        load_dataset("mnist", str(d))
    _one_line(e, TL + ".gz: checksum mismatch")
    (d / "SHA256SUMS").write_text("not a checksum line\n")
    with pytest.raises(BshwError) as e:
        load_dataset("mnist", str(d))
    _one_line(e, "SHA256SUMS: line 1")


def test_explicit_dir_never_falls_back(tmp_path, monkeypatch):
    with pytest.raises(BshwError) as e:
        load_dataset("mnist", str(tmp_path / "nope"))
    _one_line(e, str(tmp_path / "nope"), "does not exist")
    with pytest.raises(BshwError) as e:  # exists but empty: no fallback to shared or subset
        load_dataset("mnist", str(tmp_path))
    _one_line(e, str(tmp_path), "holds no mnist files")
    monkeypatch.setenv("BSHW_DATA", str(tmp_path / "nope"))
    with pytest.raises(BshwError) as e:
        load_dataset("mnist")
    _one_line(e, "$BSHW_DATA", "does not exist")
    with pytest.raises(BshwError, match="unknown data set 'svhn'"):
        load_dataset("svhn")


# ------------------------------------------------------------------------------------ CIFAR-10


def _write_cifar(d: Path, rows=4, sub=True):
    d = d / data.CIFAR_SUBDIR if sub else d
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for f in (*data.CIFAR_TRAIN, data.CIFAR_TEST):
        batch = {b"batch_label": f.encode(), b"labels": [int(v) for v in rng.integers(0, 10, rows)],
                 b"data": rng.integers(0, 256, (rows, 3072), dtype=np.uint8)}
        (d / f).write_bytes(pickle.dumps(batch))
    return d


def test_cifar10_loads(tmp_path):
    d = _write_cifar(tmp_path)
    assert resolve_data_dir(str(tmp_path), "cifar10") == (tmp_path, False)
    ds = load_cifar10(tmp_path, rows=4)  # finds cifar-10-batches-py/ itself
    assert ds.train_x.shape == (20, 3, 32, 32) and ds.test_x.shape == (4, 3, 32, 32)
    assert ds.train_x.dtype == torch.uint8 and ds.train_y.dtype == torch.int64
    raw = pickle.loads((d / "data_batch_2").read_bytes())
    x = raw[b"data"][1]  # channel-major rows: R plane, then G, then B
    assert ds.train_x[5, 1, 0, 2] == x[1024 + 2] and ds.train_x[5, 2, 31, 31] == x[3071]
    assert ds.train_y[4:8].tolist() == raw[b"labels"]
    with pytest.raises(BshwError) as e:  # the canonical 10000 rows are the default
        load_cifar10(tmp_path)
    _one_line(e, "data_batch_1: b'data' is uint8 (4, 3072), expected uint8 (10000, 3072)")


@pytest.mark.parametrize("case, needle", [
    ("truncated", "data_batch_3: not a readable CIFAR-10 pickle"),
    ("no labels", "data_batch_3: expected a dict with keys b'data' and b'labels'"),
    ("short labels", "data_batch_3: b'labels' has shape (3,), expected (4,)"),
    ("bad label", "data_batch_3: label 10 at index 0"),
    ("float data", "data_batch_3: b'data' is float64 (4, 3072)"),
    ("code", "data_batch_3: not a readable CIFAR-10 pickle: UnpicklingError: refuses to load"),
    ("missing", "data_batch_3: missing"),
])
def test_bad_cifar_pickle(tmp_path, case, needle):
    d = _write_cifar(tmp_path, sub=False)
    p = d / "data_batch_3"
    good = pickle.loads(p.read_bytes())
    bad = {
        "truncated": lambda: p.read_bytes()[:100],
        "no labels": lambda: pickle.dumps({b"data": good[b"data"]}),
        "short labels": lambda: pickle.dumps({**good, b"labels": [1, 2, 3]}),
        "bad label": lambda: pickle.dumps({**good, b"labels": [10, 1, 2, 3]}),
        "float data": lambda: pickle.dumps({**good, b"data": good[b"data"].astype(float)}),
        "code": lambda: pickle.dumps(__import__("os").system),
        "missing": lambda: None,
    }[case]()
    p.unlink()
    if bad is not None:
        p.write_bytes(bad)
    with pytest.raises(BshwError) as e:
        load_cifar10(d, rows=4)
    _one_line(e, needle)
