"""The data directory is its owner's alone, even when something other than bootstrap made it first.

``collectstatic`` (or ``mkdir -p``) before ``bootstrap`` leaves it with the
umask's 0755: bootstrap tightens it to 0700 and says so, and the system check
signalhub.W001 reports one that group or others may read.
"""

import stat
import subprocess

import pytest

from signalhub import checks
from tests.support import manage, process_env

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "archive"])


def run(data_dir, *args):
    env = process_env(SIGNALHUB_DATA_DIR=str(data_dir), DJANGO_DEBUG="0", DJANGO_SECRET_KEY="test-data-dir-not-secret")
    process = manage(*args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, out
    return out


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_bootstrap_after_collectstatic_tightens_the_data_directory(tmp_path):
    data_dir = tmp_path / "data"
    run(data_dir, "collectstatic", "--noinput", "-v", "0")
    assert mode(data_dir) & 0o077  # made with the umask's mode, by Django

    out = run(data_dir, "bootstrap", "--demo-count", "0")

    assert f"Data directory {data_dir}: mode {mode_text(out, data_dir)} tightened to 0700." in out.splitlines()
    assert mode(data_dir) == 0o700
    assert "tightened" not in run(data_dir, "bootstrap", "--demo-count", "0")


def mode_text(out, data_dir):
    # The mode collectstatic left depends on the umask; the line names it.
    prefix = f"Data directory {data_dir}: mode "
    return next(line[len(prefix):len(prefix) + 4] for line in out.splitlines() if line.startswith(prefix))


@pytest.mark.parametrize("dir_mode", [0o755, 0o750, 0o705])
def test_w001_reports_a_data_directory_others_may_read(settings, tmp_path, dir_mode):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(dir_mode)
    settings.DATA_DIR = data_dir

    [warning] = [message for message in checks.private_file_checks() if message.id == "signalhub.W001"]

    assert warning.msg.startswith(f"The data directory {data_dir} has mode {dir_mode:04o}:")
    assert warning.hint == f"chmod 700 {data_dir} (manage.py bootstrap does it)"
    assert mode(data_dir) == dir_mode  # reported, not changed


def test_w001_is_quiet_about_a_private_data_directory(settings, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    settings.DATA_DIR = data_dir

    assert not [message for message in checks.private_file_checks()
                if message.id == "signalhub.W001" and str(data_dir) in message.msg]


def test_manage_py_check_warns_about_an_open_data_directory(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o755)

    out = run(data_dir, "check")

    assert f"signalhub.W001) The data directory {data_dir} has mode 0755" in out
