"""Write-then-rename helpers: a killed stage never leaves a half-written output behind."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    ``suffix`` defaults to the target's own suffix so that libraries which look at the extension
    (``np.savez`` adds ``.npz`` when missing) write exactly the temp file given to them.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + (suffix or path.suffix),
                               dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        remove_stale(path)
    except OSError as exc:
        raise named(exc, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_stale(path: Path) -> None:
    """Remove the hidden temporaries (files or folders) that killed earlier writes of ``path`` left
    beside it: called after a successful write, so the output they were for now exists."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def named(exc: OSError, path: Path) -> OSError:
    """A write error (disk full, a read-only folder) names the output it was writing, not the
    hidden temporary file or nothing (a failed ``write`` carries no file name)."""
    if exc.filename is None or ".tmp" in Path(str(exc.filename)).name:
        exc.filename = str(path)
    return exc


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary directory next to ``path``; it replaces ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
        remove_stale(path)
    except OSError as exc:
        raise named(exc, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
