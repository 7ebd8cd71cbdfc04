#!/usr/bin/env bash
# Soak test of crash recovery: a longer oracle run killed with SIGKILL at KILLS random moments
# and resumed (`prefrl train --resume`) after each, then checked against the same seed run
# without interruption:
#   - `prefrl runs verify RUN --against REF`: every checkpoint loads (CRC-32C of each file,
#     policy, reward model and trainer state), `PRAGMA integrity_check` is ok, no query has
#     more labels than it asked for, metric steps are continuous (one line per iteration, none
#     missing or repeated), and the metrics and database counts equal the reference's
#     (wall-clock series excluded);
#   - every label the teacher gave is in the database exactly once: the same queries with the
#     same answers as the reference run's database, label ids 1..n without gaps.
#
# Usage: bench/soak_resume.sh [KILLS=20] [OUT_DIR=/tmp/prefrl_soak-<time>] [SEED=1]
# Needs build/prefrl and python3. Takes a few minutes on the 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${1:-20}
OUT=${2:-/tmp/prefrl_soak-$(date -u +%Y%m%d-%H%M%S)}
SEED=${3:-1}
BIN=$PWD/build/prefrl
ARGS=(train --env cartpole --steps 200000 --labels 300 --seed 7 --threads 1 --set run.checkpoint_every=5
      --set run.checkpoint_keep=1000 --set run.progress_every_s=5 --set run.eval_episodes=5)
mkdir -p "$OUT"
echo "soak: $KILLS kills, output in $OUT"

t0=$(date +%s.%N)
"$BIN" "${ARGS[@]}" --run-dir "$OUT/reference" > "$OUT/reference.out" 2>&1
ref_s=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
echo "reference run (uninterrupted): ${ref_s} s"

# Kill moments: uniform in [0.5 s, 0.5 s + 2 x (reference time / kills)] after each (re)start,
# so that the kills spread over the whole run (each restart first pays the process start-up,
# about 0.7 s here, during which some kills land).
delays=$(python3 -c "
import random
r = random.Random($SEED)
print(' '.join('%.2f' % r.uniform(0.5, 0.5 + 2 * $ref_s / $KILLS) for _ in range($KILLS)))")
i=0
kills=0
for d in $delays; do
  i=$((i + 1))
  if [ $i -eq 1 ]; then
    "$BIN" "${ARGS[@]}" --run-dir "$OUT/soak" >> "$OUT/soak.out" 2>&1 &
  else
    "$BIN" train --resume "$OUT/soak" >> "$OUT/soak.out" 2>&1 &
  fi
  pid=$!
  sleep "$d"
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    kills=$((kills + 1))
    step=$(tail -n 1 "$OUT/soak/metrics.jsonl" 2>/dev/null | python3 -c "import json, sys; print(json.loads(sys.stdin.read())['step'])" 2>/dev/null || echo "-")
    ckpt=$(cat "$OUT/soak/checkpoints/latest" 2>/dev/null || echo "none")
    echo "kill $kills after ${d} s: metrics had reached step $step; latest checkpoint $ckpt"
  else
    wait "$pid" || true
    echo "run $i ended before its kill at ${d} s"
    break
  fi
done
status=$(python3 -c "import json; print(json.load(open('$OUT/soak/summary.json'))['status'])")
if [ "$status" != finished ]; then
  "$BIN" train --resume "$OUT/soak" >> "$OUT/soak.out" 2>&1
fi
echo "killed $kills times; $(grep -c '"command"' "$OUT/soak/resumes.jsonl") resumes recorded in resumes.jsonl (a resume killed while starting records none); $(ls -d "$OUT"/soak/checkpoints/ckpt-* | wc -l) checkpoints kept"

"$BIN" runs verify "$OUT/soak" --against "$OUT/reference" | tee "$OUT/verify.txt"

python3 - "$OUT" <<'PY'
import sqlite3, sys
out = sys.argv[1]
def rows(run):
    db = sqlite3.connect(f"file:{out}/{run}/prefs.db?mode=ro", uri=True)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", run
    q = db.execute("""SELECT q.id, a.env_step, a.env_index, b.env_step, b.env_index, l.id, l.choice
                      FROM queries q JOIN segments a ON a.id = q.left_id JOIN segments b ON b.id = q.right_id
                      LEFT JOIN labels l ON l.query_id = q.id ORDER BY q.id, l.id""").fetchall()
    ids = [r[0] for r in db.execute("SELECT id FROM labels ORDER BY id")]
    return q, ids
ref, ref_ids = rows("reference")
soak, soak_ids = rows("soak")
labels = [r for r in soak if r[5] is not None]
per_query = {}
for r in soak: per_query[r[0]] = per_query.get(r[0], 0) + (r[5] is not None)
assert all(n == 1 for n in per_query.values()), "a query without its one label, or with more"
assert soak_ids == list(range(1, len(soak_ids) + 1)), "label ids have gaps"
assert soak == ref, "the soak run's queries and answers differ from the reference run's"
print(f"database: {len(labels)} labels, each query answered exactly once, ids 1..{len(soak_ids)} without gaps, "
      f"identical to the uninterrupted run's (queries, clips, answers); integrity_check ok")
PY
