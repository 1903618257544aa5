"""Run folders: one run per folder, a lock while it trains, atomic artefacts, Ctrl-C as a clean stop.

Used by agent training (:mod:`lobworld.agents.training`) and world-model training
(:mod:`lobworld.world_models.training`); it lives in this layer so both can import it.

* :func:`claim_run_folder` (a context manager) creates the folder, takes its lock
  (:data:`LOCK_NAME`) and refuses a folder that already holds anything unless the
  caller resumes the run or overwrites it (``overwrite`` removes the named
  artefacts of the earlier run first, so the two runs' files never mix).
* The lock is the kernel's advisory ``flock`` on the lock file, which also records the
  holder's pid, host and start time (named in the error). A lock file left by a
  process that died is stale: its ``flock`` was released with the process, so it is
  taken over (where ``flock`` is unavailable, staleness is decided by whether the
  recorded pid still runs on this host).
* :func:`atomic_path` / :func:`atomic_write_text` write a file under a temporary name
  in the same folder, flush it to disk, then ``os.replace`` it onto the final name: a
  reader sees the old file or the new one, never half of one.
* :class:`StopOnSigint`: inside the block the first SIGINT only sets ``requested``
  (training loops poll it and stop at the next step boundary, then save); a second
  SIGINT raises ``KeyboardInterrupt`` at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator

from lobworld.errors import LobworldError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "RunFolderError", "RunLockedError", "RunLock", "acquire_lock", "claim_run_folder",
           "atomic_path", "atomic_write_text", "StopOnSigint", "INTERRUPT_EXIT_CODE"]

#: name of the lock file inside a run folder
LOCK_NAME = ".lobworld.lock"
#: exit code of a command stopped by SIGINT (128 + SIGINT, the shell's convention)
INTERRUPT_EXIT_CODE = 130
_TMP_MARK = ".tmp-"


class RunFolderError(LobworldError):
    """A run folder that already holds another run (and neither resume nor overwrite was asked for)."""


class RunLockedError(RunFolderError):
    """A run folder whose lock is held by a live process (another training writes into it)."""


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_holder(path: pathlib.Path) -> dict:
    try:
        d = json.loads(path.read_text())
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "holder unknown"
    return f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}"


class RunLock:
    """A held run-folder lock; :meth:`release` (or leaving the ``with`` block) frees it and removes the file."""

    def __init__(self, path: pathlib.Path, fd: int | None):
        self.path = path
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None or (fcntl is None and self.path.is_file())

    def release(self) -> None:
        if fcntl is None:  # pragma: no cover - pid-only locks
            if _read_holder(self.path).get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            return
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # unlink while still holding it (acquire checks the inode)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire_lock(folder: str | pathlib.Path) -> RunLock:
    """Take ``folder/.lobworld.lock`` or raise :class:`RunLockedError` at once (no waiting).

    A lock file whose holder died is replaced (with a note on stderr naming the dead pid).
    """
    folder = pathlib.Path(folder)
    path = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if fcntl is None:  # pragma: no cover - pid-only fallback
        holder = _read_holder(path)
        if holder and (holder.get("host") != me["host"] or _pid_alive(int(holder.get("pid", -1)))):
            raise RunLockedError(f"{folder} is locked by a training in progress ({_describe(holder)}); lock file "
                                 f"{path}: wait for it, or delete the lock file if that process is gone")
        path.write_text(json.dumps(me))
        return RunLock(path, None)
    for _ in range(10):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            holder = _read_holder(path)
            raise RunLockedError(f"{folder} is locked by a training in progress ({_describe(holder)}); lock file "
                                 f"{path}: wait for it to finish or choose another folder") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous holder removed the file between our open and our flock: try again
            os.close(fd)
            continue
        old = _read_holder(path)
        if old.get("pid") not in (None, me["pid"]):
            alive = old.get("host") == me["host"] and _pid_alive(int(old.get("pid", -1)))
            print(f"note: {path}: replacing the stale lock of pid {old.get('pid')} "
                  f"({'pid reused' if alive else 'no longer running'})", file=sys.stderr)
        data = json.dumps(me).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        return RunLock(path, fd)
    raise RunLockedError(f"{path}: could not take the lock (it keeps changing hands)")


def _entries(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != LOCK_NAME and _TMP_MARK not in p.name)


@contextlib.contextmanager
def claim_run_folder(folder: str | pathlib.Path, *, artefacts: Iterable[str], resume: bool = False,
                     overwrite: bool = False, hint: str = "pass --overwrite to replace it or choose another folder"
                     ) -> Iterator[pathlib.Path]:
    """Create ``folder``, lock it for the block, and make sure it holds no other run.

    An existing folder with any entry (other than the lock and temporary files) raises
    :class:`RunFolderError` naming the folder, some of its entries and ``hint``, unless
    ``resume`` (continue the run in place) or ``overwrite`` is true. ``overwrite``
    deletes the entries named in ``artefacts`` (files or folders of an earlier run)
    before the block runs and leaves any other file alone. Yields the folder path; the
    lock is released when the block exits, however it exits.
    """
    folder = pathlib.Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"run folder {folder} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    with acquire_lock(folder):
        for p in folder.glob(f"*{_TMP_MARK}*"):  # left by a writer that died before its rename
            if p.is_file():
                p.unlink(missing_ok=True)
        found = _entries(folder)
        if found and not resume:
            if not overwrite:
                shown = ", ".join(found[:5]) + (f", ... ({len(found)} entries)" if len(found) > 5 else "")
                raise RunFolderError(f"{folder} already holds a run ({shown}): {hint}")
            for name in artefacts:
                p = folder / name
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                elif p.exists() or p.is_symlink():
                    p.unlink()
        yield folder


@contextlib.contextmanager
def atomic_path(final: str | pathlib.Path) -> Iterator[pathlib.Path]:
    """Yield a temporary path beside ``final`` (same suffix); on success it replaces ``final`` atomically.

    The caller writes the whole file to the yielded path; when the block exits
    normally the file is flushed to disk and ``os.replace``-d onto ``final``; when it
    raises, the temporary file is removed and ``final`` is untouched.
    """
    final = pathlib.Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}{_TMP_MARK}{os.getpid()}-{threading.get_ident()}{final.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | pathlib.Path, text: str) -> pathlib.Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    path = pathlib.Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


class StopOnSigint:
    """Turn the first SIGINT inside the ``with`` block into a stop request.

    ``requested`` becomes true on the first SIGINT (a one-line note goes to stderr);
    the training loop polls it and stops at its next step boundary. A second SIGINT
    raises ``KeyboardInterrupt`` immediately (abort without saving). The previous
    handler is restored on exit. Off the main thread (where Python cannot install
    signal handlers) the block changes nothing and ``requested`` stays false.
    """

    def __init__(self, what: str = "training"):
        self.what = what
        self.requested = False
        self._old = None
        self._installed = False

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"interrupt: stopping {self.what} and saving (Ctrl-C again to abort without saving)", file=sys.stderr)

    def __enter__(self) -> "StopOnSigint":
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._old if self._old is not None else signal.default_int_handler)
            self._installed = False
