"""A stand-in for Gymnasium (not in Debian) with its API and Pendulum-v1, for tests only.

Pendulum-v1 as gymnasium/envs/classic_control/pendulum.py defines it (g 10, m 1, l 1, dt 0.05,
max speed 8, max torque 2; reset uniform in [-pi, pi] x [-1, 1]) under the 200-step TimeLimit of
its registration, with reset(seed) -> (obs, info) and step(a) -> (obs, reward, terminated,
truncated, info).
"""
import numpy as np


class _Pendulum:
    def __init__(self):
        self.t = 0
        self.state = np.zeros(2)
        self.rng = np.random.default_rng()

    def _obs(self):
        th, thdot = self.state
        return np.array([np.cos(th), np.sin(th), thdot], dtype=np.float32)

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.state = self.rng.uniform(low=[-np.pi, -1.0], high=[np.pi, 1.0])
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        th, thdot = self.state
        u = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -2.0, 2.0))
        norm = ((th + np.pi) % (2 * np.pi)) - np.pi
        cost = norm**2 + 0.1 * thdot**2 + 0.001 * u**2
        newthdot = np.clip(thdot + (3 * 10.0 / 2 * np.sin(th) + 3.0 * u) * 0.05, -8.0, 8.0)
        self.state = np.array([th + newthdot * 0.05, newthdot])
        self.t += 1
        return self._obs(), -cost, False, self.t >= 200, {}


def make(env_id):
    if env_id != "Pendulum-v1":
        raise ValueError(f"the test stand-in knows Pendulum-v1 only, not {env_id}")
    return _Pendulum()
