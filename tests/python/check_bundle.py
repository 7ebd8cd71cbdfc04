#!/usr/bin/python3
"""Serving parity of a prefrl export bundle, in Python with no prefrl code.

Loads BUNDLE/policy.pt and BUNDLE/reward.pt with torch.jit.load (Debian's python3-torch, the
LibTorch prefrl links) and the recorded observations and prefrl's own outputs on them
(BUNDLE/parity/*.npy) with NumPy, runs the modules and compares:
  policy forward (distribution parameters, value) and act(obs) with prefrl's,
  reward forward(obs, action) and members(obs, action) with prefrl's r̂,
each as max |exported - prefrl| / max(1, |prefrl|) <= TOL (default 1e-6). Prints one JSON line
of the gaps; exit status 1 if any exceeds TOL, 2 on bad input.

Usage: check_bundle.py BUNDLE [TOL]
"""
import json
import os
import sys

import numpy as np
import torch


def gap(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    bundle = sys.argv[1]
    tol = float(sys.argv[2]) if len(sys.argv) > 2 else 1e-6
    card = json.load(open(os.path.join(bundle, "model_card.json")))
    parity = os.path.join(bundle, "parity")
    obs = np.load(os.path.join(parity, "obs.npy"))
    if obs.dtype == np.uint8:  # byte observations: prefrl's values are byte / 255
        obs = obs.astype(np.float32) / np.float32(255.0)
    x = torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32))
    out = {"observations": int(obs.shape[0])}
    torch.set_num_threads(1)
    with torch.no_grad():
        policy = torch.jit.load(os.path.join(bundle, "policy.pt"))
        res = policy(x)
        out["head"] = gap(res[0].numpy(), np.load(os.path.join(parity, "head.npy")))
        out["value"] = gap(res[-1].numpy(), np.load(os.path.join(parity, "value.npy")))
        out["act"] = gap(policy.act(x).numpy(), np.load(os.path.join(parity, "actions.npy")))
        if not card["policy"]["discrete"]:
            out["log_std"] = gap(res[1].numpy(), np.broadcast_to(policy.log_std.numpy(), res[0].shape))
        if os.path.exists(os.path.join(bundle, "reward.pt")):
            reward = torch.jit.load(os.path.join(bundle, "reward.pt"))
            a = torch.from_numpy(np.load(os.path.join(parity, "taken_actions.npy")))
            out["reward"] = gap(reward(x, a).numpy(), np.load(os.path.join(parity, "reward.npy")))
            out["reward_members"] = gap(reward.members(x, a).numpy(), np.load(os.path.join(parity, "reward_members.npy")))
    worst = max(v for k, v in out.items() if k != "observations")
    out["worst"] = worst
    out["tolerance"] = tol
    print(json.dumps(out))
    return 0 if worst <= tol else 1


if __name__ == "__main__":
    sys.exit(main())
