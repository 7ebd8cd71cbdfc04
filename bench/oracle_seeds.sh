#!/usr/bin/env bash
# Learning from oracle preferences, several seeds: trains each seed with the environment's
# preset (two at a time), then judges each final policy with `prefrl eval` over 20 episodes.
# Usage: [FIRST=1] [JOBS=2] bench/oracle_seeds.sh ENV [SEEDS=5] [extra train flags...]
# (seeds FIRST .. FIRST+SEEDS-1, JOBS at a time)
# Prints one line per seed and a summary: mean ± std of the evaluation returns.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV=${1:?usage: bench/oracle_seeds.sh ENV [SEEDS] [train flags...]}
SEEDS=${2:-5}
shift $(( $# >= 2 ? 2 : 1 ))
BIN=${PREFRL:-build/prefrl}
FIRST=${FIRST:-1}
JOBS=${JOBS:-2}
ROOT=${ROOT:-runs/oracle-$ENV-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$ROOT"
run_seed() {
  local s=$1; shift
  "$BIN" train --env "$ENV" --seed "$s" --run-dir "$ROOT/seed$s" "$@" > "$ROOT/seed$s.out" 2>&1 || echo "seed $s failed" >&2
}
export -f run_seed
export BIN ENV ROOT
seq "$FIRST" $((FIRST + SEEDS - 1)) | xargs -P "$JOBS" -I{} bash -c 'run_seed {} "$@"' _ "$@"
python3 - "$ROOT" "$SEEDS" "$BIN" "$FIRST" <<'PY'
import json, subprocess, sys, statistics
root, seeds, binary, first = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
rets = []
for s in range(first, first + seeds):
    d = f"{root}/seed{s}"
    try:
        summ = json.load(open(f"{d}/summary.json"))
        ev = json.loads(subprocess.check_output([binary, "eval", d, "--episodes", "20", "--json"]))
    except Exception as e:
        print(f"seed {s}: FAILED ({e})"); continue
    rets.append(ev["mean_return"])
    extra = f" success {ev['success_rate']:.2f}" if "success_rate" in ev else ""
    print(f"seed {s}: eval {ev['mean_return']:9.2f} ± {ev['std_return']:7.2f}{extra} | labels {summ['labels']} | "
          f"steps {summ['env_steps']} | val acc {summ['val_accuracy']} | true corr final {summ['final_true_corr']} "
          f"held-out {summ.get('heldout_true_corr')} | {summ['wall_s']:.1f} s")
if rets:
    sd = statistics.pstdev(rets) if len(rets) > 1 else 0.0
    print(f"{root}: {len(rets)}/{seeds} seeds, eval mean {statistics.mean(rets):.2f} ± {sd:.2f}")
PY
