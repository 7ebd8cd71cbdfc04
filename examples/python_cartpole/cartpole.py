"""Gymnasium's CartPole-v1 in pure NumPy, with Gymnasium's API and numbers, served to prefrl.

    prefrl train --env-cmd '/usr/bin/python3 examples/python_cartpole/cartpole.py' --teacher oracle

The dynamics (explicit Euler, tau 0.02), bounds, reward (1 per step, the terminating one
included; 0 when stepped on while still fallen, as Gymnasium), termination and reset
distribution (uniform in +-0.05 from np.random.default_rng(seed), which is what
gymnasium.utils.seeding.np_random(seed) makes) are Gymnasium 0.29's CartPoleEnv. The 500-step
limit of CartPole-v1 (Gymnasium's TimeLimit wrapper) is spec.max_episode_steps: prefrl applies
it. tests/python/test_prefrl_env.py and tests/envs/external_env_test.cc check every step against
Gymnasium's own trajectories (tests/data/gym_golden/cartpole.jsonl). get_state/set_state are the
state hooks (exact resume, clips people judge); render() draws cart, pole and track with NumPy.
"""
import math
import os
import sys

import numpy as np


class Box:
    def __init__(self, low, high, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        self.low = np.asarray(low, dtype=self.dtype)
        self.high = np.asarray(high, dtype=self.dtype)
        self.shape = self.low.shape


class Discrete:
    def __init__(self, n):
        self.n = int(n)
        self.shape = ()
        self.dtype = np.dtype(np.int64)


class _Spec:
    id = "CartPole-v1"
    max_episode_steps = 500


class CartPoleEnv:
    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}
    spec = _Spec()

    def __init__(self, render_mode="rgb_array"):
        self.gravity = 9.8
        self.masscart = 1.0
        self.masspole = 0.1
        self.total_mass = self.masspole + self.masscart
        self.length = 0.5  # half the pole's length
        self.polemass_length = self.masspole * self.length
        self.force_mag = 10.0
        self.tau = 0.02
        self.kinematics_integrator = "euler"
        self.theta_threshold_radians = 12 * 2 * math.pi / 360
        self.x_threshold = 2.4
        high = np.array([self.x_threshold * 2, np.finfo(np.float32).max,
                         self.theta_threshold_radians * 2, np.finfo(np.float32).max], dtype=np.float32)
        self.observation_space = Box(-high, high, np.float32)
        self.action_space = Discrete(2)
        self.render_mode = render_mode
        self.np_random = np.random.default_rng()
        self.state = None
        self.steps_beyond_terminated = None

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.np_random = np.random.default_rng(seed)
        self.state = self.np_random.uniform(low=-0.05, high=0.05, size=(4,))
        self.steps_beyond_terminated = None
        return np.array(self.state, dtype=np.float32), {}

    def step(self, action):
        if self.state is None:
            raise RuntimeError("step() before reset()")
        if action not in (0, 1):
            raise ValueError("action %r is not 0 or 1" % (action,))
        x, x_dot, theta, theta_dot = self.state
        force = self.force_mag if action == 1 else -self.force_mag
        costheta = math.cos(theta)
        sintheta = math.sin(theta)
        temp = (force + self.polemass_length * theta_dot**2 * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta**2 / self.total_mass))
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        x = x + self.tau * x_dot
        x_dot = x_dot + self.tau * xacc
        theta = theta + self.tau * theta_dot
        theta_dot = theta_dot + self.tau * thetaacc
        self.state = (x, x_dot, theta, theta_dot)
        terminated = bool(x < -self.x_threshold or x > self.x_threshold
                          or theta < -self.theta_threshold_radians or theta > self.theta_threshold_radians)
        if not terminated:
            reward = 1.0
        elif self.steps_beyond_terminated is None:
            self.steps_beyond_terminated = 0  # the pole just fell
            reward = 1.0
        else:
            self.steps_beyond_terminated += 1
            reward = 0.0
        return np.array(self.state, dtype=np.float32), reward, terminated, False, {}

    # ---- state hooks -----------------------------------------------------------------------
    def get_state(self):
        return np.array(self.state, dtype=np.float64)

    def set_state(self, state):
        self.state = np.array(state, dtype=np.float64).reshape(4)
        self.steps_beyond_terminated = None
        return np.array(self.state, dtype=np.float32)

    # ---- rendering: 600 x 400 RGB, Gymnasium's geometry and colours ---------------------------
    def render(self):
        W, H = 600, 400
        img = np.full((H, W, 3), 255, dtype=np.uint8)
        scale = W / (self.x_threshold * 2)
        track = H - 100  # the track's row, from the top
        img[track, :] = 0
        if self.state is None:
            return img
        x, _, theta, _ = (float(v) for v in self.state)
        cx = x * scale + W / 2.0
        # The cart: 50 x 30 px, centred on the track.
        c0, c1 = int(round(cx - 25)), int(round(cx + 25))
        img[track - 15:track + 15, max(0, c0):max(0, min(W, c1))] = 0
        # The pole: 10 px wide, 2 * length * scale long, from the axle (7.5 px above the track).
        ax, ay = cx, track - 7.5
        pole_len = scale * (2 * self.length)
        tx, ty = ax + pole_len * math.sin(theta), ay - pole_len * math.cos(theta)
        r0, r1 = max(0, int(min(ay, ty) - 6)), min(H, int(max(ay, ty) + 7))
        q0, q1 = max(0, int(min(ax, tx) - 6)), min(W, int(max(ax, tx) + 7))
        if r0 < r1 and q0 < q1:
            yy, xx = np.mgrid[r0:r1, q0:q1]
            dx, dy = tx - ax, ty - ay
            t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
            d2 = (xx - ax - t * dx) ** 2 + (yy - ay - t * dy) ** 2
            img[r0:r1, q0:q1][d2 <= 25.0] = (202, 152, 101)
            # The axle: a blue dot.
            a2 = (xx - ax) ** 2 + (yy - ay) ** 2
            img[r0:r1, q0:q1][a2 <= 16.0] = (129, 132, 203)
        return img

    def close(self):
        pass


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
    from prefrl_env import serve

    serve(CartPoleEnv, name="cartpole_py")
