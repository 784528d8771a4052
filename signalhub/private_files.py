"""Files only SignalHub's own user may read: the data directory 0700, its databases, locks and key 0600.

The SQLite files hold sessions and password hashes, the secret key signs
sessions: another local user must not read them. Modes are set when a file
or directory is created; an existing one that is too open is reported by the
system check signalhub.W001, not changed behind the operator's back (it may
have been opened to a backup group on purpose). The one exception is
`bootstrap`, a first-run step the operator asks for, which tightens the data
directory it owns to 0700 and says so.
"""

import os
import stat
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_dir(path):
    """Create ``path`` (and missing parents) with mode 0700 for the directories this creates."""
    path = Path(path)
    missing = []
    while not path.exists() and path.parent != path:
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            # mkdir's mode is filtered by the umask, which can only take bits away from 0700.
            directory.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:  # another process made it first
            pass


def create_private_file(path):
    """Create ``path`` empty with mode 0600 unless it exists; never follow a symlink to create it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def too_open(path):
    """Return the mode of ``path`` when group or others may use it, else None (also when it is missing)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    return mode if mode & 0o077 else None
