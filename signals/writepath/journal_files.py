"""The journal's files on disk: private, regular, never reached through a symbolic link.

Every file of the journal is opened without following a symbolic link and
must be a regular file: anyone who can write to the directory could
otherwise point a segment or a done file at another file (ours to clobber,
or theirs to make us read), or at a FIFO that blocks the flusher forever.
O_NONBLOCK only keeps the open of a FIFO from waiting; regular files ignore it.
"""

import errno
import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)


class JournalUnavailable(OSError):
    """The journal cannot take a signal now (disk full, I/O error, an unsafe directory): nothing was journaled.

    An ``OSError`` (``errno`` tells which), not a ``ValidationError``: the
    signal is fine, the machine is not. The caller may retry it later.
    """


_NOFOLLOW = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_regular(path, flags, mode=0o600) -> int:
    """Open ``path`` (never through a symlink) and return its fd; OSError unless it is a regular file."""
    fd = os.open(path, flags | _NOFOLLOW, mode)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_done_file(path: Path) -> int:
    """Open a segment's done file for writing, creating it 0600; a link or FIFO planted under its name is replaced."""
    try:
        return open_regular(path, os.O_WRONLY | os.O_CREAT)
    except OSError as exc:
        # ELOOP: a symlink; ENXIO: a FIFO with no reader; EINVAL: another non-regular file.
        if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EINVAL):
            raise
        problem = exc.strerror
    logger.warning("replacing %s in the journal: %s, not a regular file (its target is left alone)", path, problem)
    path.unlink()  # the entry itself, never what a link points to
    return open_regular(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)


def ensure_dir(directory: Path) -> Path:
    """Create the journal directory (0700, and any data directory it needs) unless it exists; refuse a symlink.

    A symlinked journal directory is refused rather than followed: whoever
    can swap the link can send every signal to a directory they read. Point
    SIGNALHUB_JOURNAL_DIR at the real directory instead. (Symlinks higher up
    the path are the operator's to choose, and are followed.)
    """
    from signalhub.private_files import make_private_dir

    check_dir(directory)
    make_private_dir(directory)
    check_dir(directory)
    return directory


def check_dir(directory: Path):
    """Raise JournalUnavailable if ``directory`` exists as a symlink or as something not a directory."""
    try:
        mode = os.lstat(directory).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise JournalUnavailable(errno.ELOOP, "the journal directory is a symbolic link, which is refused; "
                                 "set SIGNALHUB_JOURNAL_DIR to the real directory", str(directory))
    if not stat.S_ISDIR(mode):
        raise JournalUnavailable(errno.ENOTDIR, "the journal directory is not a directory", str(directory))
