"""The kv workload: concurrent Redis-protocol clients doing SET / GET / DEL on a small,
rotating set of keys, recording every operation with its outcome.

Outcomes (the checkers rely on these meanings):
  ok       the reply arrived: SET applied, GET/DEL with the value or count returned.
  fail     provably not applied: a redirect (MOVED, CLUSTERDOWN, "not leader"), BUSY or
           TRYAGAIN, which the kv app sends before or instead of proposing, or a
           connection that could not be opened (nothing was sent).
  unknown  anything else once the command was sent: a timeout, a lost connection, any
           other error. The write may or may not take effect, at any time after its call.
Only a reply that proves non-application is a failure: `classify_error` is the one
place that decides, and the self-test checks it.

Keys rotate: each key takes at most `ops_per_key` operations, then its slot gets a fresh
key, so that every key's history stays small enough for an exact linearizability search
while operations on a key still collide (many clients, few slots). Every SET writes a
value no other operation writes, so the log explains each acknowledged write.
"""

import random
import socket
import threading
import time

# Errors that prove the command was not applied (see the module comment).
_DEFINITE_PREFIXES = ("MOVED ", "CLUSTERDOWN", "ERR not leader", "BUSY", "TRYAGAIN")


def classify_error(message):
    """'fail' when the error reply proves the command was not applied, else 'unknown'."""
    return "fail" if message.startswith(_DEFINITE_PREFIXES) else "unknown"


def encode_command(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class RespReader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        """('ok', value) for +, :, $ replies; ('err', text) for - replies."""
        line = self._line()
        t, rest = line[:1], line[1:].decode(errors="replace")
        if t == b"+":
            return "ok", rest
        if t == b"-":
            return "err", rest
        if t == b":":
            return "ok", int(rest)
        if t == b"$":
            n = int(rest)
            return "ok", None if n < 0 else self._exact(n).decode(errors="replace")
        raise ConnectionError("unexpected reply type %r" % t)


class KeyPool:
    def __init__(self, slots, ops_per_key, rng):
        self._lock = threading.Lock()
        self._rng = rng
        self._ops_per_key = ops_per_key
        self._next = 0
        self._slots = []
        for _ in range(slots):
            self._slots.append([self._fresh(), 0])

    def _fresh(self):
        self._next += 1
        return "k%d" % self._next

    def take(self):
        with self._lock:
            slot = self._slots[self._rng.randrange(len(self._slots))]
            key = slot[0]
            slot[1] += 1
            if slot[1] >= self._ops_per_key:
                slot[0], slot[1] = self._fresh(), 0
            return key

    def all_keys(self):
        with self._lock:
            return ["k%d" % i for i in range(1, self._next + 1)]


class History:
    def __init__(self):
        self._lock = threading.Lock()
        self.ops = []

    def add(self, op):
        with self._lock:
            self.ops.append(op)


class KvClient(threading.Thread):
    """One client: one connection at a time, one operation at a time."""

    def __init__(self, cid, endpoints, keys, history, seed, stop, op_timeout=3.0, pause=0.0):
        super().__init__(name="kv-client-%d" % cid, daemon=True)
        self.cid = cid
        self.endpoints = endpoints  # callable: list of (host, port) of the RESP servers
        self.keys = keys
        self.history = history
        self.rng = random.Random(seed)
        self.stop = stop
        self.op_timeout = op_timeout
        self.pause = pause
        self.sock = None
        self.reader = None
        self.target = None
        self.seq = 0

    def _close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = self.reader = None

    def _retarget(self, hint=None):
        self._close()
        eps = self.endpoints()
        self.target = hint if hint is not None else self.rng.choice(eps)

    def _connect(self):
        if self.target is None:
            self._retarget()
        s = socket.create_connection(self.target, timeout=1.0)
        s.settimeout(self.op_timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.reader = s, RespReader(s)

    def run(self):
        while not self.stop.is_set():
            self.step()
            if self.pause:
                time.sleep(self.pause)

    def next_op(self):
        key = self.keys.take()
        r = self.rng.random()
        if r < 0.4:
            self.seq += 1
            return {"f": "set", "key": key, "value": "c%d-%d" % (self.cid, self.seq)}
        if r < 0.8:
            return {"f": "get", "key": key}
        return {"f": "del", "key": key}

    def step(self, op=None):
        op = op or self.next_op()
        op["process"] = self.cid
        args = {"set": ["SET", op["key"], op.get("value", "")], "get": ["GET", op["key"]],
                "del": ["DEL", op["key"]]}[op["f"]]
        op["invoke"] = time.monotonic_ns()
        try:
            if self.sock is None:
                self._connect()
        except OSError:
            op["complete"] = time.monotonic_ns()
            op["type"] = "fail"
            op["error"] = "connect failed"
            self.history.add(op)
            self._retarget()
            return op
        try:
            self.sock.sendall(encode_command(args))
            kind, value = self.reader.reply()
        except (OSError, ConnectionError, ValueError) as e:
            op["complete"] = time.monotonic_ns()
            op["type"] = "unknown"
            op["error"] = "%s: %s" % (type(e).__name__, e)
            self.history.add(op)
            self._retarget()
            return op
        op["complete"] = time.monotonic_ns()
        if kind == "ok":
            op["type"] = "ok"
            if op["f"] == "get":
                op["value"] = value
            elif op["f"] == "del":
                op["count"] = value
        else:
            op["type"] = classify_error(value)
            op["error"] = value
            if value.startswith("MOVED "):
                host, port = value.split()[-1].rsplit(":", 1)
                self._retarget((host, int(port)))
            elif op["type"] == "fail" or "timeout" in value:
                self._retarget()
        self.history.add(op)
        return op
