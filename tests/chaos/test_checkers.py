#!/usr/bin/env python3
"""Self-tests of the chaos checkers: each must pass a correct history and flag a broken
one (a stale read, a lost acknowledged write, a duplicated or missing output, ...).

  python3 tests/chaos/test_checkers.py
"""

import os
import sqlite3
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checkers as ck  # noqa: E402
import kv_workload as kvw  # noqa: E402
import nemesis as nm  # noqa: E402


def op(f, key, t0, t1, type_="ok", value=None, count=None):
    o = {"f": f, "key": key, "invoke": t0, "complete": t1, "type": type_}
    if value is not None or f == "get":
        o["value"] = value
    if count is not None:
        o["count"] = count
    return o


class Linearizability(unittest.TestCase):
    def test_sequential_history_passes(self):
        h = [op("set", "a", 0, 1, value="x"), op("get", "a", 2, 3, value="x"),
             op("del", "a", 4, 5, count=1), op("get", "a", 6, 7, value=None), op("del", "a", 8, 9, count=0)]
        self.assertTrue(ck.check_linearizable(h).ok)

    def test_stale_read_is_flagged(self):
        # y overwrote x, and a read that started after that write completed still sees x.
        h = [op("set", "a", 0, 1, value="x"), op("set", "a", 2, 3, value="y"), op("get", "a", 4, 5, value="x")]
        v = ck.check_linearizable(h)
        self.assertFalse(v.ok)
        self.assertEqual(v.evidence[0]["key"], "a")

    def test_concurrent_reads_may_see_either_value(self):
        h = [op("set", "a", 0, 1, value="x"), op("set", "a", 2, 10, value="y"),
             op("get", "a", 3, 4, value="y"), op("get", "a", 5, 6, value="y")]
        self.assertTrue(ck.check_linearizable(h).ok)
        # ...but not go back once the new value was seen.
        h2 = h[:3] + [op("get", "a", 5, 6, value="x")]
        self.assertFalse(ck.check_linearizable(h2).ok)

    def test_unknown_write_may_apply_late_or_never(self):
        late = [op("set", "a", 0, 1, value="x"), op("set", "a", 2, 3, "unknown", value="y"),
                op("get", "a", 10, 11, value="x"), op("get", "a", 12, 13, value="y")]
        self.assertTrue(ck.check_linearizable(late).ok)
        never = [op("set", "a", 0, 1, value="x"), op("set", "a", 2, 3, "unknown", value="y"),
                 op("get", "a", 10, 11, value="x")]
        self.assertTrue(ck.check_linearizable(never).ok)
        # An unknown write cannot take effect before it was called.
        early = [op("get", "a", 0, 1, value="y"), op("set", "a", 2, 3, "unknown", value="y")]
        self.assertFalse(ck.check_linearizable(early).ok)

    def test_failed_write_must_not_be_seen(self):
        # Classified as failed, the write is left out; a read of its value is a violation.
        h = [op("set", "a", 0, 1, "fail", value="y"), op("get", "a", 2, 3, value="y")]
        self.assertFalse(ck.check_linearizable(h).ok)

    def test_del_count_is_checked(self):
        h = [op("del", "a", 0, 1, count=1)]  # nothing was there
        self.assertFalse(ck.check_linearizable(h).ok)

    def test_many_concurrent_unknown_writes_stay_tractable(self):
        # More unknown writes open on one key than a run produces (keys rotate), each
        # observed in the reverse of its call order: every one must take effect late.
        n = 12
        h = [op("set", "a", i, i + 1, "unknown", value="u%d" % i) for i in range(n)]
        h += [op("get", "a", 100 + 2 * i, 101 + 2 * i, value="u%d" % (n - 1 - i)) for i in range(n)]
        self.assertTrue(ck.check_linearizable(h).ok)
        h.append(op("get", "a", 200, 201, value="u%d" % (n - 1)))  # cannot come back
        self.assertFalse(ck.check_linearizable(h).ok)


class Classification(unittest.TestCase):
    def test_only_proof_of_non_application_is_a_failure(self):
        for e in ("MOVED 0 127.0.0.1:7000", "CLUSTERDOWN not leader; no leader known yet, retry",
                  "ERR not leader; leader is 2", "BUSY too many requests in flight, retry",
                  "TRYAGAIN leadership transfer in progress"):
            self.assertEqual(kvw.classify_error(e), "fail", e)
        for e in ("ERR timeout: the outcome is unknown (a write may still be applied)",
                  "ERR server shutting down", "ERR ShuttingDown: node is stopping", "ERR IoError: disk"):
            self.assertEqual(kvw.classify_error(e), "unknown", e)

    def test_misclassified_unknown_write_is_caught(self):
        # A timed-out write that did commit, wrongly recorded as failed, shows up as a
        # read of a value nobody successfully wrote: the checker must flag that history,
        # which is why classify_error must never call a timeout a failure.
        h = [op("set", "a", 0, 1, "fail", value="y"), op("get", "a", 5, 6, value="y")]
        self.assertFalse(ck.check_linearizable(h).ok)
        h[0]["type"] = kvw.classify_error("ERR timeout: the outcome is unknown (a write may still be applied)")
        self.assertTrue(ck.check_linearizable(h).ok)


def kv_payload(key, value):
    parts = [key.encode(), value.encode()]
    return b"KV\x01P" + len(parts).to_bytes(4, "big") + b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def dump_text(entries, commit, first=1):
    lines = ["# rlr-dump v1 cluster=c node=1", "hardstate term=2 vote=1 commit=%d" % commit,
             "snapshot index=%d term=0" % (first - 1),
             "range first=%d last=%d" % (first, first + len(entries) - 1)]
    for i, (term, kind, payload) in enumerate(entries, start=first):
        lines.append("entry %d %d %s 0 0 %s" % (i, term, kind, payload.hex() or "-"))
    return "\n".join(lines) + "\nend entries=%d\n" % len(entries)


class LogChecks(unittest.TestCase):
    def test_agreeing_logs_pass_and_a_difference_fails(self):
        es = [(1, "noop", b"\0" * 8), (1, "normal", kv_payload("a", "x")), (1, "normal", kv_payload("a", "y"))]
        d1 = ck.Dump(1, dump_text(es, 3))
        d2 = ck.Dump(2, dump_text(es, 3))
        self.assertTrue(ck.check_log_agreement([d1, d2], 3).ok)
        d3 = ck.Dump(3, dump_text(es[:2] + [(2, "normal", kv_payload("a", "z"))], 3))
        v = ck.check_log_agreement([d1, d3], 3)
        self.assertFalse(v.ok)
        self.assertIn("index 3", v.evidence[0])
        short = ck.Dump(4, dump_text(es[:2], 2))
        self.assertFalse(ck.check_log_agreement([d1, short], 3).ok)

    def test_lost_acknowledged_write_is_flagged(self):
        d = ck.Dump(1, dump_text([(1, "normal", kv_payload("a", "x"))], 1))
        good = [op("set", "a", 0, 1, value="x")]
        self.assertTrue(ck.check_kv_writes(good, d, 1).ok)
        lost = good + [op("set", "a", 2, 3, value="y")]
        v = ck.check_kv_writes(lost, d, 1)
        self.assertFalse(v.ok)
        self.assertIn("y", v.evidence[0])

    def test_phantom_and_duplicate_writes_are_flagged(self):
        d = ck.Dump(1, dump_text([(1, "normal", kv_payload("a", "x")), (1, "normal", kv_payload("a", "x"))], 2))
        self.assertFalse(ck.check_kv_writes([op("set", "a", 0, 1, value="x")], d, 2).ok)
        d2 = ck.Dump(1, dump_text([(1, "normal", kv_payload("a", "ghost"))], 1))
        self.assertFalse(ck.check_kv_writes([], d2, 1).ok)
        failed = [op("set", "a", 0, 1, "fail", value="ghost")]
        self.assertFalse(ck.check_kv_writes(failed, d2, 1).ok)


class SequencerChecks(unittest.TestCase):
    def setUp(self):
        self.expected = ck.parse_outputs("3.0 order_event NEW 1\n3.1 match_result M 1\n4.0 order_event NEW 2\n")

    def test_union_of_outputs_deduplicated_passes(self):
        files = {"node 1": ck.parse_outputs("3.0 order_event NEW 1\n3.1 match_result M 1\n"),
                 "node 2": ck.parse_outputs("3.1 match_result M 1\n4.0 order_event NEW 2\n4.1 torn")}
        v = ck.check_exactly_once(self.expected, files, 4)
        self.assertTrue(v.ok, v)

    def test_missing_output_is_flagged(self):
        files = {"node 1": ck.parse_outputs("3.0 order_event NEW 1\n4.0 order_event NEW 2\n")}
        v = ck.check_exactly_once(self.expected, files, 4)
        self.assertFalse(v.ok)
        self.assertIn("3.1", v.evidence[0])

    def test_conflicting_duplicate_and_unexpected_outputs_are_flagged(self):
        dup = {"node 1": ck.parse_outputs("3.0 order_event NEW 1\n3.1 match_result M 1\n4.0 order_event NEW 2\n"),
               "node 2": ck.parse_outputs("3.0 order_event NEW 9\n")}
        self.assertFalse(ck.check_exactly_once(self.expected, dup, 4).ok)
        extra = {"node 1": ck.parse_outputs("3.0 order_event NEW 1\n3.1 match_result M 1\n3.2 x y\n"
                                            "4.0 order_event NEW 2\n")}
        self.assertFalse(ck.check_exactly_once(self.expected, extra, 4).ok)

    def test_output_duplicated_under_another_key_is_flagged(self):
        # An entry applied twice (say, a session retry not deduplicated) shows up as the
        # same content at a key the log does not produce.
        files = {"node 1": ck.parse_outputs("3.0 order_event NEW 1\n3.1 match_result M 1\n4.0 order_event NEW 2\n"
                                            "5.0 order_event NEW 2\n")}
        v = ck.check_exactly_once(self.expected, files, 5)
        self.assertFalse(v.ok)
        self.assertIn("5.0", v.evidence[0])

    def test_acknowledged_command_at_wrong_index_is_flagged(self):
        d = ck.Dump(1, dump_text([(1, "noop", b""), (1, "session", b"NEW 1")], 2))
        good = [{"f": "order", "type": "ok", "index": 2, "term": 1, "command": "NEW 1", "invoke": 0, "complete": 1}]
        self.assertTrue(ck.check_sequencer_acks(good, d, 2).ok)
        wrong = [dict(good[0], index=1)]
        self.assertFalse(ck.check_sequencer_acks(wrong, d, 2).ok)
        uncommitted = [dict(good[0])]
        self.assertFalse(ck.check_sequencer_acks(uncommitted, d, 1).ok)
        self.assertFalse(ck.check_sequencer_acks([], d, 2).ok)  # NEW 1 was never proposed

    def test_audit_table_must_equal_the_log(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "audit.sqlite")
            con = sqlite3.connect(path)
            con.execute("CREATE TABLE order_events(idx INTEGER, pos INTEGER, payload TEXT, PRIMARY KEY(idx, pos))")
            con.execute("CREATE TABLE audit_meta(k TEXT PRIMARY KEY, v INTEGER)")
            con.execute("INSERT INTO audit_meta VALUES ('acked_through', 4)")
            con.executemany("INSERT INTO order_events VALUES (?, ?, ?)", [(3, 0, "NEW 1"), (4, 0, "NEW 2")])
            con.commit()
            self.assertTrue(ck.check_audit(self.expected, path).ok)
            # The learner may have acknowledged past where the log was replayed: a row
            # beyond that is not judged against a replay that stopped short of it.
            con.execute("INSERT INTO order_events VALUES (5, 0, 'NEW 9')")
            con.execute("UPDATE audit_meta SET v = 5")
            con.commit()
            self.assertFalse(ck.check_audit(self.expected, path).ok)
            self.assertTrue(ck.check_audit(self.expected, path, through=4).ok)
            con.execute("DELETE FROM order_events WHERE idx = 5")
            con.execute("UPDATE audit_meta SET v = 4")
            con.commit()
            con.execute("DELETE FROM order_events WHERE idx = 4")
            con.commit()
            self.assertFalse(ck.check_audit(self.expected, path).ok)
            con.execute("INSERT INTO order_events VALUES (4, 0, 'NEW 3')")
            con.commit()
            self.assertFalse(ck.check_audit(self.expected, path).ok)
            con.close()


class Schedule(unittest.TestCase):
    def test_a_seed_replays_the_same_schedule(self):
        self.assertEqual(nm.schedule(7, 120), nm.schedule(7, 120))
        self.assertNotEqual(nm.schedule(7, 120), nm.schedule(8, 120))
        kinds = {k for _, k, _ in nm.schedule(3, 3600)}
        self.assertEqual(kinds, set(nm.KINDS))

    def test_the_ci_seed_runs_every_kind_of_fault(self):
        # tests/chaos/CMakeLists.txt runs 75 s of seed 209 per workload.
        kinds = {k for _, k, _ in nm.schedule(209, 75)}
        self.assertEqual(kinds, set(nm.KINDS))


class Availability(unittest.TestCase):
    def test_longest_gap(self):
        h = [op("get", "a", 0, int(1e9)), op("get", "a", 0, int(4e9)), op("get", "a", 0, int(5e9), "unknown")]
        gap, rate = ck.availability(h, 0, int(6e9))
        self.assertAlmostEqual(gap, 3.0)
        self.assertAlmostEqual(rate, 2 / 6)


if __name__ == "__main__":
    unittest.main(verbosity=2)
