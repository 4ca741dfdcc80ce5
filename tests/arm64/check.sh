#!/usr/bin/env bash
# Prove Rollcall on the Pi's architecture: arm64 Debian 12 under qemu-user, on this machine.
#
# Makes (or reuses) a cached arm64 Debian 12 root, installs the project in it the way a Pi
# gets it (install.sh with the models prebuilt here and copied in: no TensorFlow on the
# "Pi"), then runs inside the emulated root:
#   1. rollcall models verify
#   2. the recognition pipeline on real faces, embeddings compared with this host's
#   3. rollcall run on a replayed clip (MockFactory GPIO, the store, MQTT to a mosquitto in
#      the root); the attendance event must reach the reference collector
#   4. the test subset marked `arm64`
#
# Exits 0 with "SKIPPED: <reason>" when the machine cannot run it (not root, no binfmt,
# no qemu, no models, no ../shared data); exits non-zero when a check fails.
#
# Environment: ROLLCALL_ARM64_CACHE (default /var/cache/rollcall-arm64),
# ROLLCALL_SHARED_DATA (default ../shared/data), ROLLCALL_MODELS_DIR (default var/models),
# ROLLCALL_ARM64_INSTALL_HOST_DEPS=1 to apt-get install qemu-user-static/debootstrap.
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$PWD
CACHE=${ROLLCALL_ARM64_CACHE:-/var/cache/rollcall-arm64}
SHARED=${ROLLCALL_SHARED_DATA:-$REPO/../shared/data}
MODELS=${ROLLCALL_MODELS_DIR:-$REPO/var/models}
HOST_PY=${HOST_PY:-$REPO/.venv/bin/python}
PACKAGES="python3,python3-venv,python3-pip,ca-certificates,mosquitto"
MIRROR=${ROLLCALL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOT=""
WORK=""

log() { printf 'arm64 check: %s\n' "$*"; }
skip() { log "SKIPPED: $*"; exit 0; }
die() { log "FAILED: $*" >&2; exit 1; }

host_preconditions() {
    [[ $(id -u) -eq 0 ]] || skip "needs root (debootstrap, chroot, binfmt_misc)"
    if [[ ${ROLLCALL_ARM64_INSTALL_HOST_DEPS:-0} == 1 ]] && command -v apt-get >/dev/null; then
        if ! command -v debootstrap >/dev/null || [[ ! -e /usr/bin/qemu-aarch64-static ]]; then
            { apt-get update -qq &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static binfmt-support debootstrap; } >/dev/null \
                || skip "could not apt-get install qemu-user-static binfmt-support debootstrap"
        fi
    fi
    command -v debootstrap >/dev/null || skip "debootstrap is not installed"
    [[ -e /usr/bin/qemu-aarch64-static ]] || skip "qemu-user-static is not installed"
    if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
            || skip "cannot mount binfmt_misc (no privilege for it in this container)"
    fi
    if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
        update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 \
            || skip "cannot register qemu-aarch64 with binfmt_misc"
    fi
    [[ -d $SHARED/faces-small ]] || skip "real test data not found at $SHARED"
    [[ -x $HOST_PY ]] || skip "no host venv at $REPO/.venv (run ./install.sh --dev first)"
    "$HOST_PY" -m firmware.cli -q models verify --dir "$MODELS" >/dev/null \
        || skip "models are not built and verified in $MODELS (run ./install.sh --dev)"
}

cache_key() {
    # The root depends on the Debian package list only; Python packages are installed by
    # install.sh inside it (its venv persists in the root, pip's cache in $CACHE/pip).
    printf '%s\n%s\n' "$PACKAGES" "$MIRROR" | sha256sum | cut -c1-16
}

make_root() {
    local key tmp
    key=$(cache_key)
    ROOT=$CACHE/root-$key
    if [[ -x $ROOT/usr/bin/python3 && -e $ROOT/.rollcall-root-complete ]]; then
        log "reusing cached arm64 root $ROOT"
        return
    fi
    mkdir -p "$CACHE"
    tmp=$CACHE/tmp-$key
    rm -rf "$tmp"
    log "debootstrapping arm64 Debian 12 into $tmp (about 4 minutes)"
    debootstrap --arch=arm64 --variant=minbase --include="$PACKAGES" bookworm "$tmp" "$MIRROR" \
        >"$CACHE/debootstrap-$key.log" 2>&1 || die "debootstrap failed: see $CACHE/debootstrap-$key.log"
    touch "$tmp/.rollcall-root-complete"
    rm -rf "$ROOT"
    mv "$tmp" "$ROOT"
}

mount_root() {
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
    if [[ -f /etc/pip.conf ]]; then cp /etc/pip.conf "$ROOT/etc/pip.conf"; fi
    mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
    # No sysfs on purpose: the host's /sys describes x86 CPUs, and XNNPACK's cpuinfo then
    # crashes (SIGSEGV in allocate_tensors) under qemu-user. Without it cpuinfo falls back.
    mountpoint -q "$ROOT/dev" || mount --bind /dev "$ROOT/dev"
    mkdir -p "$ROOT/mnt/shared" "$ROOT/mnt/models" "$ROOT/mnt/work" "$ROOT/root/.cache/pip" "$CACHE/pip"
    mountpoint -q "$ROOT/root/.cache/pip" || mount --bind "$CACHE/pip" "$ROOT/root/.cache/pip"
    mountpoint -q "$ROOT/mnt/shared" || mount --bind -o ro "$SHARED" "$ROOT/mnt/shared"
    mountpoint -q "$ROOT/mnt/models" || mount --bind -o ro "$MODELS" "$ROOT/mnt/models"
    WORK=$(mktemp -d /tmp/rollcall-arm64.XXXXXX)
    mount --bind "$WORK" "$ROOT/mnt/work"
}

unmount_root() {
    [[ -n $ROOT ]] || return 0
    local m
    for m in mnt/work mnt/models mnt/shared root/.cache/pip dev proc/sys/fs/binfmt_misc proc; do
        if mountpoint -q "$ROOT/$m"; then umount -l "$ROOT/$m" || true; fi
    done
    [[ -z $WORK ]] || rm -rf "$WORK"
}

in_root() {
    chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
        PIP_DISABLE_PIP_VERSION_CHECK=1 ROLLCALL_SHARED_DATA=/mnt/shared ROLLCALL_MODELS_DIR=/opt/rollcall-src/var/models \
        /bin/bash -c "$1"
}

sync_source() {
    # The committed tree plus uncommitted changes, without venvs, data or build output.
    mkdir -p "$ROOT/opt/rollcall-src"
    tar -C "$REPO" --exclude=./.venv --exclude=./var --exclude=./test-artifacts --exclude=./.git \
        --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$ROOT/opt/rollcall-src" -xf -
}

main() {
    local started=$SECONDS
    host_preconditions
    make_root
    trap unmount_root EXIT
    mount_root
    sync_source
    log "installing the project in the arm64 root (install.sh --dev --models, no TensorFlow)"
    in_root "cd /opt/rollcall-src && ./install.sh --dev --models /mnt/models" \
        || die "install.sh failed inside the arm64 root"
    log "1/4 rollcall models verify"
    in_root "cd /opt/rollcall-src && .venv/bin/rollcall models verify --dir var/models" || die "models verify failed"
    log "2/4 embeddings of real faces, arm64 vs this host"
    "$HOST_PY" tests/arm64/embed_faces.py --models "$MODELS" --data "$SHARED" --out "$WORK/host.json"
    in_root "cd /opt/rollcall-src && .venv/bin/python tests/arm64/embed_faces.py --models var/models \
        --data /mnt/shared --out /mnt/work/arm64.json"
    "$HOST_PY" tests/arm64/embed_faces.py --compare "$WORK/host.json" "$WORK/arm64.json" --min-cosine 0.999 \
        || die "arm64 embeddings differ from the host's"
    log "3/4 rollcall run on a replayed clip, MQTT to mosquitto, collector"
    in_root "cd /opt/rollcall-src && .venv/bin/python tests/arm64/device_run.py --work /mnt/work --data /mnt/shared" \
        || die "the device run inside the arm64 root failed"
    log "4/4 pytest -m arm64"
    local subset
    subset=$("$HOST_PY" -c 'from tests.conftest import ARM64_SUBSET; print(" ".join(sorted(ARM64_SUBSET)))')
    # Only the subset's files are collected: importing the whole suite under emulation
    # costs minutes by itself.
    in_root "cd /opt/rollcall-src && .venv/bin/python -m pytest -q -m arm64 -p no:cacheprovider --durations=5 $subset" \
        || die "the arm64 test subset failed"
    log "PASSED in $((SECONDS - started)) s"
}

main "$@"
