"""Atomic file output: a reader never sees a half-written file, a failed run leaves none behind.

Every write goes to a hidden temporary file ``.NAME.PID.XXXXXXXX.tmp`` in the target's folder and is
renamed over the target once complete. Any OS failure (a file where a folder should be, a read-only
folder or file system, a full disk, ...) is raised as one :class:`bshw.errors.BshwError` naming
the path and the reason, and the temporary file is removed.

Stale temporary files. A process killed during a write (kill -9, power loss) cannot remove its
temporary file. The next atomic write into the same folder removes hidden temporary files of this
module's naming (``.NAME.PID.XXXXXXXX.tmp``, and the older ``.NAME.XXXXXXXX.tmp``) when

* their writer's PID (in the name) is not a live process on this machine, or
* they are older than :data:`STALE_AFTER_S` (10 minutes; an atomic write takes well under a second
  because the data is prepared in memory first, so such a file belongs to no running write).

Only regular files whose names match exactly are touched, never other hidden files. A folder shared
between machines (NFS) should rely on the age rule alone: a PID is only meaningful on its own
machine, which is why a live PID never protects a file older than 10 minutes and a dead PID only
ever removes files that this machine's processes may have written (same host name part).

Run directories are locked with :func:`run_lock` (``fcntl.flock`` on ``DIR/.bshw.lock``).
"""

import contextlib
import json
import os
import re
import socket
import tempfile
import time
import zlib
from pathlib import Path

from bshw.errors import BshwError

STALE_AFTER_S = 600  # temporary files older than this are removed whatever their PID says
LOCK_NAME = ".bshw.lock"
# .NAME.HOST-PID.RANDOM.tmp (this version) and .NAME.RANDOM.tmp (mkstemp's default, earlier versions)
_TMP_NEW = re.compile(r"^\..+\.([0-9a-f]{4})-(\d+)\.[A-Za-z0-9_]{8}\.tmp$")
_TMP_OLD = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def _host_tag() -> str:
    return f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFF:04x}"


def _reason(e: OSError) -> str:
    """The OS's words for ``e`` ("No space left on device"), without the path."""
    return e.strerror or type(e).__name__


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # never trust a nonsense PID: leave the file to the age rule
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def clean_stale_temps(folder) -> list:
    """Remove stale temporary files of interrupted atomic writes in ``folder`` (rules: module doc).

    Returns the paths removed; never raises (a file that cannot be removed is left alone).
    """
    removed = []
    now, host = time.time(), _host_tag()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        name = e.name
        if not (name.startswith(".") and name.endswith(".tmp")):
            continue
        m = _TMP_NEW.match(name)
        if not m and not _TMP_OLD.match(name):
            continue
        try:
            if not e.is_file(follow_symlinks=False):
                continue
            old = now - e.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S
            dead = m is not None and m.group(1) == host and not _pid_alive(int(m.group(2)))
            if old or dead:
                os.unlink(e.path)
                removed.append(Path(e.path))
        except OSError:
            continue
    return removed


def ensure_dir(path, what: str = "folder") -> Path:
    """Create the folder ``path`` (and its parents) or raise a one-line BshwError saying why not."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise BshwError(f"cannot create {what} {path}: a file of that name exists") from None
    except NotADirectoryError:
        raise BshwError(f"cannot create {what} {path}: {_file_above(path) or 'a parent'} is a file, "
                        "not a folder") from None
    except OSError as e:
        raise BshwError(f"cannot create {what} {path}: {_reason(e)}") from None
    return path


def _file_above(path: Path):
    for p in path.parents:
        try:
            if p.exists() and not p.is_dir():
                return p
        except OSError:
            return None
    return None


def _nearest_existing(path: Path) -> Path:
    p = path
    while True:
        try:
            if p.exists() or p.is_symlink():
                return p
        except OSError:
            return p
        if p.parent == p:
            return p
        p = p.parent


def check_writable(path, *, folder: bool = False, what: str = "output") -> Path:
    """Fail early, without creating anything, when ``path`` cannot be written.

    ``folder``: ``path`` is a folder to create or fill (a run directory, ``--out rtl``); else a file.
    Checks what can be known in advance (a file where a folder is needed or the reverse, a parent
    that is a file, a folder without write permission or on a read-only file system); a full disk
    shows only when writing, where the atomic writers report it.
    """
    path = Path(path)
    try:
        if folder:
            if path.exists() and not path.is_dir():
                raise BshwError(f"cannot write into {what} {path}: it is a file, not a folder")
        elif path.is_dir():
            raise BshwError(f"cannot write {what} {path}: it is a folder")
    except OSError as e:
        raise BshwError(f"cannot write {what} {path}: {_reason(e)}") from None
    base = _nearest_existing(path if folder else path.parent)
    if not base.is_dir():
        raise BshwError(f"cannot write {what} {path}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        try:
            ro = bool(os.statvfs(base).f_flag & os.ST_RDONLY)
        except OSError:
            ro = False
        why = "read-only file system" if ro else "permission denied"
        raise BshwError(f"cannot write {what} {path}: {base} is not writable ({why})")
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Raises BshwError (one line: the path and the OS's reason) when the folder cannot be made or the
    file cannot be written; nothing is left behind then.
    """
    path = Path(path)
    ensure_dir(path.parent)
    if path.is_dir():
        raise BshwError(f"cannot write {path}: it is a folder")
    clean_stale_temps(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_host_tag()}-{os.getpid()}.", suffix=".tmp",
                                   dir=path.parent)
    except OSError as e:
        raise BshwError(f"cannot write {path}: {_reason(e)}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise BshwError(f"cannot write {path}: {_reason(e)}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(path, obj) -> Path:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


# image formats of matplotlib's Agg-based savefig (checked without importing matplotlib)
PLOT_FORMATS = ("png", "pdf", "svg", "svgz", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp")


def plot_format(path, what: str = "plot") -> str:
    """The image format of ``path``'s suffix (PNG when it has none); BshwError for an unknown one."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if not suffix:
        return "png"
    if suffix not in PLOT_FORMATS:
        raise BshwError(f"{what} {path}: unsupported image format .{suffix} (use one of "
                        + ", ".join("." + f for f in PLOT_FORMATS) + ")")
    return suffix


def atomic_savefig(path, fig, **kwargs) -> Path:
    """Save a matplotlib figure atomically (format by the path's suffix, PNG without one)."""
    import io

    fmt = plot_format(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, **kwargs)
    return atomic_write_bytes(path, buf.getvalue())


# -- run directory lock -----------------------------------------------------------------------------
_held: dict = {}  # resolved folder -> [fd, depth, created]: re-entrant within one process


@contextlib.contextmanager
def run_lock(folder, what: str = "run directory"):
    """Hold an exclusive lock on ``folder`` (created if needed) for the ``with`` block.

    ``fcntl.flock`` on ``folder/.bshw.lock``, non-blocking: while another process holds it, a
    one-line BshwError names that process's PID. Re-entrant in one process (``bshw flow`` may lock
    a folder that ``fit`` locks again). On exit the lock file is removed, and the folder too when
    this lock created it and it is still empty (a run that failed before writing leaves nothing).
    The lock dies with its process, so a killed run never leaves a folder locked.
    """
    import fcntl

    folder = Path(folder)
    created = not folder.exists()
    ensure_dir(folder, what)
    key = str(folder.resolve())
    if key in _held:
        _held[key][1] += 1
        try:
            yield folder
        finally:
            _held[key][1] -= 1
        return
    lock = folder / LOCK_NAME
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            if created:
                _rmdir_if_empty(folder)
            raise BshwError(f"cannot lock {what} {folder}: {_reason(e)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            except OSError:
                holder = "unknown"
            os.close(fd)
            raise BshwError(f"{what} {folder} is in use by another bshw run (pid {holder}); wait for it "
                            "to finish or choose another --out") from None
        try:  # the holder before us may have removed the file between our open and our flock
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:
        pass  # the lock holds without the PID note
    _held[key] = [fd, 1, created]
    try:
        yield folder
    finally:
        del _held[key]
        with contextlib.suppress(OSError):
            os.unlink(lock)  # while still holding it: a waiter re-checks the inode (above)
        os.close(fd)
        if created:
            _rmdir_if_empty(folder)


def _rmdir_if_empty(folder: Path):
    with contextlib.suppress(OSError):
        folder.rmdir()


def read_toml(path, what: str = "config file") -> dict:
    """The table of a TOML file; a missing, unreadable or malformed file is one BshwError naming it."""
    import tomllib

    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BshwError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise BshwError(f"{what} {path} is a folder") from None
    except OSError as e:
        raise BshwError(f"{what} {path} cannot be read: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BshwError(f"{what} {path} is not valid TOML: {str(e).splitlines()[0]}") from None
