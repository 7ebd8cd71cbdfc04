#!/usr/bin/env bash
# The reference-run comparison: fixed seeds, one thread; each run's metrics (wall-clock series
# aside), preference database, summary and `prefrl eval` output are fingerprinted
# (bench/run_fingerprint.py) and compared with the hashes stored in
# tests/data/reference_runs.json. A restructuring must keep every case equal; a change meant to
# alter results re-records them (`record`) and says which and why.
#
# Usage: bench/reference_runs.sh check|record [CASE...]     (default: every case)
#   cases: cartpole pendulum pendulum_peer movingdot hopper human cartpole_resumed
#   env:   PREFRL=path/to/prefrl (default build/prefrl), ROOT=dir for the runs (default: a
#          temporary directory, removed afterwards unless KEEP=1)
# `human` is a --teacher human run answered through the HTTP API by bench/human_driver.py;
# `cartpole_resumed` is killed (SIGKILL) at a random moment and resumed, and must equal the
# uninterrupted run. Takes about 2 minutes for every case on this machine.
# The hashes hold on the processor they were recorded on (its model and vector extensions are
# stored beside them: BLAS and the SIMD kernels choose code paths by them). On another
# processor `check` exits 77 (skipped) saying so: record the hashes there with the binary of the
# commit that recorded them (git log tests/data/reference_runs.json), then check.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?usage: bench/reference_runs.sh check|record [CASE...]}
shift
[[ $MODE == check || $MODE == record ]] || { echo "mode must be check or record, not '$MODE'" >&2; exit 2; }
BIN=$(realpath "${PREFRL:-build/prefrl}")
STORE=tests/data/reference_runs.json
PY=/usr/bin/python3
if [[ -n ${ROOT:-} ]]; then mkdir -p "$ROOT"; else ROOT=$(mktemp -d); [[ ${KEEP:-0} == 1 ]] || trap 'rm -rf "$ROOT"' EXIT; fi

COMMON="--seed 1 --threads 1 --set run.progress_every_s=0"
declare -A ARGS=(
  [cartpole]="--env cartpole"
  [pendulum]="--env pendulum --steps 100000"
  [pendulum_peer]="--env pendulum --preset pendulum-peer"
  [movingdot]="--env movingdot --steps 12288 --labels 40"
  [hopper]="--env hopper --steps 200000"
  [human]="--env pendulum --teacher human --steps 20480 --labels 40 --set server.max_label_lag=0 --set server.undo_window_s=0 --set prefs.query_batch=5"
  [cartpole_resumed]="--env cartpole --steps 40960 --labels 80 --set run.checkpoint_every=2"
)
ORDER=(cartpole pendulum pendulum_peer movingdot hopper human cartpole_resumed)
CASES=("$@")
[[ ${#CASES[@]} -gt 0 ]] || CASES=("${ORDER[@]}")

# The processor, as far as it decides floating-point results: model and vector extensions.
machine() {
  local model flags
  model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx|avx2|fma|avx512[a-z]*)$' | sort | tr '\n' ' ')
  echo "$model; ${flags% }"
}
MACHINE=$(machine)
if [[ $MODE == check ]]; then
  RECORDED=$($PY -c "import json,sys; print(json.load(open('$STORE')).get('_machine', ''))")
  if [[ $RECORDED != "$MACHINE" ]]; then
    echo "reference hashes were recorded on '$RECORDED'; this machine is '$MACHINE': they need not apply here."
    echo "Record them with the binary of the commit that recorded them (git log $STORE), then check. Skipped."
    exit 77
  fi
fi

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

run_case() {  # name => the run directory, trained
  local name=$1 dir=$ROOT/$1
  rm -rf "$dir"
  case $name in
    human)
      local port; port=$(free_port)
      "$BIN" train ${ARGS[$name]} $COMMON --port "$port" --run-dir "$dir" > "$dir.out" 2>&1 &
      local pid=$!
      $PY bench/human_driver.py "http://127.0.0.1:$port" "$pid" 2>> "$dir.out"
      wait "$pid"
      ;;
    cartpole_resumed)
      "$BIN" train ${ARGS[$name]} $COMMON --run-dir "$dir" > "$dir.out" 2>&1 &
      local pid=$!
      local wait_s; wait_s=$($PY -c 'import random; print(round(random.uniform(0.5, 4.0), 2))')
      sleep "$wait_s"
      if kill -KILL "$pid" 2>/dev/null; then
        wait "$pid" || true
        if [[ -f $dir/config.json ]]; then
          echo "killed after ${wait_s} s; resuming" >> "$dir.out"
          "$BIN" train --resume "$dir" >> "$dir.out" 2>&1
        else  # killed before the run directory was written (a slow start on a busy machine)
          echo "killed after ${wait_s} s, before the run directory was written; starting it again" >> "$dir.out"
          rm -rf "$dir"
          "$BIN" train ${ARGS[$name]} $COMMON --run-dir "$dir" >> "$dir.out" 2>&1
        fi
      else
        wait "$pid"
        echo "finished before the kill at ${wait_s} s" >> "$dir.out"
      fi
      ;;
    *)
      "$BIN" train ${ARGS[$name]} $COMMON --run-dir "$dir" > "$dir.out" 2>&1
      ;;
  esac
  "$BIN" eval "$dir" --episodes 5 --json > "$dir.eval.json"
}

status=0
declare -A GOT
for name in "${CASES[@]}"; do
  [[ -n ${ARGS[$name]:-} ]] || { echo "unknown case '$name' (cases: ${ORDER[*]})" >&2; exit 2; }
  t0=$(date +%s.%N)
  if ! run_case "$name"; then
    echo "$name: the run failed (see $ROOT/$name.out)"; tail -5 "$ROOT/$name.out"; status=1; continue
  fi
  GOT[$name]=$($PY bench/run_fingerprint.py "$ROOT/$name" "$ROOT/$name.eval.json")
  secs=$($PY -c "import time; print(f'{time.time() - $t0:.0f}')")
  if [[ $MODE == check ]]; then
    verdict=$($PY - "$STORE" "$name" "${GOT[$name]}" <<'PY'
import json, sys
store, name, got = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
want = json.load(open(store)).get(name)
if want is None:
    print("no stored hashes"); sys.exit(1)
# A part stored as {"re-record": why} changed on purpose where its hash cannot be recorded (another
# processor): not compared, and said so.
keys = ("metrics", "metrics_lines", "db", "db_rows", "summary", "eval")
pending = [k for k in keys if isinstance(want.get(k), dict) and "re-record" in want[k]]
bad = [k for k in keys if k not in pending and want.get(k) != got.get(k)]
note = "".join(f"; {k} not compared ({want[k]['re-record']}; got {got.get(k)})" for k in pending)
print(("identical" if not bad else "DIFFERS in " + ", ".join(bad) + f" (stored {json.dumps({k: want.get(k) for k in bad})}, got {json.dumps({k: got.get(k) for k in bad})})") + note)
sys.exit(1 if bad else 0)
PY
) || status=1
    echo "$name: $verdict (${secs} s)"
  else
    echo "$name: recorded (${secs} s) ${GOT[$name]}"
  fi
done

if [[ $MODE == record ]]; then
  args=()
  for name in "${!GOT[@]}"; do args+=("$name" "${GOT[$name]}"); done
  $PY - "$STORE" "$MACHINE" "${args[@]}" <<'PY'
import json, os, sys
store = sys.argv[1]
data = json.load(open(store)) if os.path.exists(store) else {}
data["_machine"] = sys.argv[2]
it = iter(sys.argv[3:])
for name, fp in zip(it, it):
    data[name] = json.loads(fp)
with open(store, "w") as f:
    json.dump(data, f, indent=1, sort_keys=True)
    f.write("\n")
PY
  echo "stored in $STORE"
fi
exit $status
