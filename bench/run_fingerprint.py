#!/usr/bin/python3
"""Fingerprints of what a run computed, for the reference-run comparison (bench/reference_runs.sh).

    run_fingerprint.py RUN_DIR [EVAL_JSON_FILE]   => one JSON object on stdout

Each part is a SHA-256 over a canonical text of the run's deterministic output, so that two
runs with the same seed, binary behaviour and one thread give equal fingerprints:
  metrics   metrics.jsonl without wall-clock fields and without the series that measure the
            machine (time/*, sys/*, steps/s, the database file's size, the wall-clock health
            checks), as `prefrl runs verify --against` and `prefrl reproduce` compare them
  db        prefs.db: every row of segments, queries and labels (creation times excluded), in
            id order, and the schema version
  summary   summary.json without wall time, process identity and the wall-clock health checks
  eval      the file written by `prefrl eval RUN --json` (when given), without the predicted
            returns that eval reports since 2026-12-07 (EVAL_ADDED: the episodes and returns
            stay compared as they were recorded)
Python's standard library only (Debian's /usr/bin/python3)."""
import hashlib
import json
import sqlite3
import sys

MACHINE_SERIES = {"charts/SPS", "charts/rollout_SPS", "prefs/db_bytes", "health/sps_falling",
                  "health/memory_growing", "health/label_wait"}
MACHINE_HEALTH = {"sps_falling", "memory_growing", "label_wait"}
EVAL_ADDED = {"predicted_returns", "mean_predicted_return", "predicted_per_step"}


def measures_machine(name):
    return name.startswith("time/") or name.startswith("sys/") or name in MACHINE_SERIES


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def metrics_fingerprint(path):
    lines = []
    with open(path) as f:
        raw = f.read().splitlines()
    for k, line in enumerate(raw):
        try:
            j = json.loads(line)
        except ValueError:
            if k == len(raw) - 1:
                break  # a torn last line
            raise
        if measures_machine(j["name"]):
            continue
        j.pop("wall_time", None)
        lines.append(canonical(j))
    return sha("\n".join(lines)), len(lines)


def db_fingerprint(path):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    h = hashlib.sha256()
    version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    h.update(canonical(version).encode())
    counts = {}
    for table in ("segments", "queries", "labels"):
        cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})") if r[1] != "created_at"]
        n = 0
        for row in con.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY id"):
            h.update(table.encode())
            for v in row:
                h.update(repr(v).encode() if not isinstance(v, bytes) else v)
                h.update(b"\x1f")
            n += 1
        counts[table] = n
    con.close()
    return h.hexdigest(), counts


def summary_fingerprint(path):
    with open(path) as f:
        j = json.load(f)
    for key in ("wall_s", "process", "checkpoint"):
        j.pop(key, None)
    for key in MACHINE_HEALTH:
        j.get("health", {}).pop(key, None)
    return sha(canonical(j))


def main():
    run = sys.argv[1]
    out = {}
    out["metrics"], out["metrics_lines"] = metrics_fingerprint(f"{run}/metrics.jsonl")
    out["db"], out["db_rows"] = db_fingerprint(f"{run}/prefs.db")
    out["summary"] = summary_fingerprint(f"{run}/summary.json")
    if len(sys.argv) > 2:
        with open(sys.argv[2]) as f:
            ev = json.load(f)
        out["eval"] = sha(canonical({k: v for k, v in ev.items() if k not in EVAL_ADDED}))
    print(canonical(out))


if __name__ == "__main__":
    main()
