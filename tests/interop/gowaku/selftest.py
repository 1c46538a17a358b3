#!/usr/bin/env python3
"""Self-test for gowaku-peer (the go-waku test peer). Python 3.11, stdlib only.

    python3 selftest.py [path/to/gowaku-peer]      (default ./gowaku-peer)

Builds nothing. Starts several peers on loopback, cluster 1, shards 0..7, and
checks relay, hashes, store, lightpush, filter, metadata, cluster mismatch,
peer exchange (discv5), bad input and the three ways of stopping. Prints
"N passed, N failed"; exit status 0 only if all passed. VERBOSE=1 shows every
JSON line and the peers' stderr; STDERR_DIR=dir saves each peer's stderr
there; A_FLAGS="--log-level debug" adds flags to peer A.

Synchronisation is by waiting for events/answers or polling with a deadline,
never by fixed sleeps.
"""

import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "./gowaku-peer")
VERBOSE = os.environ.get("VERBOSE") not in (None, "", "0")
CLUSTER = 1
SHARDS = "0,1,2,3,4,5,6,7"
TOPIC = "/waku/2/rs/1/4"

passed = 0
failed = 0


def log(*args):
    if VERBOSE:
        print(*args, file=sys.stderr, flush=True)


class Peer:
    def __init__(self, name, *args):
        self.name = name
        self.args = list(args)
        self.proc = subprocess.Popen(
            [BIN, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        self.lines = []  # every stdout line (parsed)
        self.raw_lines = []
        self.cond = threading.Condition()
        self.next_id = 1
        self.stderr = []
        self.eof = False
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self.ready = self.wait_event(lambda e: e.get("event") == "ready", 30, "ready")
        self.peer_id = self.ready["peerId"]
        self.addr = self.ready["addrs"][0]
        self.enr = self.ready["enr"]

    def _read_stdout(self):
        for raw in self.proc.stdout:
            text = raw.decode("utf-8", "replace").rstrip("\n")
            log(f"[{self.name} out] {text}")
            try:
                obj = json.loads(text)
            except ValueError:
                obj = {"__not_json__": text}
            with self.cond:
                self.raw_lines.append(text)
                self.lines.append(obj)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def _read_stderr(self):
        for raw in self.proc.stderr:
            text = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr.append(text)
            log(f"[{self.name} err] {text}")

    def send_raw(self, text):
        log(f"[{self.name} in ] {text}")
        self.proc.stdin.write((text + "\n").encode())
        self.proc.stdin.flush()

    def cmd(self, cmd, timeout=20, **args):
        """Send a command, return its answer (whatever "ok" says)."""
        with self.cond:
            cid = self.next_id
            self.next_id += 1
        self.send_raw(json.dumps({"id": cid, "cmd": cmd, **args}))
        return self.wait_line(lambda o: o.get("id") == cid and "ok" in o, timeout, f"answer to {cmd}")

    def ok(self, cmd, timeout=20, **args):
        ans = self.cmd(cmd, timeout=timeout, **args)
        if not ans.get("ok"):
            raise AssertionError(f"{self.name} {cmd} failed: {ans.get('error')}")
        return ans

    def wait_line(self, pred, timeout, what, start=0):
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    if pred(self.lines[i]):
                        return self.lines[i]
                    i += 1
                if self.eof:
                    raise AssertionError(f"{self.name}: stdout closed while waiting for {what}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.name}: timed out waiting for {what}")
                self.cond.wait(left)

    def wait_event(self, pred, timeout, what):
        return self.wait_line(lambda o: "event" in o and pred(o), timeout, what)

    def events(self, name):
        with self.cond:
            return [o for o in self.lines if o.get("event") == name]

    def wait_exit(self, timeout=10):
        return self.proc.wait(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def poll(fn, timeout, what, interval=0.1):
    """Call fn until it returns a truthy value; deadline-based, no fixed waits."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
            if last:
                return last
        except AssertionError as e:
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out: {what} (last: {last})")
        time.sleep(interval)


def check(name, fn):
    global passed, failed
    t0 = time.monotonic()
    try:
        fn()
        passed += 1
        print(f"ok   {name} ({time.monotonic() - t0:.1f} s)", flush=True)
    except Exception as e:  # noqa: BLE001
        failed += 1
        print(f"FAIL {name} ({time.monotonic() - t0:.1f} s): {e}", flush=True)
        if VERBOSE:
            traceback.print_exc()


def gowaku_hash(topic, payload, content_topic, meta=b"", timestamp=0):
    """go-waku's pb.WakuMessage.Hash: 8-byte big-endian timestamp, always."""
    return hashlib.sha256(
        topic.encode() + payload + content_topic.encode() + meta + (timestamp & (2**64 - 1)).to_bytes(8, "big")
    ).hexdigest()


def now_ns():
    return time.time_ns()


def main():
    if not os.path.exists(BIN):
        print(f"binary not found: {BIN} (build it: go build -tags gowaku_no_rln -o gowaku-peer .)")
        return 2
    peers = []

    def start(name, *args):
        p = Peer(name, "--cluster", str(CLUSTER), "--shards", SHARDS, *args)
        peers.append(p)
        return p

    try:
        return run(start, peers)
    finally:
        for p in peers:
            if p.proc.poll() is None:
                try:
                    p.proc.stdin.close()
                except OSError:
                    pass
        for p in peers:
            try:
                p.proc.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        if os.environ.get("STDERR_DIR"):
            for p in peers:
                with open(os.path.join(os.environ["STDERR_DIR"], p.name + ".stderr"), "w") as f:
                    f.write("\n".join(p.stderr) + "\n")


def run(start, peers):
    global failed
    ctx = {}

    # ---------------------------------------------------------- start-up ---
    def t_start():
        ctx["A"] = start("A", "--subscribe", "--store", "--lightpush", "--filter", *os.environ.get("A_FLAGS", "").split())
        ctx["B"] = start("B", "--subscribe")
        ctx["C"] = start("C", "--no-relay")
        A = ctx["A"]
        assert A.ready["cluster"] == 1 and A.ready["shards"] == list(range(8)), A.ready
        assert A.addr.startswith("/ip4/127.0.0.1/tcp/") and A.addr.endswith("/p2p/" + A.peer_id), A.addr
        assert A.enr.startswith("enr:"), A.enr
        for proto in ("/vac/waku/relay/2.0.0", "/vac/waku/store/2.0.0-beta4", "/vac/waku/lightpush/2.0.0-beta1",
                      "/vac/waku/filter-subscribe/2.0.0-beta1", "/vac/waku/metadata/1.0.0"):
            assert proto in A.ready["protocols"], (proto, A.ready["protocols"])
        assert "/vac/waku/relay/2.0.0" not in ctx["C"].ready["protocols"], ctx["C"].ready["protocols"]

    check("three peers start and print ready (A relay+store+lightpush+filter, B relay, C light)", t_start)
    if "C" not in ctx:
        return finish()
    A, B, C = ctx["A"], ctx["B"], ctx["C"]

    # --------------------------------------------------------- bad input ---
    def t_bad_input():
        A.send_raw("this is not json")
        ans = A.wait_line(lambda o: o.get("id") is None and o.get("ok") is False, 10, "bad JSON answer")
        assert "bad JSON" in ans["error"], ans
        ans = A.cmd("frobnicate")
        assert ans["ok"] is False and "unknown cmd" in ans["error"], ans
        ans = A.cmd("publish", topic=TOPIC, contentTopic="/t/1/x/proto", payload="zz")
        assert ans["ok"] is False and "hex" in ans["error"], ans
        ans = A.cmd("dial", addr="/ip4/8.8.8.8/tcp/1/p2p/" + B.peer_id)
        assert ans["ok"] is False and "loopback" in ans["error"], ans
        ans = A.cmd("dial", adr="typo")
        assert ans["ok"] is False and "unknown field" in ans["error"], ans

    check("bad JSON, unknown cmd, bad hex, non-loopback dial and unknown fields answer ok:false", t_bad_input)

    # ------------------------------------------------------ dial & mesh ---
    def t_dial():
        ans = B.ok("dial", addr=A.addr)
        assert ans["peerId"] == A.peer_id, ans
        assert "/vac/waku/relay/2.0.0" in ans["protocols"], ans
        assert ans["agentVersion"] == "go-waku", ans
        A.wait_event(lambda e: e["event"] == "peer:connect" and e["peerId"] == B.peer_id, 10, "A peer:connect B")
        B.wait_event(lambda e: e["event"] == "peer:connect" and e["peerId"] == A.peer_id, 10, "B peer:connect A")
        peers = B.ok("peers")["peers"]
        assert any(p["peerId"] == A.peer_id for p in peers), peers

    check("B dials A (identify done), both see peer:connect", t_dial)

    def t_mesh():
        poll(lambda: A.peer_id in B.ok("meshPeers", topic=TOPIC)["peers"], 20, "A in B's mesh")
        poll(lambda: B.peer_id in A.ok("meshPeers", topic=TOPIC)["peers"], 20, "B in A's mesh")

    check("A and B mesh on " + TOPIC, t_mesh)

    # ------------------------------------------------------------ relay ---
    def t_relay():
        ts = str(now_ns())
        ans = A.ok("publish", topic=TOPIC, contentTopic="/test/1/relay/proto", payload="cafe01", timestamp=ts,
                   meta="abcd")
        ev = B.wait_event(lambda e: e["event"] == "message" and e["hash"] == ans["hash"], 15, "relay message at B")
        assert ev["topic"] == TOPIC and ev["payload"] == "cafe01" and ev["timestamp"] == ts, ev
        assert ev["meta"] == "abcd" and ev["contentTopic"] == "/test/1/relay/proto", ev
        assert ans["hash"] == gowaku_hash(TOPIC, bytes.fromhex("cafe01"), "/test/1/relay/proto",
                                          bytes.fromhex("abcd"), int(ts)), ans
        ans2 = B.ok("publish", topic=TOPIC, contentTopic="/test/1/relay/proto", payload="cafe02",
                    timestamp=str(now_ns()))
        A.wait_event(lambda e: e["event"] == "message" and e["hash"] == ans2["hash"], 15, "relay message at A")
        # A's own publication is not reported back to A (checked after B's
        # message arrived at A, which came later on the same topic).
        assert not [e for e in A.events("message") if e["hash"] == ans["hash"]], "own publication reported"

    check("relay message crosses A->B and B->A with equal hashes", t_relay)

    def t_hash_vectors():
        topic = "/waku/2/default-waku/proto"
        A.ok("subscribe", topic=topic)
        ans = A.ok("publish", topic=topic, contentTopic="/waku/2/default-content/proto",
                   payload="010203045445535405060708", meta="73757065722d736563726574",
                   timestamp=str(0x175789BFA23F8400))
        assert ans["hash"] == "64cce733fed134e83da02b02c6f689814872b1a0ac97ea56b76095c3c72bfe05", ans
        ans = A.ok("publish", topic=topic, contentTopic="/waku/2/default-content/proto",
                   payload="010203045445535405060708", timestamp=str(0x175789BFA23F8400))
        assert ans["hash"] == "a2554498b31f5bcdfcbf7fa58ad1c2d45f0254f3f8110a85588ec3cf10720fd8", ans
        # No timestamp at all: go-waku still appends 8 zero bytes.
        ans = A.ok("publish", topic=topic, contentTopic="/waku/2/default-content/proto",
                   payload="010203045445535405060708", meta="73757065722d736563726574", timestamp=None)
        want = gowaku_hash(topic, bytes.fromhex("010203045445535405060708"), "/waku/2/default-content/proto",
                           bytes.fromhex("73757065722d736563726574"), 0)
        assert ans["hash"] == want, (ans, want)
        A.ok("unsubscribe", topic=topic)
        ans = A.cmd("publish", topic=TOPIC, contentTopic="/t/1/x/proto", payload="")
        assert ans["ok"] is False and "missing Payload" in ans["error"], ans

    check("hash: spec vectors, no-timestamp rule, empty payload refused", t_hash_vectors)

    # ------------------------------------------------------------ store ---
    def t_store():
        ct = "/test/1/store/proto"
        base = now_ns() - 10_000_000_000
        hashes = []
        for i in range(5):
            ans = B.ok("publish", topic=TOPIC, contentTopic=ct, payload=f"5703{i:02x}", timestamp=str(base + i * 1000))
            hashes.append(ans["hash"])
        for h in hashes:
            A.wait_event(lambda e, h=h: e["event"] == "message" and e["hash"] == h, 15, "store message at A")
        C.ok("dial", addr=A.addr)

        def query():
            ans = C.ok("legacyStoreQuery", peerId=A.peer_id, pubsubTopic=TOPIC, contentTopics=[ct], pageSize=2)
            return ans if len(ans["messages"]) == 5 else None

        ans = poll(query, 20, "5 messages in A's store", interval=0.2)
        assert ans["pages"] == [2, 2, 1], ans["pages"]
        assert [m["hash"] for m in ans["messages"]] == hashes, (ans["messages"], hashes)
        assert [m["payload"] for m in ans["messages"]] == [f"5703{i:02x}" for i in range(5)], ans
        back = C.ok("legacyStoreQuery", peerId=A.peer_id, pubsubTopic=TOPIC, contentTopics=[ct], pageSize=2,
                    forward=False)
        assert back["pages"] == [2, 2, 1], back["pages"]
        assert sorted(m["hash"] for m in back["messages"]) == sorted(hashes), back
        ranged = C.ok("legacyStoreQuery", peerId=A.peer_id, pubsubTopic=TOPIC, contentTopics=[ct],
                      timeStart=str(base + 1000), timeEnd=str(base + 3000))
        assert [m["hash"] for m in ranged["messages"]] == hashes[1:4], ranged
        # go-waku's store v3 client against go-waku's store (which serves v2 only).
        v3 = C.cmd("storeQuery", peerId=A.peer_id, pubsubTopic=TOPIC, contentTopics=[ct], pageSize=2)
        assert v3["ok"] is False and "protocol" in v3["error"].lower(), v3
        v3 = C.cmd("storeQuery", peerId=A.peer_id, contentTopics=[ct])
        assert v3["ok"] is False and "missing PubsubTopic" in v3["error"], v3

    check("store: 5 messages at --store peer, legacy store v2 paged 2/2/1, same hashes; v3 refused", t_store)

    # -------------------------------------------------------- lightpush ---
    def t_lightpush():
        ts = str(now_ns())
        ans = C.ok("lightpush", peerId=A.peer_id, pubsubTopic=TOPIC, contentTopic="/test/1/lp/proto",
                   payload="11aa22", timestamp=ts)
        ev = B.wait_event(lambda e: e["event"] == "message" and e["hash"] == ans["hash"], 15,
                          "lightpushed message at B")
        assert ev["payload"] == "11aa22" and ev["timestamp"] == ts and ev["topic"] == TOPIC, ev
        assert ans["hash"] == gowaku_hash(TOPIC, bytes.fromhex("11aa22"), "/test/1/lp/proto", b"", int(ts))

    check("lightpush from light C via A reaches relay peer B with the same hash", t_lightpush)

    # ----------------------------------------------------------- filter ---
    def t_filter():
        ct = "/test/1/filter/proto"
        sub = C.ok("filterSubscribe", peerId=A.peer_id, pubsubTopic=TOPIC, contentTopics=[ct])
        sub_at = time.monotonic()
        assert sub["subscriptions"] and sub["subscriptions"][0]["peerId"] == A.peer_id, sub
        ts = str(now_ns())
        ans = B.ok("publish", topic=TOPIC, contentTopic=ct, payload="f117e4", timestamp=ts)
        ev = C.wait_event(lambda e: e["event"] == "filter" and e["hash"] == ans["hash"], 15, "filter push at C")
        assert ev["pubsubTopic"] == TOPIC and ev["contentTopic"] == ct and ev["payload"] == "f117e4", ev
        assert ev["timestamp"] == ts and ev["peerId"] == A.peer_id, ev

        # go-waku's filter server allows 1 request/s per peer (burst 1) and
        # answers 429 above that; go-waku's client drops its local subscription
        # even when the server refuses the unsubscribe. So respect the rate
        # limit (this wait is not synchronisation: the token bucket refills
        # 1 s after the subscribe request, which preceded its answer).
        time.sleep(max(0.0, 1.1 - (time.monotonic() - sub_at)))
        C.ok("filterUnsubscribe", peerId=A.peer_id, pubsubTopic=TOPIC, contentTopics=[ct])
        ans = C.cmd("filterUnsubscribe", peerId=A.peer_id, pubsubTopic=TOPIC, contentTopics=[ct])
        assert ans["ok"] is False and "subscription not found" in ans["error"], ans

    check("filter: light C subscribes at A, receives B's relayed message", t_filter)

    # --------------------------------------------------------- metadata ---
    def t_metadata():
        ans = C.ok("metadataQuery", peerId=A.peer_id)
        assert ans["clusterId"] == 1 and sorted(ans["shards"]) == list(range(8)), ans
        ans = A.ok("metadataQuery", peerId=B.peer_id)
        assert ans["clusterId"] == 1 and sorted(ans["shards"]) == list(range(8)), ans
        # A light node (no relay) still answers with its --shards.
        ans = A.ok("metadataQuery", peerId=C.peer_id)
        assert ans["clusterId"] == 1 and sorted(ans["shards"]) == list(range(8)), ans

    check("metadataQuery answers cluster 1 and shards 0..7", t_metadata)

    # -------------------------------------------------- cluster mismatch ---
    def t_cluster():
        D = Peer("D", "--cluster", "2", "--shards", "0")
        peers.append(D)
        ctx["D"] = D
        ans = A.cmd("dial", addr=D.addr)  # may fail if the disconnect wins the race with identify
        A.wait_event(lambda e: e["event"] == "peer:disconnect" and e["peerId"] == D.peer_id, 15,
                     "A disconnects cluster-2 peer D")
        poll(lambda: all(p["peerId"] != D.peer_id for p in A.ok("peers")["peers"]), 10, "D gone from A's peers")
        log("dial answer was", ans)

    check("a cluster-2 peer is disconnected (metadata)", t_cluster)

    # ---------------------------------------------------- peer exchange ---
    def t_px():
        E = start("E", "--subscribe", "--discv5")
        F = start("F", "--subscribe", "--discv5", "--px", "--discv5-bootnodes", E.enr)
        ctx["E"], ctx["F"] = E, F
        C.ok("dial", addr=F.addr)

        def ask():
            ans = C.cmd("peerExchange", peerId=F.peer_id, numPeers=5)
            if not ans["ok"]:
                return None  # e.g. rate limited (stream reset): ask again
            for p in ans["peers"]:
                if p["peerId"] == E.peer_id:
                    return ans, p
            return None

        ans, rec = poll(ask, 60, "F hands out E's ENR via peer exchange", interval=1.1)
        assert ans["goWakuAccepts"] is True, ans
        assert rec["cluster"] == 1 and rec["shards"] == list(range(8)), rec
        e_tcp = E.addr.split("/p2p/")[0]
        assert any(m.startswith(e_tcp) for m in rec["multiaddrs"]), (rec, E.addr)
        assert rec["inPeerstore"] is True and rec["handedToGoWaku"] is True, rec
        assert rec["enr"].startswith("enr:"), rec

    check("peer exchange: F (--px --discv5, bootnode E) hands E's ENR to C", t_px)

    # ---------------------------------------------------------- stopping ---
    def t_stop_cmd():
        ans = B.cmd("stop")
        assert ans["ok"] is True, ans
        assert B.wait_exit(10) == 0
        with B.cond:
            assert B.lines[-1] is ans, B.lines[-1]
        assert all("__not_json__" not in o for o in B.lines), "non-JSON line on stdout"

    check("stop: answer is the last line, exit 0", t_stop_cmd)

    def t_stop_eof():
        C.proc.stdin.close()
        assert C.wait_exit(10) == 0

    check("stdin EOF: exit 0", t_stop_eof)

    def t_stop_sigterm():
        A.proc.send_signal(signal.SIGTERM)
        assert A.wait_exit(10) == 0

    check("SIGTERM: exit 0", t_stop_sigterm)

    def t_stdout_clean():
        for p in peers:
            bad = [o["__not_json__"] for o in p.lines if "__not_json__" in o]
            assert not bad, (p.name, bad[:3])

    check("stdout carried only JSON lines", t_stdout_clean)

    def t_bad_flags():
        r = subprocess.run([BIN, "--clsuter", "1"], capture_output=True, timeout=10)
        assert r.returncode == 2 and r.stdout == b"" and b"clsuter" in r.stderr, r
        r = subprocess.run([BIN, "--listen", "/ip4/0.0.0.0/tcp/0"], capture_output=True, timeout=10)
        assert r.returncode == 2 and b"loopback" in r.stderr, r

    check("flag typo / non-loopback listen: exit 2 with a message on stderr", t_bad_flags)

    return finish()


def finish():
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
