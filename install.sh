#!/usr/bin/env bash
# Rollcall installer.
#
#   sudo ./install.sh                 install or upgrade the appliance (Raspberry Pi OS / Debian 12)
#   ./install.sh --dev                developer install: ./.venv, models in ./var/models, ./var/config.toml
#   sudo ./install.sh --uninstall     remove code and units, keep config and data (--purge: all)
#
# Idempotent: a second run upgrades code and dependencies when they changed, keeps config,
# credentials and data, migrates data files (after a backup) and restarts the services.
# Run with --help for every option.
set -euo pipefail

SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SRC_DIR
readonly MIN_PY="3.11"
readonly BUILD_DISK_MB="${ROLLCALL_BUILD_DISK_MB:-2500}"  # TensorFlow build venv + conversion
readonly KEEP_BACKUPS=3

# Target layout (device mode; prefixed with --root when staging).
readonly OPT=/opt/rollcall
readonly VENV=$OPT/venv
readonly MODELS=$OPT/models
readonly ETC=/etc/rollcall
readonly CREDS=$ETC/credentials
readonly DATA=/var/lib/rollcall
readonly CONSOLE_STATE=/var/lib/rollcall-console
readonly LOGS=/var/log/rollcall
readonly UNITS=/etc/systemd/system
readonly BACKUPS=/var/backups/rollcall
readonly CLI_LINK=/usr/local/bin/rollcall
readonly SVC_USER=rollcall
readonly CONSOLE_USER=rollcall-console
readonly UNIT_NAMES=(rollcall-firmware.service rollcall-console.service rollcall-firstboot.service)
readonly SERVICES=(rollcall-firmware.service rollcall-console.service)
readonly CRED_IDS=(mqtt-password mqtt-ca.pem mqtt-client.pem mqtt-client.key roster-signing.pub)
readonly PI_PACKAGES=(python3-picamera2 python3-libcamera python3-lgpio)
# The OS's simplejpeg (imported by picamera2) is built for numpy 1; the venv has numpy 2.
readonly PI_PIP_EXTRAS=(simplejpeg==1.9.0)

MODE=device          # device | dev | uninstall
ROOT=""              # staging directory (--root)
DRY_RUN=0
PURGE=0
MODELS_FROM=""
CALIB_DIR=""
NO_MODELS=0
NO_VENV=0
NO_APT=0
NO_START=0
NO_PROVISION=0
TOOL_VENV=""
PYTHON="${ROLLCALL_PYTHON:-python3}"
PLAN=()              # privileged actions recorded under --root / --dry-run

usage() {
    cat <<'EOF'
Usage: install.sh [options]

Modes:
  (none)            install or upgrade the appliance (needs root)
  --dev             developer install in this checkout (no root, no systemd)
  --uninstall       stop and remove units and code; keep config and data
  --purge           with --uninstall: also remove config, credentials, data and users

Options:
  --models DIR      copy prebuilt models from DIR (verified by hash) instead of building
  --calib DIR       face photos for the int8 calibration of the model build
                    (default: the models' own default, ../shared/data/lfw-dev/images)
  --no-models       do not build or copy models
  --root DIR        lay everything out under DIR (staging/tests): no apt, useradd, chown
                    or systemctl; they are recorded in DIR/.rollcall-install-plan
  --dry-run         print what would be done, change nothing
  --no-apt          never call apt-get; fail listing what is missing
  --no-start        install and enable units but do not (re)start them
  --no-provision    do not ask the provisioning questions (asked on a terminal when
                    the device has no id yet)
  --no-venv         (staging) do not create the venv
  --tool-venv DIR   (staging/tests) use this existing venv for helper steps
  -h, --help        this help

Environment: ROLLCALL_PYTHON (default python3), ROLLCALL_ASSUME_PI=0|1 (skip detection),
ROLLCALL_BUILD_DISK_MB (free space the model build needs, default 2500).
EOF
}

say() { printf 'rollcall-install: %s\n' "$*"; }
warn() { printf 'rollcall-install: WARNING: %s\n' "$*" >&2; }
die() { printf 'rollcall-install: ERROR: %s\n' "$*" >&2; exit 1; }

# Run a command that changes the target, or print it under --dry-run.
run() {
    if ((DRY_RUN)); then
        printf '[dry-run] %s\n' "$*"
        return 0
    fi
    "$@"
}

# A privileged action on the real system (users, ownership, apt, systemctl): recorded
# under --root or --dry-run, executed otherwise.
priv() {
    if [[ -n "$ROOT" || $DRY_RUN -eq 1 ]]; then
        PLAN+=("$*")
        ((DRY_RUN)) && printf '[dry-run] %s\n' "$*"
        return 0
    fi
    "$@"
}

parse_args() {
    while (($#)); do
        case "$1" in
            --dev) MODE=dev ;;
            --uninstall) MODE=uninstall ;;
            --purge) PURGE=1 ;;
            --models) MODELS_FROM="${2:?--models needs a directory}"; shift ;;
            --no-models) NO_MODELS=1 ;;
            --calib) CALIB_DIR="${2:?--calib needs a directory}"; shift ;;
            --root) ROOT="${2:?--root needs a directory}"; shift ;;
            --dry-run) DRY_RUN=1 ;;
            --no-apt) NO_APT=1 ;;
            --no-start) NO_START=1 ;;
            --no-provision) NO_PROVISION=1 ;;
            --no-venv) NO_VENV=1 ;;
            --tool-venv) TOOL_VENV="${2:?--tool-venv needs a directory}"; shift ;;
            -h | --help) usage; exit 0 ;;
            *) usage >&2; die "unknown option: $1" ;;
        esac
        shift
    done
    if ((PURGE)) && [[ "$MODE" != uninstall ]]; then die "--purge only goes with --uninstall"; fi
    if [[ -n "$ROOT" ]]; then
        [[ "$MODE" == dev ]] && die "--root and --dev do not mix"
        ROOT="$(realpath -m "$ROOT")"
        ((DRY_RUN)) || mkdir -p "$ROOT"
    fi
    if [[ -n "$MODELS_FROM" && ! -d "$MODELS_FROM" ]]; then die "--models $MODELS_FROM: not a directory"; fi
    return 0
}

# ---------------------------------------------------------------- checks

check_python() {
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: install Python $MIN_PY or newer (apt-get install python3)"
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        local found
        found="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
        die "Python $found is too old: Rollcall needs $MIN_PY+ (Raspberry Pi OS / Debian 12 'Bookworm' ship 3.11; Bullseye must be upgraded)"
    fi
}

is_debian() { [[ -r /etc/debian_version ]] && command -v dpkg-query >/dev/null 2>&1; }

is_pi() {
    if [[ -n "${ROLLCALL_ASSUME_PI:-}" ]]; then [[ "$ROLLCALL_ASSUME_PI" == 1 ]]; return; fi
    grep -qs "Raspberry Pi" /proc/device-tree/model
}

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# Debian packages this machine still needs (printed one per line).
missing_packages() {
    local pkg
    if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then echo python3-venv; fi
    if [[ "$MODE" == device ]] && is_pi; then
        for pkg in "${PI_PACKAGES[@]}"; do
            pkg_installed "$pkg" || echo "$pkg"
        done
    fi
    return 0
}

apt_install() {
    local lists=(/var/lib/apt/lists/*_Packages)
    [[ -e "${lists[0]}" ]] || run env DEBIAN_FRONTEND=noninteractive apt-get update -q
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

ensure_packages() {
    local missing=()
    mapfile -t missing < <(missing_packages)
    ((${#missing[@]})) || return 0
    if [[ -n "$ROOT" ]]; then priv apt-get install -y "${missing[@]}"; return 0; fi
    if ((NO_APT)) || [[ $EUID -ne 0 ]] || ! is_debian; then
        die "missing system packages: ${missing[*]} (install them with: sudo apt-get install ${missing[*]})"
    fi
    say "installing system packages: ${missing[*]}"
    apt_install "${missing[@]}"
}

explain_hardware() {
    if [[ "$MODE" != device ]]; then return 0; fi
    if ! is_pi; then
        say "not a Raspberry Pi (no picamera2): the camera is a USB webcam or a video file; GPIO indicators are off"
    fi
    local videos=(/dev/video*)
    if [[ ! -e "${videos[0]}" ]] && ! detect_libcamera; then
        warn "no camera found (no /dev/video* and no libcamera camera): the firmware starts degraded;" \
            "connect a camera module or USB webcam, or set camera.source to a video file"
    fi
}

detect_libcamera() {
    local tool
    for tool in rpicam-hello libcamera-hello; do
        if command -v "$tool" >/dev/null 2>&1; then
            "$tool" --list-cameras 2>/dev/null | grep -q '^[0-9] :' && return 0
        fi
    done
    return 1
}

# check_build_disk CACHE_DIR: room for the TensorFlow build venv (less when it exists).
check_build_disk() {
    local dir="$1" free_mb need=$BUILD_DISK_MB
    mkdir -p "$dir"
    [[ -x "$dir/build-venv/bin/python" ]] && need=500
    free_mb="$(df -Pm "$dir" | awk 'NR == 2 {print $4}')"
    if ((free_mb < need)); then
        die "not enough disk to build the models: ${free_mb} MB free in $dir, ${need} MB needed" \
            "(TensorFlow build venv ~2 GB). Build them on another machine (rollcall models build --out DIR)" \
            "and install with: sudo ./install.sh --models DIR"
    fi
}

# ---------------------------------------------------------------- files

# install_file SRC DEST MODE: copy when content or mode differ.
install_file() {
    local src="$1" dest="$2" mode="$3"
    if [[ -f "$dest" ]] && cmp -s "$src" "$dest" && [[ "$(stat -c %a "$dest")" == "$(octal "$mode")" ]]; then
        return 0
    fi
    run install -D -m "$mode" "$src" "$dest"
}

# octal MODE without leading zeros, as `stat -c %a` prints it
octal() { printf '%o' "$((8#$1))"; }

# ensure_dir DIR MODE [OWNER:GROUP]
ensure_dir() {
    local dir="$1" mode="$2" owner="${3:-}"
    if [[ ! -d "$dir" ]]; then
        run mkdir -p "$dir"
    fi
    if [[ ! -d "$dir" || "$(stat -c %a "$dir")" != "$(octal "$mode")" ]]; then
        # 5 digits: GNU chmod otherwise keeps a setgid bit inherited from the parent
        run chmod "0$(printf '%04o' "$((8#$mode))")" "$dir"
    fi
    if [[ -n "$owner" ]]; then priv chown "$owner" "$(strip_root "$dir")"; fi
}

strip_root() { printf '%s' "${1#"$ROOT"}"; }

tree_hash() {
    (cd "$SRC_DIR" && find firmware console models provisioning pyproject.toml -type f \
        -not -path '*/__pycache__/*' -not -name '*.pyc' -print0 2>/dev/null |
        LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

# copy_sources DEST: what the wheel is built from (no caches, no build leftovers).
copy_sources() {
    mkdir -p "$1"
    (cd "$SRC_DIR" && tar --exclude='__pycache__' --exclude='*.pyc' --exclude='*.egg-info' \
        -cf - pyproject.toml README.md firmware console models provisioning) | tar -C "$1" -xf -
}

requirements_hash() {
    { cat "$SRC_DIR/pyproject.toml"; "$1" -c 'import sys; print(sys.version)'; echo "$2"; } |
        sha256sum | cut -d' ' -f1
}

# write_text FILE MODE: replace FILE with stdin when it differs.
write_text() {
    local dest="$1" mode="$2" tmp
    tmp="$(mktemp)"
    cat >"$tmp"
    install_file "$tmp" "$dest" "$mode"
    rm -f "$tmp"
}

# ---------------------------------------------------------------- venv and models

ensure_dev_venv() {
    local venv="$1" want have
    if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
        say "creating $venv"
        run "$PYTHON" -m venv "$venv"
    fi
    if ((DRY_RUN)) && [[ ! -x "$venv/bin/python" ]]; then
        printf '[dry-run] %s\n' "$venv/bin/pip install -e '${SRC_DIR}[test]'"
        return 0
    fi
    want="$(requirements_hash "$venv/bin/python" dev)"
    have="$(cat "$venv/.rollcall-requirements" 2>/dev/null || true)"
    if [[ "$want" == "$have" && -x "$venv/bin/rollcall" ]]; then
        say "python dependencies unchanged (skipping pip)"
        return 0
    fi
    say "installing rollcall and its pinned dependencies into $venv (pip)"
    run "$venv/bin/pip" install --disable-pip-version-check -q -e "${SRC_DIR}[test]"
    printf '%s\n' "$want" | write_text "$venv/.rollcall-requirements" 0644
}

# Installs the code as a wheel into the device venv (see README: why a wheel).
ensure_device_venv() {
    local venv="$ROOT$VENV" flags=() want have tree old_tree tmp wheels
    if ((NO_VENV)); then say "--no-venv: not creating $venv"; return 0; fi
    if is_pi; then flags+=(--system-site-packages); fi
    if [[ ! -x "$venv/bin/python" ]]; then
        say "creating $VENV ${flags[*]}"
        run "$PYTHON" -m venv "${flags[@]}" "$venv"
    fi
    if ((DRY_RUN)) && [[ ! -x "$venv/bin/python" ]]; then
        printf '[dry-run] %s\n' "pip install rollcall wheel into $VENV"
        return 0
    fi
    want="$(requirements_hash "$venv/bin/python" "device ${flags[*]} ${PI_PIP_EXTRAS[*]}")"
    have="$(cat "$venv/.rollcall-requirements" 2>/dev/null || true)"
    tree="$(tree_hash)"
    old_tree="$(cat "$venv/.rollcall-tree" 2>/dev/null || true)"
    if [[ "$want" == "$have" && "$tree" == "$old_tree" ]]; then
        say "code and dependencies unchanged (skipping pip)"
        return 0
    fi
    tmp="$(mktemp -d)"
    say "building the rollcall wheel"
    # From a clean copy: an in-tree build/ could carry deleted modules into the wheel.
    run copy_sources "$tmp/src"
    run "$venv/bin/pip" wheel --disable-pip-version-check -q --no-deps -w "$tmp" "$tmp/src"
    wheels=("$tmp"/rollcall-*.whl)
    if [[ "$want" == "$have" ]]; then
        run "$venv/bin/pip" install --disable-pip-version-check -q --no-deps --force-reinstall "${wheels[@]}"
    else
        say "installing pinned dependencies (pip)"
        run "$venv/bin/pip" install --disable-pip-version-check -q --upgrade "${wheels[@]}"
        if is_pi; then run "$venv/bin/pip" install --disable-pip-version-check -q "${PI_PIP_EXTRAS[@]}"; fi
    fi
    rm -rf "$tmp"
    printf '%s\n' "$want" | write_text "$venv/.rollcall-requirements" 0644
    printf '%s\n' "$tree" | write_text "$venv/.rollcall-tree" 0644
}

models_cli_available() {
    [[ -x "$1/bin/rollcall" ]] && "$1/bin/rollcall" models verify --help >/dev/null 2>&1
}

# ensure_models VENV DIR: copy (--models, checked against the manifest) or build; a build
# is skipped when `rollcall models verify` passes.
ensure_models() {
    local venv="$1" dir="$2"
    ((NO_MODELS)) && return 0
    if ! models_cli_available "$venv"; then
        warn "'rollcall models' is not available in $venv: models not built or verified"
        return 0
    fi
    if "$venv/bin/rollcall" -q models verify --dir "$dir" >/dev/null 2>&1; then
        say "models verified in $(strip_root "$dir") (skipping build)"
        return 0
    fi
    if [[ -n "$MODELS_FROM" ]]; then
        say "copying prebuilt models from $MODELS_FROM (checked against the manifest)"
        run "$venv/bin/rollcall" -q models build --from "$MODELS_FROM" --out "$dir"
    else
        check_build_disk "${XDG_CACHE_HOME:-${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}/.cache}/rollcall"
        say "building models into $(strip_root "$dir") (TensorFlow in a throw-away venv; this takes a while)"
        local calib=()
        if [[ -n "$CALIB_DIR" ]]; then calib=(--calib "$(realpath "$CALIB_DIR")"); fi
        if ! run "$venv/bin/rollcall" -q models build --out "$dir" "${calib[@]}"; then
            # A dev box still gets a console (the firmware runs degraded); CI and devices stop.
            if [[ "$MODE" == dev && -z "${CI:-}" ]]; then
                warn "models not built (see above): the firmware runs degraded until ./install.sh --dev succeeds"
                return 0
            fi
            die "model build failed (see above): give face photos with --calib DIR, or build the models" \
                "on another machine and install them with --models DIR"
        fi
    fi
    ((DRY_RUN)) && return 0
    "$venv/bin/rollcall" -q models verify --dir "$dir" >/dev/null ||
        die "the models in $(strip_root "$dir") do not match the manifest: rebuild them (rollcall models build)"
}

# ---------------------------------------------------------------- config

# Fallback when firmware.cli.up (which `rollcall up` uses) is not importable.
dev_config() {
    cat <<'EOF'
# Developer config written by ./install.sh --dev (paths relative to the checkout).
[device]
id = "dev"
name = "Rollcall (dev)"

[paths]
data_dir = "var/data"
models_dir = "var/models"
control_socket = "var/run/control.sock"
log_dir = "var/log"

[camera]
source = "auto"

[gpio]
pin_factory = "mock"

[mqtt]
host = ""

[console]
bind = "127.0.0.1"
port = 8080
secrets_dir = "var/console"
EOF
}

device_config() {
    local gpio_lines='pin_factory = "lgpio"'
    is_pi || gpio_lines='enabled = false  # not a Raspberry Pi: no GPIO indicators'
    cat <<EOF
# Rollcall device config: written once by install.sh, then by \`rollcall provision\`
# and the web console. Secrets are not here: *_file keys point at root-only files in
# $CREDS that systemd hands to the firmware (LoadCredential=).
[device]
id = ""

[paths]
data_dir = "$DATA"
models_dir = "$MODELS"
control_socket = "/run/rollcall/control.sock"
log_dir = "$LOGS"

[camera]
source = "auto"

[gpio]
$gpio_lines

[mqtt]
host = ""

[console]
bind = "0.0.0.0"
port = 8080
secrets_dir = "$CONSOLE_STATE"
EOF
}

# install_config DEST OWNER: write the template only when there is no config yet.
install_config() {
    local dest="$1" owner="$2" generator="$3" venv="$4"
    if [[ -f "$dest" ]]; then
        say "keeping existing config $(strip_root "$dest")"
    else
        "$generator" | write_text "$dest" 0640
    fi
    if [[ -n "$owner" ]]; then priv chown "$owner" "$(strip_root "$dest")"; fi
    if [[ -x "$venv/bin/rollcall" && -f "$dest" ]] && ! ((DRY_RUN)); then
        "$venv/bin/rollcall" -q config validate "$dest" >/dev/null ||
            warn "$(strip_root "$dest") does not validate: fix it (rollcall config validate $(strip_root "$dest"))"
    fi
    return 0
}

# ---------------------------------------------------------------- dev mode

install_dev() {
    local venv="$SRC_DIR/.venv" var="$SRC_DIR/var" dir
    if ! command -v "$PYTHON" >/dev/null 2>&1 && [[ $EUID -eq 0 ]] && is_debian && ! ((NO_APT)); then
        apt_install python3 python3-venv
    fi
    check_python
    ensure_packages
    ensure_dev_venv "$venv"
    for dir in data models run log; do ensure_dir "$var/$dir" 0750; done
    for dir in console credentials; do ensure_dir "$var/$dir" 0700; done
    ensure_models "$venv" "$var/models"
    if [[ ! -f "$var/config.toml" ]] && ! ((DRY_RUN)) &&
        "$venv/bin/python" -c 'import firmware.cli.up' >/dev/null 2>&1; then
        # One source for the dev config: the one `rollcall up` writes on first use.
        (cd "$SRC_DIR" && "$venv/bin/python" -c \
            'from pathlib import Path; from firmware.cli.up import ensure_dev_config; ensure_dev_config(Path("var/config.toml"))')
        say "wrote the dev config var/config.toml"
    else
        install_config "$var/config.toml" "" dev_config "$venv"
    fi
    if [[ -x "$venv/bin/rollcall" ]] && ! ((DRY_RUN)); then
        (cd "$SRC_DIR" && "$venv/bin/rollcall" -q provision --config var/config.toml \
            --ensure-setup-code --no-chown --no-restart) || warn "could not write the console setup code"
        # `.venv/bin/rollcall ...` without --config uses this dev config (firmware.config.config_path)
        printf '%s\n' "$var/config.toml" | write_text "$venv/rollcall-dev-config" 0644
    fi
    say "dev install ready: .venv/bin/rollcall up (config var/config.toml)"
}

# ---------------------------------------------------------------- device mode

ensure_users() {
    local group
    for group in video gpio; do
        getent group "$group" >/dev/null || priv groupadd --system "$group"
    done
    if getent passwd "$SVC_USER" >/dev/null; then
        priv usermod -a -G video,gpio "$SVC_USER"
    else
        priv useradd --system --user-group --groups video,gpio --home-dir "$DATA" \
            --no-create-home --shell /usr/sbin/nologin "$SVC_USER"
    fi
    if getent passwd "$CONSOLE_USER" >/dev/null; then
        priv usermod -a -G "$SVC_USER" "$CONSOLE_USER"
    else
        priv useradd --system --user-group --groups "$SVC_USER" --home-dir "$CONSOLE_STATE" \
            --no-create-home --shell /usr/sbin/nologin "$CONSOLE_USER"
    fi
}

ensure_layout() {
    local id
    ensure_dir "$ROOT$OPT" 0755 root:root
    ensure_dir "$ROOT$MODELS" 0755 root:root
    ensure_dir "$ROOT$ETC" 3750 "$CONSOLE_USER:$SVC_USER"
    ensure_dir "$ROOT$CREDS" 0700 root:root
    for id in "${CRED_IDS[@]}"; do
        # LoadCredential= fails on a missing file: an empty one means "not set".
        [[ -e "$ROOT$CREDS/$id" ]] || run install -m 0600 /dev/null "$ROOT$CREDS/$id"
    done
    ensure_dir "$ROOT$DATA" 0750 "$SVC_USER:$SVC_USER"
    ensure_dir "$ROOT$CONSOLE_STATE" 0700 "$CONSOLE_USER:$CONSOLE_USER"
    ensure_dir "$ROOT$LOGS" 0750 "$SVC_USER:$SVC_USER"
    ensure_dir "$ROOT$BACKUPS" 0700 root:root
}

# /usr/local/bin/rollcall -> the venv's command, for `sudo rollcall provision`.
ensure_cli_link() {
    local link="$ROOT$CLI_LINK"
    [[ "$(readlink "$link" 2>/dev/null)" == "$VENV/bin/rollcall" ]] && return 0
    run mkdir -p "$(dirname "$link")"
    run ln -sfn "$VENV/bin/rollcall" "$link"
}

systemd_running() { [[ -z "$ROOT" && -d /run/systemd/system ]]; }

units_hash() {
    local unit
    for unit in "${UNIT_NAMES[@]}"; do
        if [[ -f "$ROOT$UNITS/$unit" ]]; then cat "$ROOT$UNITS/$unit"; fi
    done | sha256sum
}

install_units() {
    local unit before after
    before="$(units_hash)"
    for unit in "${UNIT_NAMES[@]}"; do
        install_file "$SRC_DIR/systemd/$unit" "$ROOT$UNITS/$unit" 0644
    done
    after="$(units_hash)"
    if [[ "$before" != "$after" ]] && systemd_running; then priv systemctl daemon-reload; fi
    priv systemctl enable "${UNIT_NAMES[@]}"
}

backup_data() {
    local stamp file old=()
    stamp="$(date -u +%Y%m%dT%H%M%SZ)"
    file="$ROOT$BACKUPS/data-$stamp.tar.gz"
    say "backing up $DATA to $(strip_root "$file")"
    run tar -C "$ROOT$DATA" -czf "$file" .
    run chmod 0600 "$file"
    # Names sort by time: keep the newest $KEEP_BACKUPS.
    old=("$ROOT$BACKUPS"/data-*.tar.gz)
    if [[ -e "${old[0]}" ]] && ((${#old[@]} > KEEP_BACKUPS)); then
        run rm -f "${old[@]:0:${#old[@]}-KEEP_BACKUPS}"
    fi
}

# Data files are migrated when the installed code changed: backup first, then the store's
# migration runs as the service user.
migrate_data() {
    local venv="$1" tree old
    tree="$(tree_hash)"
    old="$(cat "$ROOT$OPT/.installed-tree" 2>/dev/null || true)"
    [[ "$tree" == "$old" ]] && return 0
    if [[ -n "$(ls -A "$ROOT$DATA" 2>/dev/null)" ]]; then
        if systemd_running && [[ -f "$UNITS/rollcall-firmware.service" ]]; then
            priv systemctl stop rollcall-firmware.service
        fi
        backup_data
        if [[ -x "$venv/bin/python" ]]; then
            say "migrating data files in $DATA"
            # From / so `python -m` imports the installed code, not a checkout in the cwd.
            if [[ -z "$ROOT" && $EUID -eq 0 ]] && ! ((DRY_RUN)); then
                (cd / && runuser -u "$SVC_USER" -- "$venv/bin/python" -m provisioning.upgrade \
                    --data-dir "$DATA" --config "$ETC/config.toml")
            else
                (cd / && run "$venv/bin/python" -m provisioning.upgrade \
                    --data-dir "$ROOT$DATA" --config "$ROOT$ETC/config.toml")
            fi
        else
            priv "$VENV/bin/python" -m provisioning.upgrade --data-dir "$DATA" --config "$ETC/config.toml"
        fi
    fi
    printf '%s\n' "$tree" | write_text "$ROOT$OPT/.installed-tree" 0644
}

ensure_setup_code() {
    local venv="$1" args=(--config "$ROOT$ETC/config.toml" --ensure-setup-code --no-restart)
    if [[ -n "$ROOT" ]]; then args+=(--secrets-dir "$ROOT$CONSOLE_STATE" --no-chown); fi
    if [[ -x "$venv/bin/rollcall" ]] && ! ((DRY_RUN)); then
        "$venv/bin/rollcall" -q provision "${args[@]}" || warn "could not write the console setup code"
    else
        priv "$VENV/bin/rollcall" provision --ensure-setup-code
    fi
}

# On a terminal, a device without a broker gets the provisioning questions right away
# (its device id was already made from the machine id by ensure_setup_code).
maybe_provision() {
    local config="$ETC/config.toml"
    if ((NO_PROVISION || DRY_RUN)) || [[ -n "$ROOT" || ! -t 0 || ! -x "$VENV/bin/rollcall" ]]; then return 0; fi
    "$PYTHON" - "$config" <<'EOF' || return 0
import sys, tomllib
sys.exit(1 if tomllib.load(open(sys.argv[1], "rb")).get("mqtt", {}).get("host") else 0)
EOF
    say "a few questions to provision this device (Enter keeps a default; change later: sudo rollcall provision)"
    "$VENV/bin/rollcall" provision --config "$config" --no-restart ||
        warn "provisioning not finished: run sudo rollcall provision"
}

start_services() {
    if ((NO_START)); then say "--no-start: services enabled, not started"; return 0; fi
    if systemd_running; then
        say "restarting ${SERVICES[*]}"
        priv systemctl restart "${SERVICES[@]}"
    elif [[ -z "$ROOT" ]]; then
        say "systemd is not running (image build or chroot): services start at next boot"
    else
        PLAN+=("systemctl restart ${SERVICES[*]}")
    fi
}

console_url() {
    local config="$ROOT$ETC/config.toml" scheme port host
    read -r scheme port < <("$PYTHON" - "$config" <<'EOF' 2>/dev/null || echo "http 8080"
import sys, tomllib
try:
    console = tomllib.load(open(sys.argv[1], "rb")).get("console", {})
except OSError:
    console = {}
print("https" if console.get("https") else "http", console.get("port", 8080))
EOF
)
    host="$(hostname -I 2>/dev/null | awk '{print $1}')"
    printf '%s://%s:%s/' "$scheme" "${host:-$(hostname)}" "$port"
}

write_plan() {
    [[ -n "$ROOT" ]] && ! ((DRY_RUN)) || return 0
    printf '%s\n' "# privileged actions install.sh would run on a real system" "${PLAN[@]}" |
        write_text "$ROOT/.rollcall-install-plan" 0644
}

require_root() {
    if [[ -z "$ROOT" && $EUID -ne 0 && $DRY_RUN -eq 0 ]]; then
        die "run as root (sudo ./install.sh), or use --dev, --root DIR or --dry-run"
    fi
}

install_device() {
    local tool
    require_root
    # The services run as system users: the venv must not sit on a user's pyenv/conda python.
    if [[ -z "${ROLLCALL_PYTHON:-}" && -x /usr/bin/python3 ]]; then PYTHON=/usr/bin/python3; fi
    check_python
    ensure_packages
    explain_hardware
    ensure_users
    ensure_layout
    ensure_device_venv
    tool="${TOOL_VENV:-$ROOT$VENV}"
    ensure_models "$tool" "$ROOT$MODELS"
    install_config "$ROOT$ETC/config.toml" "$CONSOLE_USER:$SVC_USER" device_config "$tool"
    migrate_data "$tool"
    ensure_cli_link
    if [[ -f "$SRC_DIR/README.md" ]]; then install_file "$SRC_DIR/README.md" "$ROOT$OPT/README.md" 0644; fi
    install_units
    ensure_setup_code "$tool"
    maybe_provision
    start_services
    write_plan
    if ((DRY_RUN)); then say "dry run: nothing was changed"; return 0; fi
    say "installed. Console: $(console_url)"
    say "next: sudo rollcall provision   (device id, broker, credentials, console password)"
}

uninstall_device() {
    local unit
    require_root
    if systemd_running; then
        priv systemctl disable --now "${UNIT_NAMES[@]}" || true
    elif [[ -z "$ROOT" && -e "$UNITS/${UNIT_NAMES[0]}" ]]; then
        priv systemctl disable "${UNIT_NAMES[@]}" || true
    fi
    for unit in "${UNIT_NAMES[@]}"; do
        if [[ -e "$ROOT$UNITS/$unit" ]]; then run rm -f "$ROOT$UNITS/$unit"; fi
    done
    if systemd_running; then priv systemctl daemon-reload; fi
    if [[ -d "$ROOT$OPT" ]]; then run rm -rf "$ROOT$OPT"; fi
    if [[ -L "$ROOT$CLI_LINK" ]]; then run rm -f "$ROOT$CLI_LINK"; fi
    if ((PURGE)); then
        say "purging config, credentials, data, logs and backups"
        run rm -rf "$ROOT$ETC" "$ROOT$DATA" "$ROOT$CONSOLE_STATE" "$ROOT$LOGS" "$ROOT$BACKUPS"
        if getent passwd "$CONSOLE_USER" >/dev/null; then priv userdel "$CONSOLE_USER"; fi
        if getent passwd "$SVC_USER" >/dev/null; then priv userdel "$SVC_USER"; fi
    else
        say "kept $ETC, $DATA and $CONSOLE_STATE (use --uninstall --purge to delete them)"
    fi
    write_plan
    say "uninstalled"
}

main() {
    parse_args "$@"
    case "$MODE" in
        dev) install_dev ;;
        uninstall) uninstall_device ;;
        device) install_device ;;
    esac
}

# Sourcing the file (tests) defines the functions without running anything.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
