"""The real (not staged) device install, isolated in a private mount namespace.

/etc, /opt, /var and /usr/local are overlaid on throw-away upper dirs, so useradd, chown,
runuser and `systemctl enable` (offline) really run and the host is left untouched. Checks
the permission design with the real users: the firmware reads the config but not the
credentials; the console replaces config.toml atomically but cannot remove credentials;
provisioning as root keeps the console's ownership; an upgrade backs up and migrates the
data as the service user; uninstall keeps data, --purge removes it and the users.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_install_root import src  # noqa: F401 - fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCRIPT = r'''
set -euo pipefail
for d in etc opt var usr/local; do
    mkdir -p "$OV/$d/u" "$OV/$d/w"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$OV/$d/u,workdir=$OV/$d/w" "/$d"
done
export ROLLCALL_ASSUME_PI=0
cd "$SRC"
check() { if "$@" >/dev/null 2>&1; then echo "CAN: ${*: -1}"; else echo "CANNOT: ${*: -1}"; fi; }
./install.sh --no-apt $MODELS_ARG
stat -c 'MODE %a %U:%G %n' /etc/rollcall /etc/rollcall/config.toml /etc/rollcall/credentials \
    /var/lib/rollcall /var/lib/rollcall-console /var/lib/rollcall-console/setup-code /opt/rollcall/venv
echo "GROUPS $(id -nG rollcall) / $(id -nG rollcall-console)"
echo "WANTS $(ls /etc/systemd/system/multi-user.target.wants | grep -c rollcall)"
check runuser -u rollcall -- cat /etc/rollcall/config.toml
check runuser -u rollcall -- cat /etc/rollcall/credentials/mqtt-password
check runuser -u rollcall -- touch /etc/rollcall/x
check runuser -u rollcall-console -- rm -rf /etc/rollcall/credentials
check runuser -u rollcall-console -- cat /var/lib/rollcall-console/setup-code
cd /
runuser -u rollcall-console -- /opt/rollcall/venv/bin/python -c '
from firmware.config import load_config, write_config_atomic
c = load_config("/etc/rollcall/config.toml"); c.device.name = "Hall B door"
write_config_atomic(c, "/etc/rollcall/config.toml"); print("CONSOLE WROTE CONFIG")'
printf 'admin-password-9\n' | /usr/local/bin/rollcall -q provision --device-id door-9 --admin-password-file - --non-interactive
stat -c 'MODE %a %U:%G %n' /etc/rollcall/config.toml /var/lib/rollcall-console/admin.json
runuser -u rollcall -- /opt/rollcall/venv/bin/python -c '
from firmware.store import Store
with Store("/var/lib/rollcall") as s: s.people.add("p1", "Ada")
print("FIRMWARE WROTE DATA")'
echo stale > /opt/rollcall/.installed-tree
cd "$SRC"
./install.sh --no-apt --no-models
echo "BACKUPS $(ls /var/backups/rollcall | wc -l)"
stat -c 'MODE %a %U:%G %n' /var/lib/rollcall/people
grep -c 'name = "Hall B door"' /etc/rollcall/config.toml | sed 's/^/KEPT NAME /'
./install.sh --uninstall
echo "AFTER UNINSTALL $(ls /var/lib/rollcall | wc -l) data, opt=$(test -e /opt/rollcall && echo yes || echo no)"
./install.sh --uninstall --purge
echo "AFTER PURGE users=$(getent passwd rollcall rollcall-console | wc -l) etc=$(test -e /etc/rollcall && echo yes || echo no)"
'''


def _overlay_possible(tmp_path: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("useradd"):
        return False
    probe = (f"mkdir -p {tmp_path}/p/u {tmp_path}/p/w && mount -t overlay overlay "
             f"-o lowerdir=/etc,upperdir={tmp_path}/p/u,workdir={tmp_path}/p/w /etc")
    return subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", probe],
                          capture_output=True, check=False).returncode == 0


def test_real_install_in_a_private_namespace(src, tmp_path):  # noqa: F811
    if not _overlay_possible(tmp_path):
        pytest.skip("needs root, unshare and overlayfs mounts")
    models = Path(os.environ.get("ROLLCALL_MODELS_DIR", Path(__file__).resolve().parents[2] / "var/models"))
    models_arg = f"--models {models}" if any(models.glob("*.tflite")) else "--no-models"
    env = dict(os.environ, OV=str(tmp_path / "ov"), SRC=str(src), MODELS_ARG=models_arg,
               ROLLCALL_PYTHON="/usr/bin/python3")
    result = subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", SCRIPT],
                            capture_output=True, text=True, env=env, timeout=900,
                            stdin=subprocess.DEVNULL, check=False)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    modes = {line.split()[3]: tuple(line.split()[1:3]) for line in out.splitlines() if line.startswith("MODE ")}
    assert modes["/etc/rollcall"] == ("3750", "rollcall-console:rollcall")
    assert modes["/etc/rollcall/config.toml"] == ("640", "rollcall-console:rollcall")
    assert modes["/etc/rollcall/credentials"] == ("700", "root:root")
    assert modes["/var/lib/rollcall"] == ("750", "rollcall:rollcall")
    assert modes["/var/lib/rollcall-console/setup-code"] == ("600", "rollcall-console:rollcall-console")
    assert modes["/var/lib/rollcall-console/admin.json"] == ("600", "rollcall-console:rollcall-console")
    assert modes["/var/lib/rollcall/people"][1] == "rollcall:rollcall"  # migration ran as the service user
    assert "GROUPS rollcall video gpio / rollcall-console rollcall" in out
    assert "WANTS 3" in out
    assert "CAN: /etc/rollcall/config.toml" in out
    assert "CANNOT: /etc/rollcall/credentials/mqtt-password" in out
    assert "CANNOT: /etc/rollcall/x" in out
    assert "CANNOT: /etc/rollcall/credentials" in out
    assert "CAN: /var/lib/rollcall-console/setup-code" in out
    assert "CONSOLE WROTE CONFIG" in out and "FIRMWARE WROTE DATA" in out
    assert "KEPT NAME 1" in out and "BACKUPS 1" in out
    assert "AFTER UNINSTALL" in out and ", opt=no" in out and "AFTER UNINSTALL 0 data" not in out
    assert "AFTER PURGE users=0 etc=no" in out
