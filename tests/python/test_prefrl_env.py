"""python/prefrl_env.py against docs/env_protocol.md (version 1), playing prefrl's side.

Each test starts a worker (examples/python_cartpole/cartpole.py, or a small bad env written to a
temporary script) with one end of a socket pair, speaks the protocol and reads the shared-memory
file it created. Run from the repository root:

    /usr/bin/python3 -m unittest discover -s tests/python -v
"""
import json
import mmap
import os
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import unittest

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PYTHON = "/usr/bin/python3"
CARTPOLE = os.path.join(REPO, "examples", "python_cartpole", "cartpole.py")
GOLDEN = os.path.join(REPO, "tests", "data", "gym_golden", "cartpole.jsonl")
TIMEOUT = 20.0

HELLO = {"op": "hello", "protocol": "prefrl-env", "version": 1, "worker": 0, "num_envs": 1, "first_env": 0}


class Worker:
    """One worker process and prefrl's end of its socket and shared memory."""

    def __init__(self, script, log_dir):
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ, PREFRL_ENV_FD=str(child.fileno()))
        env.pop("PYTHONPATH", None)
        self.log_path = os.path.join(log_dir, "worker.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([PYTHON, script], pass_fds=[child.fileno()], env=env, cwd=REPO,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        child.close()
        parent.settimeout(TIMEOUT)
        self.sock = parent
        self.mm = None
        self.shm_path = None
        self.views = {}

    def send(self, msg):
        body = json.dumps(msg).encode("utf-8")
        self.sock.sendall(struct.pack("<I", len(body)) + body)

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("the worker closed its socket; its log:\n" + self.log_tail())
            buf += chunk
        return buf

    def receive(self):
        (n,) = struct.unpack("<I", self._read(4))
        return json.loads(self._read(n).decode("utf-8"))

    def call(self, msg):
        self.send(msg)
        return self.receive()

    def log_tail(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read()[-3000:].decode("utf-8", "replace")

    def handshake(self, k=1):
        reply = self.call(dict(HELLO, num_envs=k))
        assert reply.get("op") == "hello", reply
        self.spec = reply["env"]
        return self.spec

    def layout(self, k):
        """prefrl's layout for k rows of self.spec: {name: (dtype, per-row shape)}."""
        s = self.spec
        obs = s["observation_space"]
        obs_dtype = np.uint8 if obs.get("dtype") == "uint8" else np.float32
        obs_numel = int(np.prod(obs["shape"])) if obs["type"] == "box" else 1
        act = s["action_space"]
        act_numel = 1 if act["type"] == "discrete" else int(np.prod(act["shape"]))
        rows = {"obs": (obs_dtype, (obs_numel,)), "action": (np.float32, (act_numel,)),
                "reward": (np.float64, ()), "terminated": (np.uint8, ()), "truncated": (np.uint8, ()),
                "active": (np.uint8, ())}
        if s["state_size"] > 0:
            rows["state"] = (np.float64, (s["state_size"],))
        if s["render"]:
            rows["frame"] = (np.uint8, (s["render"]["height"], s["render"]["width"], 3))
        rows["autoreset"] = (np.uint8, ())
        rows["seed"] = (np.uint64, ())
        rows["was_reset"] = (np.uint8, ())
        rows["reset_obs"] = rows["obs"]
        if s["state_size"] > 0:
            rows["reset_state"] = rows["state"]
        return rows

    def setup(self, k=1, corrupt=None):
        rows = self.layout(k)
        layout, off = {}, 0
        for name, (dtype, shape) in rows.items():
            nbytes = k * int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            if name == corrupt:
                nbytes += 1
            layout[name] = [off, nbytes]
            off += (nbytes + 63) // 64 * 64
        fd, self.shm_path = tempfile.mkstemp(prefix="prefrl_env_test_", dir="/dev/shm")
        os.ftruncate(fd, off)
        self.mm = mmap.mmap(fd, off)
        os.close(fd)
        if corrupt is None:
            for name, (dtype, shape) in rows.items():
                self.views[name] = np.ndarray((k,) + shape, dtype=dtype, buffer=self.mm, offset=layout[name][0])
        return self.call({"op": "setup", "shm": self.shm_path, "bytes": off, "layout": layout})

    def start(self, k=1):
        self.handshake(k)
        reply = self.setup(k)
        assert reply == {"op": "ok"}, reply

    def close(self):
        self.views = {}
        try:
            self.sock.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)
        self.log.close()
        if self.mm is not None:
            try:
                self.mm.close()
            except BufferError:
                pass
        if self.shm_path and os.path.exists(self.shm_path):
            os.unlink(self.shm_path)


class WorkerTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="prefrl_env_test_")
        self.workers = []

    def tearDown(self):
        for w in self.workers:
            w.close()
        self.tmp.cleanup()

    def worker(self, script=CARTPOLE):
        w = Worker(script, self.tmp.name)
        self.workers.append(w)
        return w

    def script(self, filename, body):
        """A worker script in the temporary directory that can import prefrl_env."""
        path = os.path.join(self.tmp.name, filename)
        with open(path, "w") as f:
            f.write("import sys\nsys.path.insert(0, %r)\nsys.path.insert(0, %r)\n"
                    % (os.path.join(REPO, "python"), os.path.dirname(CARTPOLE)))
            f.write(textwrap.dedent(body))
        return path

    def assertOk(self, reply):
        self.assertEqual(reply, {"op": "ok"}, reply.get("message"))

    def assertError(self, reply, field, env=None):
        self.assertEqual(reply.get("op"), "error", reply)
        self.assertEqual(reply.get("field"), field, reply)
        self.assertIsInstance(reply.get("message"), str)
        if env is not None:
            self.assertEqual(reply.get("env"), env, reply)


class CartPoleWorkerTest(WorkerTestCase):
    def test_handshake_gives_the_spec(self):
        w = self.worker()
        s = w.handshake(2)
        self.assertEqual(s["name"], "cartpole_py")
        obs = s["observation_space"]
        self.assertEqual(obs["type"], "box")
        self.assertEqual(obs["shape"], [4])
        self.assertEqual(obs["dtype"], "float32")
        f32max = float(np.finfo(np.float32).max)
        theta2 = float(np.float32(12 * 2 * np.pi / 360 * 2))
        self.assertEqual(obs["high"], [float(np.float32(4.8)), f32max, theta2, f32max])
        self.assertEqual(obs["low"], [-v for v in obs["high"]])
        self.assertEqual(s["action_space"], {"type": "discrete", "n": 2})
        self.assertEqual(s["fps"], 50)
        self.assertEqual(s["time_limit"], 500)
        self.assertEqual(s["render"], {"width": 600, "height": 400})
        self.assertEqual(s["state_size"], 4)
        self.assertIs(s["has_true_reward"], True)
        self.assertOk(w.setup(2))
        self.assertOk(w.call({"op": "close"}))
        self.assertEqual(w.proc.wait(timeout=TIMEOUT), 0)

    def test_golden_trajectories_bit_for_bit(self):
        w = self.worker()
        w.start(1)
        v = w.views
        v["active"][0] = 1
        episodes = 0
        with open(GOLDEN) as f:
            for line in f:
                ep = json.loads(line)
                v["state"][0] = ep["state"]
                self.assertOk(w.call({"op": "set_state", "envs": [0]}))
                np.testing.assert_array_equal(v["obs"][0], np.array(ep["initial_obs"], dtype=np.float32))
                self.assertEqual(len(ep["actions"]), len(ep["steps"]))
                for t, (a, want) in enumerate(zip(ep["actions"], ep["steps"])):
                    v["action"][0, 0] = a
                    self.assertOk(w.call({"op": "step", "state": t % 2 == 1}))
                    msg = "episode %d step %d" % (episodes, t)
                    self.assertEqual(v["obs"][0].tobytes(), np.array(want["obs"], dtype=np.float32).tobytes(), msg)
                    self.assertEqual(v["reward"][0], want["reward"], msg)
                    self.assertEqual(bool(v["terminated"][0]), want["terminated"], msg)
                    self.assertEqual(bool(v["truncated"][0]), want["truncated"], msg)
                    if t % 2 == 1:  # the state came with the step
                        np.testing.assert_array_equal(v["state"][0].astype(np.float32), v["obs"][0])
                episodes += 1
        self.assertGreaterEqual(episodes, 3)

    def test_reset_is_a_function_of_the_seed(self):
        w = self.worker()
        w.start(3)
        v = w.views
        self.assertOk(w.call({"op": "reset", "envs": [0, 1, 2], "seeds": [7, 7, 8]}))
        np.testing.assert_array_equal(v["obs"][0], v["obs"][1])
        self.assertFalse(np.array_equal(v["obs"][0], v["obs"][2]))
        # Gymnasium's reset: uniform(-0.05, 0.05) from default_rng(seed).
        want = np.random.default_rng(7).uniform(low=-0.05, high=0.05, size=(4,))
        np.testing.assert_array_equal(v["obs"][0], want.astype(np.float32))
        first = v["obs"][0].copy()
        # The same seed again, after steps, gives the same episode start; with the state.
        v["active"][:] = 1
        v["action"][:] = 1
        self.assertOk(w.call({"op": "step"}))
        self.assertFalse(np.array_equal(v["obs"][0], first))
        v["state"][:] = 0
        self.assertOk(w.call({"op": "reset", "envs": [0], "seeds": [7], "state": True}))
        np.testing.assert_array_equal(v["obs"][0], first)
        np.testing.assert_array_equal(v["state"][0], want)
        self.assertTrue(np.all(v["state"][1:] == 0))  # only the reset env's state was written
        # Seeds up to 2^63 - 1 work.
        self.assertOk(w.call({"op": "reset", "envs": [2], "seeds": [2 ** 63 - 1]}))

    def test_a_step_that_ends_an_episode_resets_it_with_the_seed_beside_it(self):
        w = self.worker()
        w.start(2)
        v = w.views
        self.assertOk(w.call({"op": "reset", "envs": [0, 1], "seeds": [4, 5]}))
        v["active"][:] = 1
        v["action"][:, 0] = [1, 0]
        v["autoreset"][:] = [1, 0]  # env 1 ends too, but prefrl resets it itself
        v["seed"][:] = [2 ** 63 - 1, 9]
        ended = [False, False]
        for _ in range(200):
            self.assertOk(w.call({"op": "step", "state": True}))
            for j in range(2):
                if v["terminated"][j] or v["truncated"][j]:
                    ended[j] = True
            if all(ended):
                break
            if v["was_reset"][0]:
                break
        self.assertTrue(ended[0])
        self.assertEqual(v["was_reset"][0], 1)
        want = np.random.default_rng(2 ** 63 - 1).uniform(-0.05, 0.05, size=4)
        np.testing.assert_array_equal(v["reset_obs"][0], want.astype(np.float32))
        np.testing.assert_array_equal(v["reset_state"][0], want)
        # obs and state keep the ended episode's last step.
        self.assertTrue(abs(v["state"][0, 2]) > 12 * 2 * np.pi / 360 or abs(v["state"][0, 0]) > 2.4)
        np.testing.assert_array_equal(v["obs"][0], v["state"][0].astype(np.float32))
        # Unasked, an env is not reset: the next step of env 0 does not reset either.
        v["active"][:] = [1, 0]
        v["autoreset"][:] = 0
        self.assertOk(w.call({"op": "step"}))
        self.assertEqual(v["was_reset"][0], 0)

    def test_inactive_rows_are_not_stepped(self):
        w = self.worker()
        w.start(3)
        v = w.views
        self.assertOk(w.call({"op": "reset", "envs": [0, 1, 2], "seeds": [1, 2, 3]}))
        v["obs"][1] = 123.0
        v["reward"][1] = -5.0
        v["terminated"][1] = 7
        v["truncated"][1] = 9
        before = v["obs"].copy()
        v["active"][:] = [1, 0, 1]
        v["action"][:, 0] = [0, 1, 1]
        for _ in range(3):
            self.assertOk(w.call({"op": "step"}))
        np.testing.assert_array_equal(v["obs"][1], np.full(4, 123.0, np.float32))
        self.assertEqual((v["reward"][1], v["terminated"][1], v["truncated"][1]), (-5.0, 7, 9))
        self.assertFalse(np.array_equal(v["obs"][0], before[0]))
        self.assertFalse(np.array_equal(v["obs"][2], before[2]))
        self.assertEqual(list(v["reward"][[0, 2]]), [1.0, 1.0])
        # Env 1 was not stepped: activated now, it moves from its reset state (seed 2).
        v["active"][:] = [0, 1, 0]
        self.assertOk(w.call({"op": "step", "state": True}))
        start = np.random.default_rng(2).uniform(-0.05, 0.05, size=4)
        self.assertAlmostEqual(float(v["state"][1, 0]), start[0] + 0.02 * start[1], places=12)

    def test_render_and_state_round_trip(self):
        w = self.worker()
        w.start(2)
        v = w.views
        self.assertOk(w.call({"op": "reset", "envs": [0, 1], "seeds": [5, 6]}))
        self.assertOk(w.call({"op": "render", "envs": [0]}))
        frame = v["frame"][0]
        self.assertEqual(frame.shape, (400, 600, 3))
        self.assertNotEqual(frame.min(), frame.max())
        self.assertTrue(np.all(v["frame"][1] == 0))  # not asked for
        # set_state then render: a tilted pole draws another frame.
        self.assertOk(w.call({"op": "get_state", "envs": [0, 1]}))
        np.testing.assert_array_equal(v["state"][0], np.random.default_rng(5).uniform(-0.05, 0.05, size=4))
        upright = frame.copy()
        v["state"][1] = [0.0, 0.0, 0.2, 0.0]
        self.assertOk(w.call({"op": "set_state", "envs": [1]}))
        np.testing.assert_array_equal(v["obs"][1], np.array([0, 0, 0.2, 0], np.float32))
        self.assertOk(w.call({"op": "render", "envs": [1]}))
        self.assertFalse(np.array_equal(v["frame"][1], upright))

    def test_requests_out_of_order_and_unknown_ops_are_errors_and_it_keeps_serving(self):
        w = self.worker()
        self.assertError(w.call({"op": "step"}), "op")
        self.assertError(w.call({"op": "setup", "shm": "/dev/shm/x", "bytes": 64, "layout": {}}), "op")
        w.handshake(1)
        self.assertError(w.call({"op": "reset", "envs": [0], "seeds": [1]}), "op")
        self.assertError(w.setup(1, corrupt="reward"), "layout")
        w.mm.close()
        os.unlink(w.shm_path)
        self.assertOk(w.setup(1))
        self.assertError(w.call({"op": "frobnicate"}), "op")
        self.assertError(w.call({"op": "reset", "envs": [1], "seeds": [1]}), "op")
        self.assertOk(w.call({"op": "reset", "envs": [0], "seeds": [1]}))
        self.assertOk(w.call({"op": "close"}))
        self.assertEqual(w.proc.wait(timeout=TIMEOUT), 0)

    def test_eof_exits_quietly(self):
        w = self.worker()
        w.handshake(1)
        w.sock.close()
        self.assertEqual(w.proc.wait(timeout=TIMEOUT), 0)
        self.assertNotIn("Traceback", w.log_tail())

    def test_another_version_is_refused_and_the_worker_exits(self):
        w = self.worker()
        reply = w.call(dict(HELLO, version=2))
        self.assertError(reply, "version")
        self.assertIn("version", reply["message"])
        self.assertNotEqual(w.proc.wait(timeout=TIMEOUT), 0)


class BadEnvWorkerTest(WorkerTestCase):
    BAD = """
        import numpy as np
        from prefrl_env import serve
        from cartpole import CartPoleEnv

        class Bad(CartPoleEnv):
            def step(self, a):
                if a == 1:
                    raise ValueError("the simulator broke")
                return np.zeros(3, np.float32), 1.0, False, False, {}

        serve(Bad)
        """

    def test_a_wrong_shaped_observation_and_an_exception_in_step(self):
        w = self.worker(self.script("Bad-Env.py", self.BAD))
        s = w.handshake(2)
        self.assertEqual(s["name"], "bad_env")  # the file's stem by default
        self.assertOk(w.setup(2))
        v = w.views
        self.assertOk(w.call({"op": "reset", "envs": [0, 1], "seeds": [0, 1]}))
        v["active"][:] = [0, 1]
        v["action"][1] = 0
        reply = w.call({"op": "step"})
        self.assertError(reply, "observation", env=1)
        self.assertIn("env 1", reply["message"])
        self.assertIn("(3,)", reply["message"])
        self.assertIn("(4,)", reply["message"])
        # The worker keeps serving; an exception raised in step() names step and the env.
        v["action"][1] = 1
        reply = w.call({"op": "step"})
        self.assertError(reply, "step", env=1)
        self.assertIn("ValueError", reply["message"])
        self.assertIn("the simulator broke", reply["message"])
        self.assertIn("Bad-Env.py", reply["message"])  # the traceback
        self.assertOk(w.call({"op": "close"}))
        self.assertEqual(w.proc.wait(timeout=TIMEOUT), 0)

    def test_uint8_observations_frames_and_hooks_are_checked(self):
        body = """
            import numpy as np
            from prefrl_env import serve

            class Box:
                def __init__(self, low, high, shape, dtype):
                    self.shape, self.dtype = shape, np.dtype(dtype)
                    self.low, self.high = np.full(shape, low, dtype), np.full(shape, high, dtype)

            class Image:
                def __init__(self):
                    self.observation_space = Box(0, 255, (2, 3), np.uint8)
                    self.action_space = Box(-1.0, 1.0, (2,), np.float32)
                    self.t = 0
                def reset(self, seed=None):
                    self.t = 0
                    return np.full((2, 3), seed % 256, np.uint8), {}
                def step(self, a):
                    assert a.shape == (2,) and a.dtype == np.float32, (a.shape, a.dtype)
                    self.t += 1
                    if a[0] > 0.5:
                        return np.full((2, 3), 0.5), 0.0, False, False, {}   # float for uint8
                    return np.arange(6).reshape(2, 3) * 10, float(a[1]), False, self.t >= 2, {}
                def render(self):
                    return np.zeros((8, 10, 3), np.uint8) if self.t < 3 else np.zeros((8, 9, 3), np.uint8)

            serve(Image, name="image_env", fps=15, time_limit=7, has_true_reward=False)
            """
        w = self.worker(self.script("image.py", body))
        s = w.handshake(1)
        self.assertEqual(s["observation_space"], {"type": "box", "shape": [2, 3], "dtype": "uint8",
                                                  "low": [0] * 6, "high": [255] * 6})
        self.assertEqual(s["action_space"]["shape"], [2])
        self.assertEqual(s["action_space"]["low"], [-1, -1])
        self.assertEqual((s["name"], s["fps"], s["time_limit"], s["has_true_reward"]), ("image_env", 15, 7, False))
        self.assertEqual(s["render"], {"width": 10, "height": 8})
        self.assertEqual(s["state_size"], 0)  # no hooks
        self.assertOk(w.setup(1))
        v = w.views
        self.assertNotIn("state", v)
        self.assertOk(w.call({"op": "reset", "envs": [0], "seeds": [300]}))
        np.testing.assert_array_equal(v["obs"][0], np.full(6, 300 % 256, np.uint8))
        v["active"][0] = 1
        v["action"][0] = [0.25, -0.75]  # a Box action: float32, the space's shape
        self.assertOk(w.call({"op": "step", "state": True}))  # no state to give: ignored
        np.testing.assert_array_equal(v["obs"][0], np.arange(6) * 10)  # int64 within 0..255
        self.assertEqual((v["reward"][0], v["terminated"][0], v["truncated"][0]), (-0.75, 0, 0))
        self.assertOk(w.call({"op": "step"}))
        self.assertEqual(v["truncated"][0], 1)
        self.assertOk(w.call({"op": "render", "envs": [0]}))
        self.assertError(w.call({"op": "get_state", "envs": [0]}), "op")
        v["action"][0] = [0.9, 0.0]
        reply = w.call({"op": "step"})
        self.assertError(reply, "observation", env=0)
        self.assertIn("float64", reply["message"])
        self.assertIn("uint8", reply["message"])
        reply = w.call({"op": "render", "envs": [0]})  # t is 3: a frame one column short
        self.assertError(reply, "frame", env=0)
        self.assertIn("(8, 9, 3)", reply["message"])

    def test_a_get_state_that_raises_at_the_hello_is_an_error(self):
        body = """
            from prefrl_env import serve
            from cartpole import CartPoleEnv

            class NoState(CartPoleEnv):
                def get_state(self):
                    raise RuntimeError("no state here")

            serve(NoState, render=False)
            """
        w = self.worker(self.script("nostate.py", body))
        reply = w.call(dict(HELLO))
        self.assertError(reply, "get_state", env=0)
        self.assertIn("no state here", reply["message"])


if __name__ == "__main__":
    unittest.main()
