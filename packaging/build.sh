#!/usr/bin/env bash
# Build the one-file `ramnet` executable (packaging/pyinstaller.spec) and smoke-test it as a
# machine without Python would run it: from a temporary folder outside the repository, with an
# empty environment (`env -i`), every command family, a real mesh on 127.0.0.1, and a check that
# it needs no shared library beyond what gcr.io/distroless/cc-debian12 carries.
#
#   bash packaging/build.sh              # build, then smoke-test
#   bash packaging/build.sh --no-build   # smoke-test the dist/ramnet already built
#
# Needs: the C extension built in the source tree (`pip install -e ".[packaging]"` does it and
# installs PyInstaller), a C compiler (PyInstaller's bootloader is compiled here, see below), ldd,
# and network access to PyPI the first time (the PyInstaller source). Environment: PYTHON (default
# `python`), KEEP_SMOKE=1 keeps the smoke-test folder. Exit status 0 only if every check passed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python}
PY=$("$PYTHON" -c 'import sys; print(sys.executable)')  # absolute: `env -i` drops PATH
EXE=$ROOT/dist/ramnet
START=$SECONDS
BUILD=1
for arg in "$@"; do
    case $arg in
        --no-build) BUILD=0 ;;
        -h | --help) sed -n '2,13p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "usage: bash packaging/build.sh [--no-build]" >&2; exit 2 ;;
    esac
done

say() { printf '== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}

# --- Shared libraries -------------------------------------------------------------------------
# What gcr.io/distroless/cc-debian12 provides: glibc (with its loader), libgcc_s, libstdc++,
# OpenSSL 3. Anything else must be inside the executable. Names are compared without versions.
allowed_lib() {
    local base=${1##*/}
    base=${base%%.so*}
    case $base in
        linux-vdso | linux-gate | ld-linux-x86-64 | ld-linux-aarch64 | ld-linux | libc | libm | \
            libpthread | libdl | librt | libutil | libresolv | libgcc_s | libstdc++ | libssl | \
            libcrypto) return 0 ;;
    esac
    return 1
}

HOST_LIBS=()  # every library resolved from the host, for the report
BAD_LIBS=()

# ldd_check FILE [BUNDLE_DIR]: what FILE needs from the host must be allowed. With BUNDLE_DIR, the
# loader searches it first, as the bootloader arranges (LD_LIBRARY_PATH) for the unpacked app.
ldd_check() {
    local file=$1 bundle=${2:-} out line name path shown
    shown=${bundle:+${file#"$bundle"/}}
    shown=${shown:-$file}
    out=$(LD_LIBRARY_PATH=$bundle ldd "$file" 2>&1) || true
    while IFS= read -r line; do
        line=${line#"${line%%[![:space:]]*}"}
        case $line in
            '' | *'not a dynamic executable'* | *'statically linked'*) continue ;;
            *'not found'*) BAD_LIBS+=("$shown: $line"); continue ;;
            *' => '*) name=${line%% => *}; path=${line#* => }; path=${path%% (*} ;;
            *) name=${line%% (*}; path=$name ;;
        esac
        if [[ -n $bundle && $path == "$bundle"/* ]]; then
            continue  # shipped inside the executable
        fi
        HOST_LIBS+=("${name##*/}")
        allowed_lib "$name" || BAD_LIBS+=("$shown: needs $name ($path) from the host")
    done <<<"$out"
}

# maps_check PID: every shared library mapped into a running process is bundled or allowed.
maps_check() {
    local pid=$1 path
    while IFS= read -r path; do
        [[ $path == */_MEI* ]] && continue
        HOST_LIBS+=("${path##*/}")
        allowed_lib "$path" || BAD_LIBS+=("process $pid maps $path from the host")
    done < <(awk '$6 ~ /\.so/ {print $6}' "/proc/$pid/maps" | sort -u)
}

report_libs() {
    local what=$1
    if ((${#BAD_LIBS[@]})); then
        printf '   %s\n' "${BAD_LIBS[@]}" >&2
        fail "$what needs libraries that distroless cc-debian12 does not carry"
    fi
    ok "$what: from the host only $(printf '%s\n' "${HOST_LIBS[@]}" | sort -u | tr '\n' ' ')"
    HOST_LIBS=()
}

# --- Build ------------------------------------------------------------------------------------
if ((BUILD)); then
    say "build"
    "$PY" -c 'import PyInstaller' 2>/dev/null \
        || fail "PyInstaller is not installed: pip install -e '.[packaging]'"
    # PyInstaller's prebuilt Linux bootloader links libz.so.1 dynamically, and distroless cc has
    # no zlib. So compile the bootloader from the same PyInstaller version's source with its
    # bundled zlib (PYI_STATIC_ZLIB=1), into build/ (ignored by git), put it first on PYTHONPATH
    # for the build, and reuse it while the installed version stays the same.
    PYI_VERSION=$("$PY" -c 'import PyInstaller; print(PyInstaller.__version__)')
    PYI_DIR=$ROOT/build/pyinstaller-static-zlib
    bootloader=$(find "$PYI_DIR/PyInstaller/bootloader" -path '*Linux*' -name run 2>/dev/null \
        | head -n1 || true)
    if [[ ! -d $PYI_DIR/pyinstaller-$PYI_VERSION.dist-info || -z $bootloader \
        || $(ldd "$bootloader") == *libz.* ]]; then
        say "compiling PyInstaller $PYI_VERSION's bootloader with a static zlib"
        rm -rf "$PYI_DIR"
        PYI_STATIC_ZLIB=1 PYINSTALLER_COMPILE_BOOTLOADER=1 "$PY" -m pip install --quiet \
            --disable-pip-version-check --no-deps --no-binary pyinstaller --target "$PYI_DIR" \
            "pyinstaller==$PYI_VERSION"
    fi
    (cd "$ROOT" && PYTHONPATH=$PYI_DIR${PYTHONPATH:+:$PYTHONPATH} "$PY" -m PyInstaller \
        --noconfirm --clean --log-level WARN packaging/pyinstaller.spec)
    ok "built $EXE in $((SECONDS - START)) s"
fi
[[ -x $EXE ]] || fail "$EXE does not exist; run without --no-build"

say "the executable itself"
ldd_check "$EXE"
report_libs "dist/ramnet (the bootloader)"

# --- Smoke test -------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ramnet-smoke.XXXXXX")
case $WORK in "$ROOT"/*) fail "the smoke-test folder $WORK is inside the repository" ;; esac
mkdir -p "$WORK/bin" "$WORK/home" "$WORK/mei"
cp "$EXE" "$WORK/bin/ramnet"
BIN=$WORK/bin/ramnet
PIDS=()  # background processes, and their names (for the logs)
NAMES=()
PASSED=0

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if ((PASSED)) && [[ -z ${KEEP_SMOKE:-} ]]; then
        rm -rf "$WORK"
    else
        for log in "$WORK"/*.log; do
            [[ -f $log ]] && { echo "--- $log"; tail -n 20 "$log"; }
        done
        echo "smoke-test folder kept: $WORK" >&2
    fi
}
trap cleanup EXIT
cd "$WORK"

# r ARGS...: the executable with an empty environment but HOME; r0: with no HOME at all.
r() { timeout 180 env -i HOME="$WORK/home" "$BIN" "$@"; }
r0() { timeout 180 env -i "$BIN" "$@"; }
# pycheck CODE: assertions in the build machine's Python (numpy, json) on the files made here.
pycheck() {
    "$PY" -c "import json, sys; import numpy as np; $1" || fail "a check failed (see above)"
}

say "--help, --version, doctor (empty environment; with and without HOME)"
for run in r r0; do
    $run --help >help.txt || fail "$run --help exited $?"
    grep -q 'Usage' help.txt || fail "--help printed no usage"
    $run doctor --json >doctor.json || fail "doctor --json exited $?"
    pycheck '
d = json.load(open("doctor.json"))["kernels"]
assert d["c_extension"] is True, d
assert d["default_backend"] == "c", d
assert d["numba"] is None, d'
done
ok "--help and doctor: C kernels loaded, numba not bundled"
version=$(r --version)
expected=$(cd "$ROOT" && "$PY" -c 'from ramnet._version import __version__; print(__version__)')
[[ $version == "ramnet $expected" ]] \
    || fail "--version said $version"
ok "--version: $version"

say "runtime hook: NUMBA_CACHE_DIR (numba is not bundled, so checked with this Python)"
hook() { env -i "$@" "$PY" -c 'import os, sys
exec(open(sys.argv[1]).read())
print(os.environ["NUMBA_CACHE_DIR"])' "$ROOT/packaging/hooks/rthook_numba_cache.py"; }
uid=$(id -u)
[[ $(hook NUMBA_CACHE_DIR=/kept HOME="$WORK/home") == /kept ]] || fail "hook: a set value"
[[ $(hook XDG_CACHE_HOME="$WORK/xdg" HOME="$WORK/home") == "$WORK/xdg/ramnet/numba" ]] \
    || fail "hook: XDG_CACHE_HOME"
[[ $(hook HOME="$WORK/home") == "$WORK/home/.cache/ramnet/numba" ]] || fail "hook: HOME"
[[ $(hook HOME="$WORK/no-such-home" TMPDIR="$WORK/mei") == "$WORK/mei/ramnet-$uid/numba" ]] \
    || fail "hook: no usable home"
[[ $(hook) == /* ]] || fail "hook: no HOME at all"
"$PY" -c 'import sys
from PyInstaller.archive.readers import CArchiveReader
assert "rthook_numba_cache" in CArchiveReader(sys.argv[1]).toc' "$EXE" \
    || fail "the runtime hook is not in dist/ramnet"
ok "kept when set; XDG_CACHE_HOME; ~/.cache; ramnet-$uid in the temporary folder without a home"

say "sovereign job with a proof, then verify (no HOME)"
r0 run --mode sovereign --random 256x256x256 --dtype int8 --seed 3 --save-inputs in \
    --out C.npy --trace t.bin --prove --key-file k.key --json >run.json 2>run.log \
    || fail "run exited $?: $(cat run.log)"
pycheck '
rep = json.load(open("run.json"))
assert rep["backend"] == "c" and rep["trace"]["proof_bytes"] > 0, rep
a, b, c = (np.load(p) for p in ("in/A.npy", "in/B.npy", "C.npy"))
assert (c == a.astype(np.int64) @ b.astype(np.int64)).all()'
r0 verify t.bin --a in/A.npy --b in/B.npy --c C.npy --json >verify.json \
    || fail "verify exited $?: $(cat verify.json)"
pycheck 'v = json.load(open("verify.json")); assert v["valid"] is True and not v["failed"], v'
pycheck 'c = np.load("C.npy"); c[7, 11] += 1; np.save("C-bad.npy", c)'
code=0
r0 verify t.bin --c C-bad.npy --json >verify-bad.json || code=$?
((code == 1)) || fail "verify of a tampered C exited $code, not 1"
pycheck 'v = json.load(open("verify-bad.json")); assert v["valid"] is False, v'
ok "C = A @ B, the trace and its proof verify (exit 0), a tampered C does not (exit 1)"
code=0
r0 run --random 8x8x8 --dtype int8 --out C-numba.npy --backend numba 2>numba.err || code=$?
((code != 0)) && grep -q '^error: numba is not installed' numba.err \
    && [[ $(wc -l <numba.err) -eq 1 ]] \
    || fail "--backend numba: exit $code, stderr: $(cat numba.err)"
ok "--backend numba fails cleanly (exit $code, one line: $(cat numba.err))"

say "keys, bench"
node_id=$(r keys init --key-file kk.key 2>/dev/null)
[[ $(r keys show --key-file kk.key) == "$node_id" ]] || fail "keys show differs from keys init"
# The wallet binding (EIP-712) with the known answer of tests/valkyrie/test_binding712.py: the
# node key of seed 00 01 .. 1f, eth-account's test key's signature, a fixed nonce and time.
printf 'ramnet-ed25519-seed-v1 %s\n' 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f \
    >kat.key && chmod 600 kat.key
KAT_ADDRESS=0x2c7536E3605D9C16a7a3D7b1898e529396a65c23
KAT_SIGNATURE=0xe1e6906ef0006cd6cef92b881873e9aca00d23c5ad385eff4ce6f7e7d4bee1893da84d0abb6d6b187066f82a3cdc4271ff87522268898aa6aabbd660352eeb7a1b
r keys bind --payout-address "$KAT_ADDRESS" --key-file kat.key --json >typed.json
pycheck 'assert json.load(open("typed.json"))["primaryType"] == "RamnetNodeBinding"'
r keys bind --payout-address "$KAT_ADDRESS" --key-file kat.key --nonce 81985529216486895 \
    --issued-at 1767225600 --wallet-signature "$KAT_SIGNATURE" --out binding.json 2>/dev/null \
    || fail "keys bind --wallet-signature"
[[ $(r keys check-binding binding.json) == "valid: node "*" is paid at $KAT_ADDRESS" ]] \
    || fail "keys check-binding"
sed 's/1767225600/1767225601/' binding.json >binding-bad.json
code=0
r keys check-binding binding-bad.json 2>/dev/null || code=$?
((code == 1)) || fail "keys check-binding of a tampered binding exited $code, not 1"
r bench gemm --size 96 --repeat 1 --json >bench.json
pycheck 'assert json.load(open("bench.json"))["backend"] == "c"'
ok "keys init/show/bind (EIP-712, a known answer)/check-binding (valid, tampered: 1), bench gemm"

say "mesh: coordinator, two workers by flags, one worker by environment only, a validator"
read -r PORT DAEMON_PORT PROXY_PORT < <("$PY" -c 'import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
URL=http://127.0.0.1:$PORT

# spawn NAME COMMAND...: start a background process that logs to NAME.log. COMMAND must be a
# program, not a shell function, so that its PID is the one signalled.
spawn() {
    local name=$1
    shift
    "$@" >"$name.log" 2>&1 &
    PIDS+=("$!")
    NAMES+=("$name")
}
pid_of() {  # NAME
    local i
    for i in "${!NAMES[@]}"; do
        [[ ${NAMES[$i]} == "$1" ]] && { echo "${PIDS[$i]}"; return; }
    done
}
# stop NAME: SIGTERM; the process must then exit with status 0.
stop() {
    local i code=0
    for i in "${!NAMES[@]}"; do
        [[ ${NAMES[$i]} == "$1" ]] || continue
        kill -TERM "${PIDS[$i]}"
        wait "${PIDS[$i]}" || code=$?
        unset "PIDS[$i]" "NAMES[$i]"
        ((code == 0)) || fail "$1 exited $code after SIGTERM: $(tail -n 5 "$1.log")"
        return
    done
}
wait_log() {  # FILE TEXT
    local i
    for ((i = 0; i < 600; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "$1 never said '$2': $(cat "$1")"
}
wait_http() {  # URL NAME: until URL answers 200, or NAME's process has ended
    "$PY" - "$1" "$(pid_of "$2")" <<'EOF' || fail "$2 did not come up: $(cat "$2.log")"
import os, sys, time, urllib.request
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=1) as reply:
            if reply.status == 200:
                sys.exit(0)
    except OSError:
        pass
    if not os.path.exists(f"/proc/{sys.argv[2]}"):
        break
    time.sleep(0.1)
sys.exit(1)
EOF
}
H=(env -i HOME="$WORK/home" "$BIN")  # as r, without a time limit: for servers

# The coordinator unpacks into $WORK/mei, so that what it unpacks can be inspected below.
spawn coord env -i HOME="$WORK/home" TMPDIR="$WORK/mei" "$BIN" coordinator start \
    --port "$PORT" --data-dir coord-state
wait_http "$URL/health" coord
ok "coordinator healthy on $URL"
spawn w0 "${H[@]}" worker start --coordinator "$URL" --key-file w0.key --bond 10
spawn w1 "${H[@]}" worker start --coordinator "$URL" --key-file w1.key --bond 10
# As in a container: no arguments, configured by the environment alone; the key is created in
# the default place under HOME.
mkdir -p "$WORK/envhome"
spawn wenv env -i RAMNET_MODE=worker RAMNET_COORDINATOR="$URL" STAKED_BOND=10 \
    RAMNET_PAYOUT_ADDRESS=acct-env HOME="$WORK/envhome" "$BIN"
for log in w0.log w1.log wenv.log; do wait_log "$log" registered; done
ok "three workers registered"

# mesh_job NAME SHAPE DTYPE: run a job on 3 nodes, check it settled and that C = A @ B.
mesh_job() {
    r run --mode mesh --nodes 3 --coordinator "$URL" --random "$2" --dtype "$3" --seed 5 \
        --save-inputs "in-$1" --out "C-$1.npy" --key-file consumer.key --json \
        >"$1.json" 2>"$1.err" || fail "mesh job $1 exited $?: $(cat "$1.err")"
    pycheck "
rep = json.load(open('$1.json'))
assert rep['state'] == 'settled' and rep['nodes'] == 3, rep
a, b, c = (np.load(p) for p in ('in-$1/A.npy', 'in-$1/B.npy', 'C-$1.npy'))
assert (c == a.astype(np.int64) @ b.astype(np.int64)).all()"
}
# Exactly three workers and three shards: each takes one, the environment-only worker included.
mesh_job job1 150x130x110 int8
grep -q 'revealed' wenv.log || fail "the environment-only worker computed no shard: $(cat wenv.log)"
[[ -f $WORK/envhome/.config/ramnet/node.key ]] || fail "no key at HOME/.config/ramnet/node.key"
ok "job 1 settled, C = A @ B; the environment-only worker computed a shard"

spawn v "${H[@]}" worker start --coordinator "$URL" --key-file v.key --validator --bond 10
wait_log v.log registered
mesh_job job2 64x50x40 int16
job_id=$("$PY" -c 'import json; print(json.load(open("job2.json"))["job_id"])')
r job status "$job_id" --coordinator "$URL" --key-file consumer.key --json >status.json
pycheck 'assert json.load(open("status.json"))["state"] == "settled"'
r job result "$job_id" --out C-job2-again.npy --coordinator "$URL" --key-file consumer.key \
    >/dev/null
pycheck 'assert (np.load("C-job2-again.npy") == np.load("C-job2.npy")).all()'
ok "job 2 settled with a validator present; job status, job result"

# The sidecar (an ORCHID daemon and a VALKYRIE proxy, shared memory between them), when this
# build has it. w0 and w1 stop first, so that the proxy is one of exactly three nodes.
if r daemon --help >/dev/null 2>&1; then
    say "sidecar: a daemon and its proxy as the third node"
    stop w1
    stop w0
    spawn daemon "${H[@]}" daemon start --port "$DAEMON_PORT" --socket "$WORK/daemon.sock"
    wait_http "http://127.0.0.1:$DAEMON_PORT/health" daemon
    spawn proxy "${H[@]}" proxy start --port "$PROXY_PORT" --daemon "unix://$WORK/daemon.sock" \
        --coordinator "$URL" --key-file proxy.key --bond 10
    wait_log proxy.log registered
    mesh_job job3 96x80x72 int8
    grep -q 'revealed' proxy.log || fail "the proxy computed no shard: $(cat proxy.log)"
    "$PY" - "http://127.0.0.1:$PROXY_PORT/status" <<'EOF' || fail "proxy /status"
import json, sys, urllib.request
status = json.load(urllib.request.urlopen(sys.argv[1], timeout=5))
assert status["blocks_by_daemon"] > 0 and status["bytes_via_shm"] > 0, status
assert status["blocks_rejected"] == 0, status
EOF
    ok "job 3 settled; the proxy's shard was computed by the daemon through shared memory"
else
    say "sidecar: skipped (this build has no 'ramnet daemon')"
fi
r ledger show --coordinator "$URL" --json >ledger.json
pycheck '
t = json.load(open("ledger.json"))["totals"]
assert t["conserved"] is True and t["escrow"] == 0, t'
ok "ledger show: conserved, no escrow left"

say "shared libraries of the unpacked application"
MEI=$(find "$WORK/mei" -mindepth 1 -maxdepth 1 -type d -name '_MEI*' | head -n1)
[[ -n $MEI ]] || fail "found no unpacked application under $WORK/mei"
nelf=0
while IFS= read -r -d '' f; do
    [[ $(head -c 4 "$f") == $'\177ELF' ]] || continue
    ldd_check "$f" "$MEI"
    nelf=$((nelf + 1))
done < <(find "$MEI" -type f -print0)
report_libs "$nelf ELF files unpacked by dist/ramnet"
for pid in "${PIDS[@]}"; do
    # shellcheck disable=SC2013 # the file is one line of space-separated PIDs
    for child in $(cat "/proc/$pid/task/$pid/children" 2>/dev/null); do
        maps_check "$child"
    done
done
report_libs "the running processes (${NAMES[*]})"

say "stop: workers first, then the coordinator (SIGTERM)"
for name in proxy daemon v wenv w1 w0 coord; do stop "$name"; done
for log in *.log; do
    ! grep -q 'No such option' "$log" || fail "$log: $(grep 'No such option' "$log")"
done
grep -Eq 'stopped after [1-9][0-9]* shards' wenv.log || fail "wenv.log: $(tail -n 2 wenv.log)"
w0_id=$(r keys show --key-file w0.key)
r ledger grant "$w0_id" 5 --data-dir coord-state >grant.json
pycheck 'g = json.load(open("grant.json")); assert g["balance"] > 0, g'
ok "every process exited 0 (the multiprocessing helpers ran as such); ledger grant offline"

say "size and start-up"
size=$(stat -c %s "$EXE")
help_median=$("$PY" - "$BIN" "$WORK/home" <<'EOF'
import statistics, subprocess, sys, time
times = []
for _ in range(9):
    t0 = time.perf_counter()
    subprocess.run([sys.argv[1], "--help"], env={"HOME": sys.argv[2]},
                   stdout=subprocess.DEVNULL, check=True)
    times.append(time.perf_counter() - t0)
print(f"{statistics.median(times):.3f}")
EOF
)
ok "dist/ramnet: $size bytes ($((size / 1048576)) MiB)"
ok "'env -i HOME=... ramnet --help': median of 9 runs ${help_median} s"

PASSED=1
say "all checks passed in $((SECONDS - START)) s"
