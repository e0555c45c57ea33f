"""The chaos suite's checkers. They know nothing of librlr's code: they read the clients'
histories, the binaries' outputs (output logs, the audit learner's SQLite table), and the
nodes' logs as `rlr-ctl dump` prints them. Each returns a Verdict.

Histories are lists of dicts: f (set/get/del, or "order"), key, value, count, type
(ok / fail / unknown), invoke and complete (CLOCK_MONOTONIC ns).
"""

import sqlite3


class Verdict:
    def __init__(self, name, ok, summary, evidence=None):
        self.name = name
        self.ok = ok
        self.summary = summary
        self.evidence = evidence or []

    def __repr__(self):
        return "Verdict(%s, %s, %s)" % (self.name, "ok" if self.ok else "FAIL", self.summary)


INF = float("inf")

# ----------------------------------------------------------------------------------
# Linearizability of a register per key (Wing & Gong's search with Lowe's memoisation).
# ----------------------------------------------------------------------------------


def _register_step(state, op):
    """(legal, new_state) for op applied to the register's state (None: key absent)."""
    f = op["f"]
    if f == "set":
        return True, op["value"]
    if f == "get":
        return op.get("value") == state, state
    # del: returns how many keys existed; an unknown del's count is unknown.
    if op["type"] == "unknown":
        return True, None
    return op.get("count") == (0 if state is None else 1), None


def check_register(ops, budget=3_000_000):
    """Is this one key's history linearizable?

    ops: ok operations (any f) and unknown writes (set/del); a fail or an unknown read
    must not be passed. An unknown write may take effect at any point after its call, or
    never: its return is at infinity, and once only such returns are left every
    completed operation has been linearized (writes can always go last).
    Returns (True, None), (False, evidence) or (None, reason) when the budget ran out.
    """
    n = len(ops)
    if n == 0:
        return True, None
    events = []
    for i, op in enumerate(ops):
        ret = INF if op["type"] == "unknown" else op["complete"]
        events.append((op["invoke"], 0, i))
        events.append((ret, 1, i))
    # At equal times calls come first: such operations overlap, which never hides a
    # violation that a strict order would show... and never invents one.
    events.sort(key=lambda e: (e[0], e[1]))
    m = len(events)
    nxt = list(range(1, m + 2))
    prv = list(range(-1, m + 1))
    # Node k of the list is event k-1; node 0 is the head, node m+1 the tail.
    ret_node = [0] * n
    for k, (_, kind, i) in enumerate(events):
        if kind == 1:
            ret_node[i] = k + 1

    def lift(node):
        i = events[node - 1][2]
        for x in (node, ret_node[i]):
            nxt[prv[x]] = nxt[x]
            prv[nxt[x]] = prv[x]

    def unlift(node):
        i = events[node - 1][2]
        for x in (ret_node[i], node):
            nxt[prv[x]] = x
            prv[nxt[x]] = x

    state = None
    linearized = 0
    cache = set()
    stack = []
    node = nxt[0]
    steps = 0
    best = (-1, None, None)  # (depth, failing op, state there)
    while nxt[0] != m + 1:
        steps += 1
        if steps > budget:
            return None, "search budget of %d steps exhausted at %d ops" % (budget, n)
        t, kind, i = events[node - 1]
        if kind == 0:
            legal, new_state = _register_step(state, ops[i])
            if legal:
                new_lin = linearized | (1 << i)
                key = (new_lin, new_state)
                if key not in cache:
                    cache.add(key)
                    stack.append((node, state))
                    state, linearized = new_state, new_lin
                    lift(node)
                    node = nxt[0]
                    continue
            node = nxt[node]
        else:
            if t == INF:
                return True, None
            if len(stack) > best[0]:
                best = (len(stack), ops[i], state)
            if not stack:
                break
            node, state = stack.pop()
            linearized &= ~(1 << events[node - 1][2])
            unlift(node)
            node = nxt[node]
    if nxt[0] == m + 1:
        return True, None
    _, failing, st = best
    overlapping = [o for o in ops if o["invoke"] <= failing["complete"] and
                   (o["type"] == "unknown" or o["complete"] >= failing["invoke"])]
    return False, {"op": failing, "register_before": st, "concurrent": overlapping[:12]}


def check_linearizable(history):
    by_key = {}
    for op in history:
        if op["type"] == "ok" or (op["type"] == "unknown" and op["f"] in ("set", "del")):
            by_key.setdefault(op["key"], []).append(op)
    bad, inconclusive = [], []
    for key, ops in sorted(by_key.items()):
        ok, info = check_register(ops)
        if ok is False:
            bad.append({"key": key, **info})
        elif ok is None:
            inconclusive.append("%s: %s" % (key, info))
    n = sum(len(v) for v in by_key.values())
    if bad:
        return Verdict("linearizable", False, "%d of %d keys not linearizable" % (len(bad), len(by_key)), bad[:3])
    if inconclusive:
        return Verdict("linearizable", False, "search inconclusive on %d keys" % len(inconclusive), inconclusive)
    return Verdict("linearizable", True, "%d keys, %d operations" % (len(by_key), n))


# ----------------------------------------------------------------------------------
# The committed log, from `rlr-ctl dump`.
# ----------------------------------------------------------------------------------


class Dump:
    def __init__(self, node_id, text):
        self.node = node_id
        self.commit = 0
        self.first = 1
        self.last = 0
        self.entries = {}  # index -> (term, kind, client, seq, payload bytes)
        for line in text.splitlines():
            f = line.split()
            if not f:
                continue
            if f[0] == "hardstate":
                self.commit = int(dict(x.split("=") for x in f[1:])["commit"])
            elif f[0] == "range":
                d = dict(x.split("=") for x in f[1:])
                self.first, self.last = int(d["first"]), int(d["last"])
            elif f[0] == "entry":
                payload = b"" if f[6] == "-" else bytes.fromhex(f[6])
                self.entries[int(f[1])] = (int(f[2]), f[3], int(f[4]), int(f[5]), payload)


def check_log_agreement(dumps, committed):
    """Every node's log holds the same entry at each index through `committed` that it
    still keeps (a compacted prefix is skipped), and holds every such index."""
    problems = []
    ref = {}
    for d in dumps:
        if d.last < committed:
            problems.append("node %d: log ends at %d, before the committed index %d" % (d.node, d.last, committed))
        for i in range(d.first, committed + 1):
            e = d.entries.get(i)
            if e is None:
                if i <= d.last:
                    problems.append("node %d: no entry %d inside its range" % (d.node, i))
                continue
            if i in ref and ref[i][1] != e:
                problems.append("index %d: node %d has %s, node %d has %s" % (
                    i, d.node, _short(e), ref[i][0], _short(ref[i][1])))
            ref.setdefault(i, (d.node, e))
    if problems:
        return Verdict("log-agreement", False, "%d differences" % len(problems), problems[:10])
    return Verdict("log-agreement", True, "%d nodes agree on entries 1..%d" % (len(dumps), committed))


def _short(e):
    term, kind, client, seq, payload = e
    return "(term %d %s %d/%d %s)" % (term, kind, client, seq, payload[:24].hex())


def decode_kv(payload):
    """('set', key, value) / ('del', [keys]) for a kv command, None otherwise."""
    if len(payload) < 8 or payload[:3] != b"KV\x01":
        return None
    op = chr(payload[3])
    count = int.from_bytes(payload[4:8], "big")
    args, pos = [], 8
    for _ in range(count):
        n = int.from_bytes(payload[pos:pos + 4], "big")
        args.append(payload[pos + 4:pos + 4 + n].decode(errors="replace"))
        pos += 4 + n
    if op == "P" and len(args) == 2:
        return ("set", args[0], args[1])
    if op == "D":
        return ("del", args)
    return None


def check_kv_writes(history, dump, committed):
    """No acknowledged write lost, none invented, none applied twice: every acknowledged
    SET's (unique) value is in the committed log, every value there was written by a
    client, and no value is there twice."""
    written = {op["value"]: op for op in history if op["f"] == "set" and op["type"] in ("ok", "unknown")}
    acked = {op["value"]: op for op in history if op["f"] == "set" and op["type"] == "ok"}
    failed = {op["value"]: op for op in history if op["f"] == "set" and op["type"] == "fail"}
    in_log = {}
    problems = []
    for i in range(dump.first, committed + 1):
        e = dump.entries.get(i)
        if e is None or e[1] not in ("normal", "session"):
            continue
        c = decode_kv(e[4])
        if c is None or c[0] != "set":
            continue
        _, key, value = c
        if value in in_log:
            problems.append("value %s of key %s committed twice (indexes %d and %d)" % (value, key, in_log[value], i))
        in_log[value] = i
        if value in failed:
            problems.append("value %s of key %s committed at %d, but its SET was reported failed (%s)" % (
                value, key, i, failed[value].get("error")))
        elif value not in written:
            problems.append("value %s of key %s committed at %d was never written by a client" % (value, key, i))
    lost = [v for v in acked if v not in in_log]
    for v in lost[:10]:
        op = acked[v]
        problems.append("acknowledged SET %s=%s (invoked %d) is not in the committed log" % (op["key"], v, op["invoke"]))
    if dump.first > 1:
        problems.append("the log was compacted (starts at %d): writes before it cannot be checked" % dump.first)
    if problems:
        return Verdict("kv-writes", False, "%d lost, %d other problems" % (len(lost), len(problems) - len(lost)),
                       problems[:12])
    return Verdict("kv-writes", True, "%d acknowledged SETs all committed; %d SETs committed in all" % (
        len(acked), len(in_log)))


# ----------------------------------------------------------------------------------
# The sequencer: acknowledged commands, exactly-once egress, the audit table.
# ----------------------------------------------------------------------------------


def check_sequencer_acks(history, dump, committed):
    """Every acknowledged command is in the committed log at the index it was
    acknowledged with, and every command in the log was proposed by a driver."""
    problems = []
    proposed = {op["command"] for op in history}
    for op in history:
        if op["type"] != "ok":
            continue
        i = op["index"]
        e = dump.entries.get(i)
        if i > committed or e is None:
            problems.append("command %r acknowledged at index %d, which is not committed" % (op["command"], i))
        elif e[4] != op["command"].encode() or e[0] != op["term"]:
            problems.append("command %r acknowledged at %d term %d, but the log has %s there" % (
                op["command"], i, op["term"], _short(e)))
    commands = 0
    for i in range(dump.first, committed + 1):
        e = dump.entries.get(i)
        if e is not None and e[1] == "session":
            commands += 1
            if e[4].decode(errors="replace") not in proposed:
                problems.append("index %d holds %r, which no driver proposed" % (i, e[4]))
    acked = sum(1 for op in history if op["type"] == "ok")
    if problems:
        return Verdict("sequencer-acks", False, "%d problems" % len(problems), problems[:12])
    return Verdict("sequencer-acks", True, "%d acknowledged commands at their indexes; %d in the log" % (
        acked, commands))


def parse_outputs(text):
    """Lines '<index>.<pos> <topic> <payload>' -> list of ((index, pos), topic, payload).
    A torn last line (a process killed mid-write) is skipped."""
    out = []
    for line in text.split("\n"):
        f = line.split(" ", 2)
        if len(f) < 3 or "." not in f[0]:
            continue
        i, p = f[0].split(".", 1)
        if not (i.isdigit() and p.isdigit()):
            continue
        out.append(((int(i), int(p)), f[1], f[2]))
    return out


def check_exactly_once(expected, delivered_files, through):
    """Downstream (the union of every voter's output log) received each output key that
    the log produces through `through` with the expected topic and payload, no key the
    log does not produce, and nothing missing. Re-emissions of a key (a new leader
    re-sending what its predecessor may not have delivered) are deduplicated by key; a
    re-emission with other content is a violation."""
    want = {k: (t, p) for k, t, p in expected if k[0] <= through}
    got = {}
    copies = 0
    problems = []
    for name, outputs in delivered_files.items():
        for k, t, p in outputs:
            copies += 1
            if k in got and got[k][0] != (t, p):
                problems.append("key %d.%d delivered as %r by %s and as %r by %s" % (
                    k[0], k[1], p, name, got[k][0][1], got[k][1]))
            got.setdefault(k, ((t, p), name))
    for k, (tp, name) in got.items():
        if k not in want and k[0] <= through:
            problems.append("key %d.%d delivered by %s is not an output of the log" % (k[0], k[1], name))
        elif k in want and want[k] != tp:
            problems.append("key %d.%d delivered by %s as %r, the log gives %r" % (k[0], k[1], name, tp, want[k]))
    missing = sorted(k for k in want if k not in got)
    for k in missing[:10]:
        problems.append("key %d.%d (%s %s) was never delivered" % (k[0], k[1], want[k][0], want[k][1]))
    if problems:
        return Verdict("exactly-once", False, "%d missing, %d other problems" % (
            len(missing), len(problems) - min(len(missing), 10)), problems[:12])
    return Verdict("exactly-once", True, "%d outputs through index %d delivered once each (%d copies, %d re-emitted)"
                   % (len(want), through, copies, copies - len(got)))


def check_audit(expected, db_path, through=None):
    """The audit learner's table order_events(idx, pos, payload) equals the log's order
    events through the table's acknowledged index (and at most `through`, how far
    `expected` was computed)."""
    con = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True)
    try:
        row = con.execute("SELECT v FROM audit_meta WHERE k = 'acked_through'").fetchone()
        acked = int(row[0]) if row else 0
        if through is not None:
            acked = min(acked, through)
        rows = {(i, p): pl for i, p, pl in con.execute(
            "SELECT idx, pos, payload FROM order_events WHERE idx <= ? ORDER BY idx, pos", (acked,))}
    finally:
        con.close()
    want = {k: p for k, t, p in expected if t == "order_event" and k[0] <= acked}
    problems = []
    for k in sorted(set(want) | set(rows)):
        if k not in rows:
            problems.append("order event %d.%d missing from the table" % k)
        elif k not in want:
            problems.append("table row %d.%d is not an order event of the log" % k)
        elif rows[k] != want[k]:
            problems.append("row %d.%d is %r, the log gives %r" % (k[0], k[1], rows[k], want[k]))
    if problems:
        return Verdict("audit", False, "%d differences through %d" % (len(problems), acked), problems[:10])
    return Verdict("audit", True, "%d rows through index %d equal the log's order events" % (len(rows), acked))


# ----------------------------------------------------------------------------------
# Availability.
# ----------------------------------------------------------------------------------


def availability(history, start_ns, end_ns):
    """(longest window in seconds with no successful operation, successful ops/s)."""
    times = sorted(op["complete"] for op in history if op["type"] == "ok" and start_ns <= op["complete"] <= end_ns)
    edges = [start_ns] + times + [end_ns]
    gap = max((b - a for a, b in zip(edges, edges[1:])), default=end_ns - start_ns)
    secs = max((end_ns - start_ns) / 1e9, 1e-9)
    return gap / 1e9, len(times) / secs
