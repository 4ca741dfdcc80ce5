#!/usr/bin/env bash
# Install what the tests need, install Rollcall for development, run the whole suite.
#
#   ./tests/run.sh                 everything (what CI runs): the arm64 check, then pytest
#   ./tests/run.sh -m "not e2e"    extra arguments go to pytest (and skip the arm64 check)
#
# As root on Debian it apt-get installs the missing test tools (mosquitto, chromium,
# the shell linter, systemd-analyze, the PostgreSQL server); otherwise the tests that need
# them skip.
set -euo pipefail
cd "$(dirname "$0")/.."

# ROLLCALL_TEST_ARTIFACTS and ROLLCALL_SKIP_INSTALL=1 exist for the tests of this script.
readonly ARTIFACTS="${ROLLCALL_TEST_ARTIFACTS:-test-artifacts}"

say() { printf 'tests/run.sh: %s\n' "$*"; }

# "command package" pairs: the package that provides each tool the tests use.
tool_packages() {
    cat <<'LIST'
mosquitto mosquitto
chromium chromium
shellcheck shellcheck
systemd-analyze systemd
initdb postgresql
LIST
}

have_tool() {
    if [[ "$1" == initdb ]]; then  # Debian keeps the server binaries out of PATH
        compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
        return
    fi
    command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]] || [[ -x "/usr/bin/$1" ]]
}

missing_packages() {
    local tool pkg
    while read -r tool pkg; do
        if ! have_tool "$tool"; then
            if [[ "$tool" == chromium ]] && have_tool chromium-browser; then continue; fi
            echo "$pkg"
        fi
    done < <(tool_packages)
    # Playwright's bundled node driver needs libatomic.so.1, which chromium does not pull in.
    if command -v dpkg-query >/dev/null 2>&1 &&
        [[ "$(dpkg-query -W -f='${Status}' libatomic1 2>/dev/null)" != "install ok installed" ]]; then
        echo libatomic1
    fi
}

install_test_tools() {
    local missing=()
    mapfile -t missing < <(missing_packages)
    ((${#missing[@]})) || return 0
    if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        say "not installing ${missing[*]} (needs root and apt-get): the tests that need them skip"
        return 0
    fi
    say "installing test tools: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

summary() {
    .venv/bin/python - "$ARTIFACTS/junit.xml" "$1" "$2" <<'PY'
import sys
import xml.etree.ElementTree as ET

path, rc, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    root = ET.parse(path).getroot()
except (OSError, ET.ParseError):
    print(f"tests/run.sh: SUMMARY: no junit report (pytest exit {rc}) in {seconds}s")
    sys.exit(0)
suites = [root] if root.tag == "testsuite" else list(root)
count = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
passed = count["tests"] - count["failures"] - count["errors"] - count["skipped"]
state = "PASSED" if rc == 0 else "FAILED"
print(f"tests/run.sh: SUMMARY: {state}: {passed} passed, {count['failures']} failed, "
      f"{count['errors']} errors, {count['skipped']} skipped of {count['tests']} in {seconds}s "
      f"(pytest exit {rc}; report {path})")
# The plain closing line CI reads.
print(f"tests: {passed} passed, {count['failures'] + count['errors']} failed, {count['skipped']} skipped")
PY
}

# The arm64 check (tests/arm64/check.sh) runs with the whole suite, before pytest so that
# pytest's summary stays the last thing printed. It skips, saying why, where the machine
# cannot run it (not root, no binfmt_misc); ROLLCALL_SKIP_ARM64=1 turns it off.
arm64_check() {
    if [[ "${ROLLCALL_SKIP_ARM64:-0}" == 1 ]]; then
        say "arm64 check: SKIPPED: ROLLCALL_SKIP_ARM64=1"
        return 0
    fi
    ROLLCALL_ARM64_INSTALL_HOST_DEPS=1 bash tests/arm64/check.sh
}

main() {
    local rc start
    if [[ "${ROLLCALL_SKIP_INSTALL:-0}" != 1 ]]; then
        install_test_tools
        ./install.sh --dev
    fi
    mkdir -p "$ARTIFACTS"
    rm -f "$ARTIFACTS/junit.xml"
    local arm_rc=0
    if (($# == 0)); then
        arm64_check || arm_rc=$?
    fi
    start=$SECONDS
    set +e
    # A hung test must not eat CI's whole budget: faulthandler dumps every thread's stack
    # after 10 minutes in one test, and the run as a whole is cut off after 60.
    timeout --signal=INT --kill-after=60 3600 .venv/bin/python -m pytest -q -p no:cacheprovider \
        --durations=15 -o faulthandler_timeout=600 --junitxml="$ARTIFACTS/junit.xml" "$@"
    rc=$?
    set -e
    if ((rc == 5)); then
        say "pytest collected no tests: that is a failure"
        rc=1
    fi
    if ((arm_rc != 0)); then
        say "the arm64 check FAILED (exit $arm_rc): see its output above"
        ((rc != 0)) || rc=$arm_rc
    fi
    summary "$rc" "$((SECONDS - start))"
    return "$rc"
}

main "$@"
