#!/usr/bin/env bash
# The speed benchmark of issue 2: the `pendulum-peer` preset (the configuration of the most-used
# Python library's documented Pendulum example), one thread, seeds run one after another so
# each has a core to itself. Prints, per seed, environment steps/s of the whole run (steps /
# wall time of training, reward learning and labeling included) and the final policy's true
# return (`prefrl eval`, 20 episodes), then mean ± std and median over seeds.
# The preset runs the library's real schedule: its total_timesteps=50000 over 60 iterations
# steps the environments 128,928 times (each iteration completes one 2048-step PPO rollout; see
# src/prefrl/app/presets.cc), so prefrl runs 63 rollouts of 2048 = 129,024 steps. "nominal
# steps/s" divides the library's 50,000 by the same wall time, for comparison with figures
# that count its nominal budget.
# Usage: bench/pendulum_peer.sh [SEEDS=5] [extra train flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-5}
shift $(( $# >= 1 ? 1 : 0 ))
BIN=${PREFRL:-build/prefrl}
ROOT=${ROOT:-runs/pendulum-peer-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$ROOT"
for s in $(seq 1 "$SEEDS"); do
  "$BIN" train --env pendulum --preset pendulum-peer --seed "$s" --run-dir "$ROOT/seed$s" "$@" > "$ROOT/seed$s.out" 2>&1
done
python3 - "$ROOT" "$SEEDS" "$BIN" <<'PY'
import json, subprocess, sys, statistics
root, seeds, binary = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sps, nominal, rets = [], [], []
for s in range(1, seeds + 1):
    d = f"{root}/seed{s}"
    summ = json.load(open(f"{d}/summary.json"))
    ev = json.loads(subprocess.check_output([binary, "eval", d, "--episodes", "20", "--json"]))
    sps.append(summ["env_steps"] / summ["wall_s"]); nominal.append(50000 / summ["wall_s"]); rets.append(ev["mean_return"])
    print(f"seed {s}: {sps[-1]:8.0f} env steps/s ({nominal[-1]:6.0f} nominal) | {summ['env_steps']} steps in {summ['wall_s']:.2f} s | "
          f"eval return {ev['mean_return']:8.1f} ± {ev['std_return']:6.1f} | labels {summ['labels']}")
sd = lambda v: statistics.pstdev(v) if len(v) > 1 else 0.0
good = sum(r >= -260 for r in rets)
print(f"pendulum-peer: {statistics.mean(sps):.0f} ± {sd(sps):.0f} env steps/s ({statistics.mean(nominal):.0f} nominal); "
      f"eval return {statistics.mean(rets):.1f} ± {sd(rets):.1f} (median {statistics.median(rets):.1f}) over {seeds} seeds; "
      f"{good}/{seeds} seeds >= -260")
PY
