#!/usr/bin/env bash
# Agent steps/s of the whole Atari preference loop, with and without the reward model, and where
# the time goes: `prefrl train` on a game's learned-reward preset and on its true-reward preset
# for a short budget, then each run's overall steps/s and the share of every phase (the runs'
# time/* metrics summed over the run).
#
# Usage: bench/atari_loop.sh [GAME] [STEPS] [THREADS] [-- extra train args, e.g. --set k=v]
#   GAME pong (default) or enduro; STEPS 100000 by default; THREADS 2 by default.
# The learned-reward run starts with the 500 labels about the random policy and their
# pre-training, then asks for labels at the preset's schedule: a short budget over-weights the
# reward training; the figures of whole runs are in the runs' metrics (README, Atari). The
# pre-training alone takes ~8,000 steps (200 clips at 2 per rollout): give at least 20,000.
set -euo pipefail
cd "$(dirname "$0")/.."
GAME=${1:-pong}
STEPS=${2:-100000}
THREADS=${3:-2}
shift $(( $# < 3 ? $# : 3 ))
[[ "${1:-}" == "--" ]] && shift
PREFRL=${PREFRL:-build/prefrl}
PY=/usr/bin/python3
OUT=$(mktemp -d /tmp/prefrl_atari_loop.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

for preset in "$GAME" "$GAME-true"; do
  "$PREFRL" train --preset "$preset" --env "$GAME" --seed 1 --threads "$THREADS" \
    --set run.total_steps="$STEPS" --set run.eval_episodes=0 "$@" --run-dir "$OUT/$preset" \
    > "$OUT/$preset.log" 2>&1 || { cat "$OUT/$preset.log"; exit 1; }
  "$PY" - "$OUT/$preset" "$preset" "$THREADS" <<'EOF'
import collections, json, sys
run, preset, threads = sys.argv[1], sys.argv[2], sys.argv[3]
tot = collections.Counter()
steps = 0
for line in open(run + "/metrics.jsonl"):
    r = json.loads(line)
    if r["name"].startswith("time/") and r["value"] is not None:
        tot[r["name"][5:].removesuffix("_s")] += r["value"]
    steps = max(steps, r["step"])
wall = json.load(open(run + "/summary.json"))["wall_s"]
it = tot.pop("iteration", sum(tot.values()))
if it <= 0 or wall <= 0:
    sys.exit(f"{preset}: no timed iterations in {run} (a budget this short ends before the first metrics record, "
             f"or inside the learned reward's pre-training: give more steps)")
print(f"{preset:>12}: {steps} agent steps in {wall:.0f} s = {steps / wall:.0f} steps/s overall "
      f"({steps / it:.0f} in the loop's iterations), {threads} threads")
for name, s in tot.most_common():
    if s > 0:
        print(f"{'':>14}{name:<16} {100 * s / it:5.1f}%  {1e6 * s / steps:7.1f} us/step")
EOF
done
