#!/usr/bin/env bash
# The MuJoCo table of issue 4: for each task, PPO on the true reward (preset TASK-true) and
# from oracle preferences with the paper's settings (preset TASK: 700 labels), 1M steps each,
# several seeds; each final policy judged by `prefrl eval` over 20 episodes (Gymnasium's rules:
# episodes end where the task ends them). Runs J at a time (default 2: one per core).
#
# Usage: bench/mujoco_seeds.sh [TASKS="hopper halfcheetah ..."] [SEEDS=3] [J=2] [extra train flags...]
#   e.g. bench/mujoco_seeds.sh "hopper walker2d" 3 2
# Prints one line per run, then per task: each seed's evaluation return, true and learned,
# and learned / true (of the means). Runs already finished under ROOT are not run again.
# KINDS="learned true" (the default) chooses which of the two presets run (e.g. KINDS=true).
set -euo pipefail
cd "$(dirname "$0")/.."
ALL="hopper halfcheetah walker2d swimmer reacher inverted_pendulum inverted_double_pendulum"
TASKS=${1:-$ALL}
SEEDS=${2:-3}
JOBS=${3:-2}
KINDS=${KINDS:-learned true}
shift $(( $# >= 3 ? 3 : $# ))
BIN=${PREFRL:-build/prefrl}
ROOT=${ROOT:-runs/mujoco-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$ROOT"
run_one() {
  local preset=$1 task=$2 seed=$3; shift 3
  local d="$ROOT/$preset-s$seed"
  if [ -f "$d/summary.json" ] && grep -q '"finished"' "$d/summary.json"; then return 0; fi
  rm -rf "$d"
  "$BIN" train --env "$task" --preset "$preset" --seed "$seed" --run-dir "$d" "$@" > "$d.out" 2>&1 || echo "$preset seed $seed failed" >&2
  "$BIN" eval "$d" --episodes 20 --json > "$d.eval.json" 2> "$d.eval.err" || echo "$preset seed $seed: eval failed" >&2
}
export -f run_one
export BIN ROOT
for task in $TASKS; do
  for s in $(seq 1 "$SEEDS"); do
    for kind in $KINDS; do
      case $kind in
        learned) echo "$task $task $s" ;;
        true) echo "$task-true $task $s" ;;
        *) echo "KINDS: unknown kind '$kind' (expected learned, true)" >&2; exit 2 ;;
      esac
    done
  done
done | xargs -P "$JOBS" -L 1 bash -c 'run_one "${@: -3}" "${@:1:$#-3}"' _ "$@"  # xargs appends the line's 3 words
python3 - "$ROOT" "$SEEDS" "$TASKS" <<'PY'
import json, os, statistics, sys
root, seeds, tasks = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
def result(preset, s):
    d = f"{root}/{preset}-s{s}"
    try:
        ev = json.load(open(d + ".eval.json"))
        summ = json.load(open(d + "/summary.json"))
        return ev["mean_return"], summ
    except Exception:
        return None, None
print(f"{'task':<26} {'true-reward PPO (per seed)':<32} {'700 labels (per seed)':<32} learned/true  wall (learned, s)")
for t in tasks:
    tr, lr, walls = [], [], []
    for s in range(1, seeds + 1):
        a, _ = result(t + "-true", s)
        b, summ = result(t, s)
        tr.append(a); lr.append(b)
        if summ: walls.append(summ["wall_s"])
    fmt = lambda v: ", ".join("FAILED" if x is None else f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}" for x in v)
    ok_t, ok_l = [x for x in tr if x is not None], [x for x in lr if x is not None]
    ratio = (statistics.mean(ok_l) / statistics.mean(ok_t)) if ok_t and ok_l and statistics.mean(ok_t) != 0 else float("nan")
    print(f"{t:<26} {fmt(tr):<32} {fmt(lr):<32} {ratio:6.2f}        {', '.join(f'{w:.0f}' for w in walls)}")
PY
