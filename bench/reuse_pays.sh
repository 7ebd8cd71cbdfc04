#!/usr/bin/env bash
# Reuse pays (issue 20): one pendulum run's 500 oracle answers, exported as a dataset, are
#  (a) trained offline into a reward model (prefrl reward train), on which five new seeds
#      train their policies with no labels at all (train --reward-from), and
#  (b) given to five new seeds at their start (train --prefs-from) with 100 new labels each;
# against (c) the preset itself, 500 labels, on the same five seeds.
# Each final policy is judged by `prefrl eval` over 20 episodes (seed 1000).
# Usage: [SOURCE_SEED=1] [FIRST=2] [JOBS=2] bench/reuse_pays.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${PREFRL:-build/prefrl}
SRC=${SOURCE_SEED:-1}
FIRST=${FIRST:-2}
JOBS=${JOBS:-2}
ROOT=${ROOT:-runs/reuse-pendulum-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$ROOT"
Q="--set run.progress_every_s=0"
"$BIN" train --preset pendulum --env pendulum --seed "$SRC" --run-dir "$ROOT/source" $Q > "$ROOT/source.out" 2>&1
"$BIN" prefs export "$ROOT/source" --out "$ROOT/dataset"
"$BIN" reward train --prefs "$ROOT/dataset" --out "$ROOT/reward" --preset pendulum --seed "$SRC" | tail -2
run() {  # kind seed flags...
  local kind=$1 s=$2; shift 2
  "$BIN" train --preset pendulum --env pendulum --seed "$s" --run-dir "$ROOT/$kind-$s" $Q "$@" > "$ROOT/$kind-$s.out" 2>&1 ||
    echo "$kind seed $s failed" >&2
}
export -f run
export BIN ROOT Q
for s in $(seq "$FIRST" $((FIRST + 4))); do
  echo "fixed $s --reward-from $ROOT/reward"
  echo "prefsfrom $s --prefs-from $ROOT/dataset --labels 100"
  echo "preset $s"
done | xargs -P "$JOBS" -L1 bash -c 'run "$@"' _
/usr/bin/python3 - "$ROOT" "$BIN" "$FIRST" "$SRC" <<'PY'
import json, subprocess, sys, statistics
root, binary, first, src = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def ev(d):
    out = subprocess.run([binary, "eval", d, "--episodes", "20", "--json"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["mean_return"]
print(f"source run (seed {src}, 500 labels): eval {ev(root + '/source'):.1f}")
for kind, what in [("fixed", "reward model trained offline from its 500 answers, 0 new labels"),
                   ("prefsfrom", "its 500 answers + 100 new labels"), ("preset", "the preset: 500 new labels")]:
    rets, labels = [], []
    for s in range(first, first + 5):
        d = f"{root}/{kind}-{s}"
        rets.append(ev(d))
        j = json.load(open(d + "/summary.json"))
        labels.append((j["labels"], j.get("labels_imported", 0)))
    print(f"{kind:>9}: {what}: " + " ".join(f"{r:.1f}" for r in rets) +
          f" | mean {statistics.mean(rets):.1f} ± {statistics.stdev(rets):.1f}, min {min(rets):.1f}; "
          f"labels new/imported per run {labels[0]}")
PY
