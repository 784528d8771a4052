"""`manage.py bootstrap` on a fresh machine and again: staff roles, the admin login's file, demo signals."""

import stat
import subprocess

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User

from signalhub import roles
from signals.models import Signal
from tests.support import manage, process_env

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "archive"])


def bootstrap(data_dir, *args, debug=False):
    env = process_env(SIGNALHUB_DATA_DIR=str(data_dir), DJANGO_DEBUG="1" if debug else "0",
                      DJANGO_SECRET_KEY="test-bootstrap-not-secret")
    for name in ("DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD"):
        env.pop(name, None)
    process = manage("bootstrap", "--demo-count", "7", "--demo-days", "2", *args, env=env,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return out


def mode(path):
    return stat.S_IMODE(path.lstat().st_mode)


def group_permissions(name):
    return {f"{p.content_type.app_label}.{p.codename}"
            for p in Group.objects.get(name=name).permissions.select_related("content_type")}


# First run -----------------------------------------------------------------------------

def test_first_run_with_debug_off_loads_no_demo_signals_and_keeps_secrets_private(tmp_path):
    data_dir = tmp_path / "fresh" / "data"

    out = bootstrap(data_dir)

    assert Signal.objects.count() == 0
    assert "No demo signals loaded: debug is off (pass --demo to load them)." in out
    assert mode(data_dir) == 0o700
    credentials = data_dir / "admin_credentials"
    assert mode(credentials) == 0o600
    username, password = (line.split(": ", 1)[1] for line in credentials.read_text().splitlines())
    assert User.objects.get(username=username, is_superuser=True).check_password(password)
    assert password not in out
    assert f"the generated password is in {credentials}" in out


def test_debug_on_prints_the_login_to_type_on_every_run(tmp_path):
    first = bootstrap(tmp_path, "--demo-count", "0", debug=True)
    again = bootstrap(tmp_path, "--demo-count", "0", debug=True)

    username, password = (line.split(": ", 1)[1] for line in (tmp_path / "admin_credentials").read_text().splitlines())
    assert User.objects.get(username=username).check_password(password)
    for out in (first, again):
        assert f"Admin login: {username} / {password}" in out


def test_debug_off_loads_demo_signals_only_when_asked(tmp_path):
    bootstrap(tmp_path, "--demo")

    assert Signal.objects.count() == 7
    assert (tmp_path / "demo_loaded").exists()


def test_debug_on_first_run_still_loads_demo_signals_once(tmp_path):
    first = bootstrap(tmp_path, debug=True)
    again = bootstrap(tmp_path, debug=True)

    assert "Loading 7 demo signals" in first
    assert "demo signals" not in again
    assert Signal.objects.count() == 7


def test_an_existing_data_directory_is_tightened_to_0700(tmp_path):
    # collectstatic, or `mkdir -p`, may have made it first with the umask's mode.
    data_dir = tmp_path / "shared"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)

    out = bootstrap(data_dir)

    assert f"Data directory {data_dir}: mode 0755 tightened to 0700." in out.splitlines()
    assert mode(data_dir) == 0o700
    assert "tightened" not in bootstrap(data_dir)
    assert mode(data_dir / "admin_credentials") == 0o600


def test_credentials_are_never_written_through_a_planted_link(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    target.write_text("not to be overwritten\n")
    target.chmod(0o644)
    (data_dir / "admin_credentials").symlink_to(target)

    bootstrap(data_dir)

    assert target.read_text() == "not to be overwritten\n"
    assert mode(target) == 0o644
    credentials = data_dir / "admin_credentials"
    assert not credentials.is_symlink() and mode(credentials) == 0o600
    assert credentials.read_text().startswith("username: admin\n")


# Staff roles ---------------------------------------------------------------------------

def test_bootstrap_creates_the_roles_and_sets_their_permissions_again_each_run(tmp_path):
    first = bootstrap(tmp_path)
    stray = Permission.objects.get(content_type__app_label="auth", codename="add_user")
    Group.objects.get(name=roles.VIEWERS).permissions.add(stray)
    Group.objects.get(name=roles.OPERATORS).permissions.clear()
    again = bootstrap(tmp_path)

    assert 'Staff group "Signal viewers": created.' in first
    assert 'Staff group "Signal viewers": permissions updated.' in again
    assert Group.objects.filter(name__in=[roles.VIEWERS, roles.OPERATORS]).count() == 2
    viewers = group_permissions(roles.VIEWERS)
    assert viewers == {f"{app}.{codename}" for app, codename in roles.VIEW_PERMISSIONS}
    assert all(name.split(".")[1].startswith("view_") for name in viewers)
    assert group_permissions(roles.OPERATORS) == viewers | {"sync.operate_delivery"}


def test_viewers_may_view_every_signalhub_model_the_admin_shows():
    shown = {(model._meta.app_label, model._meta.model_name) for model in admin.site._registry
             if model._meta.app_label in ("signals", "sync")}
    # Attempts are shown inline on each delivery's page.
    shown.add(("sync", "deliveryattempt"))

    assert set(roles.VIEWED_MODELS) == shown


def test_roles_refuse_to_be_created_without_their_permissions():
    from django.core.exceptions import ImproperlyConfigured

    Permission.objects.filter(codename="operate_delivery").delete()

    with pytest.raises(ImproperlyConfigured, match="sync.operate_delivery"):
        roles.ensure_roles()
    assert not Group.objects.filter(name=roles.OPERATORS).exists()

