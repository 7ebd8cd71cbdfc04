"""prefrl_env: host Gymnasium-API environments as a prefrl worker (NumPy only).

This is the worker side of prefrl's external-environment protocol, docs/env_protocol.md,
version 1. prefrl starts the script (``prefrl train --env-cmd 'python3 my_env.py'``), passes one
end of a Unix socket pair as file descriptor ``$PREFRL_ENV_FD`` (3) and steps the environments in
batches: small JSON messages on the socket, arrays in a shared-memory file.

    # my_env.py
    import sys
    sys.path.insert(0, "/path/to/prefrl/python")
    from prefrl_env import serve
    import gymnasium as gym                  # or any class with Gymnasium's API

    def make_env():
        return gym.make("CartPole-v1", render_mode="rgb_array")

    serve(make_env, name="my_cartpole")      # never returns: exits when prefrl closes it

``make_env()`` (no arguments, called once per hosted env) returns an object with
``reset(seed=int) -> (obs, info)``, ``step(action) -> (obs, reward, terminated, truncated, info)``,
``observation_space`` and ``action_space`` (a Box has ``shape``, ``dtype``, ``low``, ``high``; a
Discrete has ``n``) and, optionally, ``render() -> (H, W, 3) uint8``, ``close()``,
``metadata["render_fps"]``, ``spec.max_episode_steps`` and the state hooks
``get_state() -> 1-D float64 array`` and ``set_state(state) -> obs`` (they give exact resume and
clips people can judge in the browser). The worker never resets an env on its own: prefrl does,
with seeds of its own. Anything printed goes to the worker's log (RUN/workers/worker-W.log).
"""

import json
import mmap
import os
import re
import socket
import struct
import sys
import time
import traceback

import numpy as np

__all__ = ["serve", "PROTOCOL", "VERSION"]

PROTOCOL = "prefrl-env"
VERSION = 1

_DTYPES = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8"), "uint8": np.dtype("u1")}


class _Error(Exception):
    """A reply {"op": "error", "field": field, "env": env, "message": message}."""

    def __init__(self, field, message, env=None):
        super().__init__(message)
        self.field, self.message, self.env = field, message, env


def _default_name():
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv else "") or "env"
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    name = re.sub(r"[^a-z0-9_]", "_", stem)
    return (name or "env")[:64]


def _bound_list(values, shape):
    arr = np.broadcast_to(np.asarray(values), shape).reshape(-1)
    out = []
    for v in arr.tolist():
        v = float(v)
        if v == float("inf"):
            out.append("inf")
        elif v == float("-inf"):
            out.append("-inf")
        elif v != v:
            raise _Error("hello", "a space bound is NaN")
        else:
            out.append(int(v) if v.is_integer() and abs(v) < 2 ** 53 else v)
    return out


def _space_info(space, what):
    """(SPACE dict, dict of what the worker needs) for a Box or Discrete, duck-typed."""
    if hasattr(space, "low") and hasattr(space, "high") and hasattr(space, "shape"):
        shape = tuple(int(d) for d in space.shape)
        dtype = np.dtype(getattr(space, "dtype", None) or np.float32)
        if dtype == np.uint8:
            dname = "uint8"
        elif dtype == np.float64:
            dname = "float64"
        elif dtype == np.float32:
            dname = "float32"
        else:
            raise _Error("hello", "%s is a Box of dtype %s; prefrl takes float32, float64 or uint8 Boxes"
                         % (what, dtype))
        spec = {"type": "box", "shape": list(shape), "dtype": dname,
                "low": _bound_list(space.low, shape), "high": _bound_list(space.high, shape)}
        return spec, {"discrete": False, "shape": shape, "numel": int(np.prod(shape, dtype=np.int64)),
                      "dtype": dname}
    if hasattr(space, "n") and not hasattr(space, "nvec") and tuple(getattr(space, "shape", None) or ()) == ():
        n = int(space.n)
        start = int(getattr(space, "start", 0) or 0)
        return {"type": "discrete", "n": n}, {"discrete": True, "shape": (), "numel": 1, "n": n,
                                               "start": start, "dtype": "discrete"}
    raise _Error("hello", "%s is a %s; prefrl takes a Box (shape, dtype, low, high) or a Discrete (n)"
                 % (what, type(space).__name__))


def _env_error(op, j, e, call=None):
    """The error for an exception e of env j's code during request op."""
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-4)).rstrip()
    return _Error(op, "env %d's %s() raised %s: %s\n%s" % (j, call or op, type(e).__name__, e, tb), j)


def _as_array(x):
    """x as an array for checking: object dtype when NumPy cannot make a numeric one."""
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(x)
    except Exception:
        a = np.empty((), dtype=object)
        a[()] = x
        return a


def _describe(a):
    return "shape %s dtype %s" % (tuple(a.shape), a.dtype)


_SPIN_S = float(os.environ.get("PREFRL_ENV_SPIN_US", "200")) * 1e-6
_OK = {"op": "ok"}
# The requests of every batch, byte for byte as prefrl sends them (nlohmann::json: sorted keys,
# no spaces), so that the hot path parses no JSON. Any other spelling is parsed as usual.
_HOT_REQUESTS = {b'{"op":"step","state":false}': {"op": "step", "state": False},
                 b'{"op":"step","state":true}': {"op": "step", "state": True}}
_OK_FRAME = struct.pack("<I", len(b'{"op":"ok"}')) + b'{"op":"ok"}'


class _Worker:
    def __init__(self, make_env, sock, options):
        self.make_env, self.sock, self.options = make_env, sock, options
        self.envs = None   # after hello
        self.views = None  # after setup
        self.mm = None
        self._inbuf = bytearray()

    # ---- framing ---------------------------------------------------------------------------
    def _read_exact(self, n):
        # Buffered: a request usually arrives whole in one recv (header and body together).
        buf = self._inbuf
        while len(buf) < n:
            chunk = self._recv(max(65536, n - len(buf)))
            if not chunk:
                return None
            buf += chunk
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def _recv(self, size):
        # Spins for a moment before blocking: prefrl's next request usually follows within
        # microseconds, and a sleeping CPU takes tens of them to wake (most of a batch's cost
        # on a virtual machine). The spin is bounded, so an idle worker sleeps.
        sock, deadline = self.sock, time.perf_counter() + _SPIN_S
        while True:
            try:
                return sock.recv(size, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if time.perf_counter() > deadline:
                    return sock.recv(size)

    def receive(self):
        """The next request (a dict, or a non-dict for garbage), or None at EOF."""
        head = self._read_exact(4)
        if head is None:
            return None
        (length,) = struct.unpack("<I", head)
        body = self._read_exact(length) if length else b""
        if body is None:
            return None
        cached = _HOT_REQUESTS.get(body)  # a batch's step: no JSON to parse
        if cached is not None:
            return cached
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            return _Error("op", "the request is not UTF-8 JSON: %s" % e)

    def send(self, msg):
        if msg is _OK:  # the common reply, encoded once
            self.sock.sendall(_OK_FRAME)
            return
        body = json.dumps(msg, allow_nan=False, separators=(",", ":")).encode("utf-8")
        self.sock.sendall(struct.pack("<I", len(body)) + body)

    # ---- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _call(op, j, fn, *args, **kwargs):
        """fn(...); an exception of the env's code becomes an error naming op and env j."""
        try:
            return fn(*args, **kwargs)
        except _Error:
            raise
        except Exception as e:  # the env's code failed
            raise _env_error(op, j, e)

    def _rows(self, msg, key="envs"):
        envs = msg.get(key)
        if not isinstance(envs, list):
            raise _Error("op", "'%s' needs a list '%s'" % (msg.get("op"), key))
        k = len(self.envs)
        for j in envs:
            if not isinstance(j, int) or isinstance(j, bool) or not 0 <= j < k:
                raise _Error("op", "'%s' names env %r; this worker hosts envs 0 .. %d" % (msg.get("op"), j, k - 1))
        return envs

    def _check_obs(self, j, obs):
        """obs as an array that fits the observation space exactly, else an 'observation' error."""
        a = _as_array(obs)
        o = self.obs
        ok = a.shape == o["shape"] and a.dtype.kind in "biuf"
        if ok and o["dtype"] == "uint8":
            if a.dtype.kind == "f":
                ok = False
            elif a.dtype.kind in "iu" and a.dtype != np.uint8 and a.size:
                ok = int(a.min()) >= 0 and int(a.max()) <= 255
        if ok and o["discrete"]:
            ok = a.dtype.kind in "biu"
        if not ok:
            space = ("discrete n %d" % o["n"]) if o["discrete"] else ("shape %s dtype %s" % (o["shape"], o["dtype"]))
            raise _Error("observation", "env %d returned an observation of %s; the observation space is %s"
                         % (j, _describe(a), space), j)
        return a

    def _put_obs(self, j, obs):
        a = self._check_obs(j, obs)
        self.obs_view[j] = a

    def _put_state(self, j, op, into="state"):
        s = self._call(op, j, self.envs[j].get_state)
        try:
            s = np.asarray(s, dtype=np.float64).reshape(-1)
        except Exception as e:
            raise _Error("state", "env %d's get_state() gave %r, not a float64 vector (%s)" % (j, type(s), e), j)
        if s.size != self.state_size:
            raise _Error("state", "env %d's get_state() gave %d values; the first gave %d (state_size)"
                         % (j, s.size, self.state_size), j)
        self.views[into][j] = s

    def _want_state(self, msg):
        return bool(msg.get("state", False)) and self.state_size > 0

    def _need_state(self, op):
        if self.state_size == 0:
            raise _Error("op", "'%s': these environments have no get_state()/set_state() (state_size 0)" % op)

    # ---- requests --------------------------------------------------------------------------
    def hello(self, msg):
        if msg.get("protocol") != PROTOCOL or msg.get("version") != VERSION:
            raise _Error("version", "this worker (python/prefrl_env.py) speaks %s version %d; prefrl sent %r version %r"
                         % (PROTOCOL, VERSION, msg.get("protocol"), msg.get("version")))
        if self.envs is not None:
            raise _Error("op", "a second 'hello'")
        k = msg.get("num_envs")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise _Error("hello", "num_envs is %r; expected an integer >= 1" % (k,))
        envs = []
        for j in range(k):
            try:
                envs.append(self.make_env())
            except Exception as ex:
                raise _env_error("hello", j, ex, "make_env")
        e, opt = envs[0], self.options
        obs_spec, self.obs = _space_info(e.observation_space, "the observation space")
        act_spec, self.act = _space_info(e.action_space, "the action space")

        fps = opt["fps"]
        if fps is None:
            meta = getattr(e, "metadata", None)
            fps = meta.get("render_fps") if isinstance(meta, dict) else None
            if fps is None:
                fps = 50
        fps = float(fps)
        fps = int(fps) if fps.is_integer() else fps

        limit = opt["time_limit"]
        if limit is None:
            spec = getattr(e, "spec", None)
            limit = getattr(spec, "max_episode_steps", None) if spec is not None else None
            if limit is None:
                limit = 0

        has_hooks = callable(getattr(e, "get_state", None)) and callable(getattr(e, "set_state", None))
        want_render = opt["render"] is not False and callable(getattr(e, "render", None))
        if opt["render"] is True and not want_render:
            raise _Error("hello", "render=True, but the environment has no render()")
        render, state_size = None, 0
        if want_render or has_hooks:
            self._call("reset", 0, e.reset, seed=0)  # render() and get_state() need an episode
        if want_render:
            try:
                frame = e.render()
            except Exception as ex:
                if opt["render"] is True:
                    raise _env_error("render", 0, ex)
                print("prefrl_env: render() raised %s: %s; no rendering" % (type(ex).__name__, ex), flush=True)
                frame = None
            if (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3
                    and frame.dtype == np.uint8 and frame.shape[0] > 0 and frame.shape[1] > 0):
                render = {"width": int(frame.shape[1]), "height": int(frame.shape[0])}
            elif opt["render"] is True:
                got = _describe(frame) if isinstance(frame, np.ndarray) else type(frame).__name__
                raise _Error("frame", "render=True, but env 0's render() gave %s, not an (H, W, 3) uint8 array" % got, 0)
        if has_hooks:
            s = self._call("get_state", 0, e.get_state)
            state_size = int(np.asarray(s, dtype=np.float64).size)
        self.envs, self.render_size, self.state_size = envs, render, state_size
        print("prefrl_env: worker %s hosts envs %s .. %s" % (msg.get("worker"), msg.get("first_env"),
              (msg.get("first_env") or 0) + k - 1), flush=True)
        return {"op": "hello", "protocol": PROTOCOL, "version": VERSION, "env": {
            "name": opt["name"] if opt["name"] is not None else _default_name(),
            "observation_space": obs_spec, "action_space": act_spec, "fps": fps, "time_limit": int(limit),
            "render": render, "has_true_reward": bool(opt["has_true_reward"]), "state_size": state_size}}

    def setup(self, msg):
        k = len(self.envs)
        obs_dtype = _DTYPES["uint8"] if self.obs["dtype"] == "uint8" else _DTYPES["float32"]
        rows = {"obs": (obs_dtype, (self.obs["numel"],)),
                "action": (_DTYPES["float32"], (self.act["numel"],)),
                "reward": (_DTYPES["float64"], ()), "terminated": (_DTYPES["uint8"], ()),
                "truncated": (_DTYPES["uint8"], ()), "active": (_DTYPES["uint8"], ())}
        if self.state_size > 0:
            rows["state"] = (_DTYPES["float64"], (self.state_size,))
        if self.render_size:
            rows["frame"] = (_DTYPES["uint8"], (self.render_size["height"], self.render_size["width"], 3))
        rows["autoreset"] = (_DTYPES["uint8"], ())
        rows["seed"] = (np.dtype("<u8"), ())
        rows["was_reset"] = (_DTYPES["uint8"], ())
        rows["reset_obs"] = rows["obs"]
        if self.state_size > 0:
            rows["reset_state"] = rows["state"]
        path, size, layout = msg.get("shm"), msg.get("bytes"), msg.get("layout")
        if not isinstance(path, str) or not isinstance(size, int) or size < 1 or not isinstance(layout, dict):
            raise _Error("layout", "'setup' needs 'shm' (a path), 'bytes' (an integer > 0) and 'layout' (an object)")
        for key, (dtype, shape) in rows.items():
            entry = layout.get(key)
            if (not isinstance(entry, list) or len(entry) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in entry)):
                raise _Error("layout", "the layout's '%s' is %r; expected [offset, bytes]" % (key, entry))
            want = k * int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if entry[1] != want:
                raise _Error("layout", "the layout's '%s' has %d bytes; %d rows of %s %s are %d"
                             % (key, entry[1], k, shape, dtype.name, want))
            if entry[0] + entry[1] > size:
                raise _Error("layout", "the layout's '%s' ends at byte %d, past the file's %d"
                             % (key, entry[0] + entry[1], size))
        try:
            fd = os.open(path, os.O_RDWR)
            try:
                mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            finally:
                os.close(fd)
        except (OSError, ValueError) as e:
            raise _Error("layout", "cannot map %d bytes of %s: %s" % (size, path, e))
        views = {}
        for key, (dtype, shape) in rows.items():
            views[key] = np.ndarray((k,) + shape, dtype=dtype, buffer=mm, offset=layout[key][0])
        self.mm, self.views = mm, views
        # Rows shaped as the space (observations are assigned whole), and the dtype an env's own
        # observations have when they fit it exactly (the fast path of step).
        self.obs_view = views["obs"].reshape((k,) + self.obs["shape"])
        self.reset_obs_view = views["reset_obs"].reshape((k,) + self.obs["shape"])
        self.all_rows = list(range(k))
        self.obs_np_dtype = _DTYPES.get(self.obs["dtype"], np.dtype("V1"))  # discrete: never the fast path
        return _OK

    def reset(self, msg):
        envs = self._rows(msg)
        seeds = msg.get("seeds")
        if not isinstance(seeds, list) or len(seeds) != len(envs):
            raise _Error("op", "'reset' needs as many 'seeds' as 'envs'")
        want_state = self._want_state(msg)
        for j, seed in zip(envs, seeds):
            r = self._call("reset", j, self.envs[j].reset, seed=int(seed))
            obs = r[0] if isinstance(r, tuple) and len(r) == 2 and isinstance(r[1], dict) else r
            self._put_obs(j, obs)
            if want_state:
                self._put_state(j, "get_state")
        return _OK

    def step(self, msg):
        # The hot path: one pass over the active envs, the per-batch arrays written at once.
        v = self.views
        active = v["active"]
        if active.all():  # the usual batch
            rows = self.all_rows
            if self.act["discrete"]:
                start = self.act["start"]
                actions = [int(x + 0.5) + start for x in v["action"][:, 0].tolist()]  # indices >= 0
            else:
                actions = list(v["action"].reshape((len(rows),) + self.act["shape"]).copy())
        else:
            rows = np.flatnonzero(active).tolist()
            if self.act["discrete"]:
                actions = (np.rint(v["action"][rows, 0]).astype(np.int64) + self.act["start"]).tolist()
            else:
                actions = list(v["action"][rows].reshape((len(rows),) + self.act["shape"]).copy())
        obs_view, envs, shape, dtype = self.obs_view, self.envs, self.obs["shape"], self.obs_np_dtype
        rewards, terms, truncs = [], [], []
        j = -1
        try:
            for j, a in zip(rows, actions):
                r = envs[j].step(a)
                try:
                    obs, reward, terminated, truncated, _ = r
                except ValueError:  # the old Gym API: (obs, reward, done, info)
                    obs, reward, terminated, _ = r
                    truncated = False
                if type(obs) is np.ndarray and obs.dtype is dtype and obs.shape == shape:
                    obs_view[j] = obs
                else:
                    self._put_obs(j, obs)
                rewards.append(reward)
                terms.append(terminated)
                truncs.append(truncated)
        except _Error:
            raise
        except Exception as e:
            raise _env_error("step", j, e)
        want_state = self._want_state(msg)
        if rows:
            sel = slice(None) if rows is self.all_rows else rows
            try:
                v["reward"][sel] = rewards
            except (TypeError, ValueError):
                bad = next(j for j, r in zip(rows, rewards) if not isinstance(r, (int, float, np.number)))
                raise _Error("step", "env %d's step() gave the reward %r, not a number" % (bad, rewards[rows.index(bad)]), bad)
            v["terminated"][sel] = terms
            v["truncated"][sel] = truncs
            if want_state:
                for j in rows:
                    self._put_state(j, "get_state")
            # Automatic resets: an env whose episode this step ended starts the next one with the
            # seed prefrl put beside it, so that no second message is needed.
            v["was_reset"][sel] = 0
            auto = v["autoreset"]
            for j, term, trunc in (zip(rows, terms, truncs) if (True in terms or True in truncs) else ()):
                if (term or trunc) and auto[j]:
                    r = self._call("reset", j, envs[j].reset, seed=int(v["seed"][j]))
                    obs = r[0] if isinstance(r, tuple) and len(r) == 2 and isinstance(r[1], dict) else r
                    self.reset_obs_view[j] = self._check_obs(j, obs)
                    if want_state:
                        self._put_state(j, "get_state", into="reset_state")
                    v["was_reset"][j] = 1
        return _OK

    def render(self, msg):
        envs = self._rows(msg)
        if not self.render_size:
            raise _Error("op", "'render': these environments do not render (render: null in the hello)")
        shape = self.views["frame"].shape[1:]
        for j in envs:
            frame = self._call("render", j, self.envs[j].render)
            a = _as_array(frame)
            if a.shape != shape or a.dtype != np.uint8:
                raise _Error("frame", "env %d's render() gave a frame of %s; the frames are shape %s dtype uint8"
                             % (j, _describe(a), shape), j)
            self.views["frame"][j] = a
        return _OK

    def get_state(self, msg):
        envs = self._rows(msg)
        self._need_state("get_state")
        for j in envs:
            self._put_state(j, "get_state")
        return _OK

    def set_state(self, msg):
        envs = self._rows(msg)
        self._need_state("set_state")
        for j in envs:
            obs = self._call("set_state", j, self.envs[j].set_state, self.views["state"][j].copy())
            self._put_obs(j, obs)
        return _OK

    def close(self):
        for j, e in enumerate(self.envs or []):
            if callable(getattr(e, "close", None)):
                try:
                    e.close()
                except Exception as ex:  # closing anyway
                    print("prefrl_env: env %d's close() raised %s: %s" % (j, type(ex).__name__, ex), flush=True)

    # ---- the loop ---------------------------------------------------------------------------
    def serve(self):
        """Serves until close (0), EOF (0) or a version mismatch (1); returns the exit status."""
        while True:
            msg = self.receive()
            if msg is None:
                return 0
            op = msg.get("op") if isinstance(msg, dict) else None
            try:
                if isinstance(msg, _Error):
                    raise msg
                if not isinstance(msg, dict):
                    raise _Error("op", "the request is not a JSON object")
                if op == "hello":
                    reply = self.hello(msg)
                elif op == "close":
                    self.close()
                    self.send(_OK)
                    return 0
                elif op in ("setup", "reset", "step", "render", "get_state", "set_state"):
                    if self.envs is None:
                        raise _Error("op", "'%s' before 'hello'" % op)
                    if op != "setup" and self.views is None:
                        raise _Error("op", "'%s' before 'setup'" % op)
                    reply = getattr(self, op)(msg)
                else:
                    raise _Error("op", "unknown request %r" % (op,))
            except _Error as e:
                err = {"op": "error", "field": e.field, "message": e.message}
                if e.env is not None:
                    err["env"] = int(e.env)
                self.send(err)
                if e.field == "version":
                    return 1
                continue
            except Exception as e:  # a fault of the worker or the request: say so, keep serving
                tb = "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-4))
                self.send({"op": "error", "field": op if isinstance(op, str) and op else "op",
                           "message": "%s: %s\n%s" % (type(e).__name__, e, tb.rstrip())})
                continue
            self.send(reply)


def serve(make_env, *, name=None, fps=None, time_limit=None, has_true_reward=True, render=None):
    """Serves prefrl's requests on fd $PREFRL_ENV_FD (default 3) until prefrl closes; exits.

    make_env: called with no arguments once per environment this worker hosts.
    name: the environment's name in prefrl (lower-case letters, digits, '_'; default: the
        script's file stem, lower-cased, other characters replaced by '_').
    fps: frames per second of simulated time (default: metadata["render_fps"], else 50).
    time_limit: steps per episode (default: spec.max_episode_steps, else 0: none).
    has_true_reward: False if the env's rewards mean nothing (people or a script judge).
    render: False turns frames off; True requires them; None (default) uses render() when it
        gives an (H, W, 3) uint8 array after reset(seed=0).
    """
    fd = int(os.environ.get("PREFRL_ENV_FD", "3"))
    sock = socket.socket(fileno=fd)
    options = dict(name=name, fps=fps, time_limit=time_limit, has_true_reward=has_true_reward, render=render)
    try:
        code = _Worker(make_env, sock, options).serve()
    except (BrokenPipeError, ConnectionResetError):
        code = 0
    except KeyboardInterrupt:
        code = 130
    try:
        sock.close()
    except OSError:
        pass
    sys.stdout.flush()
    sys.exit(code)
