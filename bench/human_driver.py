#!/usr/bin/python3
"""A scripted person for the reference runs: answers every query of a `--teacher human` run
through the labeling server's JSON API (docs/labeling.md) until the trainer exits.

    human_driver.py URL PID

The answers are a fixed function of the query id (left, right, equal and skip all occur), so a
run with `server.max_label_lag=0` and `server.undo_window_s=0` is as deterministic as a run
with a scripted teacher. Python's standard library only."""
import json
import os
import sys
import time
import urllib.error
import urllib.request


def choice_for(query_id):
    if query_id % 7 == 3:
        return "equal"
    if query_id % 11 == 5:
        return "skip"
    return "left" if query_id % 2 else "right"


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by the shell) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def call(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def main():
    base, pid = sys.argv[1].rstrip("/"), int(sys.argv[2])
    answered = 0
    deadline = time.time() + 1800
    while alive(pid) and time.time() < deadline:
        try:
            q = call(f"{base}/api/query/next?labeler=driver")["query"]
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)  # the server is not up yet, or already down
            continue
        if q is None:
            time.sleep(0.02)
            continue
        call(f"{base}/api/label", {"query_id": q["id"], "choice": choice_for(q["id"]), "labeler": "driver"})
        answered += 1
    print(f"human_driver: {answered} answers", file=sys.stderr)


if __name__ == "__main__":
    main()
