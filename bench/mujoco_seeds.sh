#!/usr/bin/env bash
# The MuJoCo table of issue 4: for each task, PPO on the true reward (preset TASK-true) and
# from oracle preferences with the paper's settings (preset TASK: 700 labels), 1M steps each,
# several seeds; each final policy judged by `prefrl eval` over 20 episodes (Gymnasium's rules:
# episodes end where the task ends them). Runs J at a time (default 2: one per core).
#
# Usage: bench/mujoco_seeds.sh [TASKS="hopper halfcheetah ..."] [SEEDS=3] [J=2] [extra train flags...]
#   e.g. bench/mujoco_seeds.sh "hopper walker2d" 3 2
# Prints per task: the initial policy's return (sampled), each seed's evaluation return, true
# and learned, learned / true and the normalised score (learned - initial) / (true - initial),
# both of the means, and how many seeds reach 80% of the true mean (raw; positive tasks) and a
# normalised 0.8. Runs already finished under ROOT are not run again.
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
# The initial policy (what the first quarter of the labels is asked about: untrained, std 1,
# learning rate 0 so no update moves it), sampled: the floor of the normalised score below.
for task in $TASKS; do
  d="$ROOT/$task-initial"
  [ -f "$d.eval.json" ] && continue
  rm -rf "$d"
  "$BIN" train --env "$task" --preset "$task-true" --steps 1 --seed 1 --run-dir "$d" --set ppo.lr=0 \
    --set run.eval_episodes=0 > "$d.out" 2>&1 || echo "$task initial policy failed" >&2
  "$BIN" eval "$d" --episodes 20 --stochastic --json > "$d.eval.json" 2> "$d.eval.err" || echo "$task initial: eval failed" >&2
done
python3 - "$ROOT" "$SEEDS" "$TASKS" <<'PY'
import json, statistics, sys
root, seeds, tasks = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
def ev(d):
    try:
        return json.load(open(d + ".eval.json"))["mean_return"]
    except Exception:
        return None
def wall(d):
    try:
        return json.load(open(d + "/summary.json"))["wall_s"]
    except Exception:
        return None
# learned/true: of the means (positive true means only). normalised: (learned - initial) /
# (true - initial), of the means, defined for every task (reacher's returns are negative).
# ">= 80%": seeds whose learned return is at least 80% of the true mean (positive tasks), and
# seeds whose normalised score is at least 0.8.
print(f"{'task':<26} {'initial':>8}  {'true-reward PPO (per seed)':<28} {'700 labels (per seed)':<28} "
      f"{'learned/true':>12} {'normalised':>10} {'>=80% raw':>9} {'>=0.8 norm':>10}  wall (learned, s)")
for t in tasks:
    init = ev(f"{root}/{t}-initial")
    tr = [ev(f"{root}/{t}-true-s{s}") for s in range(1, seeds + 1)]
    lr = [ev(f"{root}/{t}-s{s}") for s in range(1, seeds + 1)]
    walls = [w for w in (wall(f"{root}/{t}-s{s}") for s in range(1, seeds + 1)) if w is not None]
    fmt = lambda v: ", ".join("FAILED" if x is None else f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}" for x in v)
    ok_t, ok_l = [x for x in tr if x is not None], [x for x in lr if x is not None]
    mt = statistics.mean(ok_t) if ok_t else None
    ml = statistics.mean(ok_l) if ok_l else None
    nan = float("nan")
    ratio = ml / mt if mt and ml is not None and mt > 0 else nan
    norm = lambda x: (x - init) / (mt - init) if init is not None and mt is not None and mt != init else nan
    score = norm(ml) if ml is not None else nan
    raw_ok = f"{sum(x >= 0.8 * mt for x in ok_l)}/{len(lr)}" if mt and mt > 0 else "-"
    norm_ok = f"{sum(norm(x) >= 0.8 for x in ok_l)}/{len(lr)}" if init is not None and mt is not None else "-"
    init_s = "FAILED" if init is None else f"{init:.1f}"
    print(f"{t:<26} {init_s:>8}  {fmt(tr):<28} {fmt(lr):<28} {ratio:12.2f} {score:10.2f} {raw_ok:>9} {norm_ok:>10}  "
          f"{', '.join(f'{w:.0f}' for w in walls)}")
PY
