// Self-test of relay-peer.mjs: two js-waku relay peers on loopback exchange
// messages over /waku/2/rs/1/4. Run with `node selftest.mjs` (or `npm run selftest`).
import "./polyfill.mjs";

import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const RELAY_PEER = fileURLToPath(new URL("./relay-peer.mjs", import.meta.url));
const TOPIC = "/waku/2/rs/1/4";
const CONTENT_TOPIC = "/test/1/hash/proto";
const TIMESTAMP = "1700000000000000000";
const EXPECTED_HASH = "bfd57923726173c6af604c44d06be2927922c30985e80fa5337162f27327317e";
const BIG_PAYLOAD_LEN = 150_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class Peer {
  constructor(name) {
    this.name = name;
    this.nextId = 1;
    this.pending = new Map();
    this.events = [];
    this.waiters = [];
    this.proc = spawn(process.execPath, [RELAY_PEER, "--cluster", "1", "--shards", "0,1,2,3,4,5,6,7"], {
      stdio: ["pipe", "pipe", "pipe"]
    });
    this.exited = once(this.proc, "exit");
    this.proc.stderr.on("data", (d) => {
      if (process.env.VERBOSE) process.stderr.write(`[${name} stderr] ${d}`);
    });
    createInterface({ input: this.proc.stdout }).on("line", (line) => this.onLine(line));
  }

  onLine(line) {
    let obj;
    try {
      obj = JSON.parse(line);
    } catch {
      throw new Error(`${this.name}: non-JSON line on stdout: ${line}`);
    }
    if (obj.event !== undefined) {
      if (obj.event !== "message" || process.env.VERBOSE) {
        const shown = obj.payload && obj.payload.length > 64 ? { ...obj, payload: `<${obj.payload.length / 2} bytes>` } : obj;
        console.log(`${this.name} <- ${JSON.stringify(shown)}`);
      }
      this.events.push(obj);
      for (const w of [...this.waiters]) {
        if (w.pred(obj)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(obj);
        }
      }
    } else if (this.pending.has(obj.id)) {
      this.pending.get(obj.id)(obj);
      this.pending.delete(obj.id);
    } else {
      throw new Error(`${this.name}: unexpected line ${line}`);
    }
  }

  waitEvent(pred, what, timeoutMs = 10_000) {
    const found = this.events.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      this.waiters.push(w);
      setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          reject(new Error(`${this.name}: timed out waiting for ${what}`));
        }
      }, timeoutMs).unref();
    });
  }

  cmd(obj, timeoutMs = 15_000) {
    const id = this.nextId++;
    const line = JSON.stringify({ id, ...obj });
    return new Promise((resolve, reject) => {
      this.pending.set(id, resolve);
      this.proc.stdin.write(line + "\n");
      setTimeout(() => {
        if (this.pending.delete(id)) reject(new Error(`${this.name}: no answer to ${obj.cmd}`));
      }, timeoutMs).unref();
    });
  }
}

let passed = 0;
let failed = 0;
function check(cond, what) {
  if (cond) {
    passed++;
    console.log(`ok   - ${what}`);
  } else {
    failed++;
    console.log(`FAIL - ${what}`);
  }
}

async function waitMesh(peer, otherId, timeoutMs = 15_000) {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    const r = await peer.cmd({ cmd: "meshPeers", topic: TOPIC });
    if (r.ok && r.peers.includes(otherId)) return Date.now() - start;
    await sleep(50);
  }
  return null;
}

async function main() {
  const t0 = Date.now();
  const a = new Peer("A");
  const b = new Peer("B");
  try {
    const readyA = await a.waitEvent((e) => e.event === "ready", "ready");
    const readyB = await b.waitEvent((e) => e.event === "ready", "ready");
    console.log(`both ready after ${Date.now() - t0} ms`);
    check(readyB.addrs.length === 1 && /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/ws\/p2p\//.test(readyB.addrs[0]), "ready addr is /ip4/127.0.0.1/tcp/PORT/ws/p2p/ID");

    const bad = await a.cmd({ cmd: "dial", addr: "/ip4/127.0.0.1/tcp/1/ws/p2p/" + readyB.peerId }, 20_000);
    check(bad.ok === false && typeof bad.error === "string", `dial to a closed port fails cleanly (${bad.error})`);

    const dial = await a.cmd({ cmd: "dial", addr: readyB.addrs[0] });
    check(dial.ok === true, "A dials B");
    await a.waitEvent((e) => e.event === "peer:connect" && e.peerId === readyB.peerId, "peer:connect B");
    await b.waitEvent((e) => e.event === "peer:connect" && e.peerId === readyA.peerId, "peer:connect A");
    check(true, "peer:connect seen on both sides");

    // identify runs right after the connection is up; wait for its result.
    let pp;
    for (let i = 0; i < 100; i++) {
      pp = await a.cmd({ cmd: "peerProtocols", peerId: readyB.peerId });
      if (pp.ok && pp.protocols.includes("/vac/waku/relay/2.0.0")) break;
      await sleep(50);
    }
    console.log(`A sees B's protocols: ${JSON.stringify(pp.protocols)} agent=${pp.agentVersion}`);
    check(pp.ok && pp.protocols.includes("/vac/waku/relay/2.0.0") && !pp.protocols.some((p) => p.startsWith("/meshsub")),
      "identify lists /vac/waku/relay/2.0.0 and no /meshsub");
    check(pp.ok && pp.protocols.includes("/vac/waku/metadata/1.0.0"), "identify lists /vac/waku/metadata/1.0.0");

    const md = await a.cmd({ cmd: "metadataQuery", peerId: readyB.peerId });
    console.log(`metadata query A->B: ${JSON.stringify(md)}`);
    check(md.ok && md.clusterId === 1, "metadata answers cluster 1");

    check((await a.cmd({ cmd: "subscribe", topic: TOPIC })).ok, "A subscribes");
    check((await b.cmd({ cmd: "subscribe", topic: TOPIC })).ok, "B subscribes");
    const [ma, mb] = await Promise.all([waitMesh(a, readyB.peerId), waitMesh(b, readyA.peerId)]);
    console.log(`mesh formed: A has B after ${ma} ms, B has A after ${mb} ms (from subscribe)`);
    check(ma !== null && mb !== null, "each has the other as mesh peer");

    // A -> B: the vector message
    const pubA = await a.cmd({ cmd: "publish", topic: TOPIC, contentTopic: CONTENT_TOPIC, payload: "010203", timestamp: TIMESTAMP });
    console.log(`A publish: ${JSON.stringify(pubA)}`);
    check(pubA.ok && pubA.hash === EXPECTED_HASH && pubA.recipients === 1, "A publish hash = vector, 1 recipient");
    const gotB = await b.waitEvent((e) => e.event === "message" && e.hash === EXPECTED_HASH, "vector message on B");
    console.log(`B got: ${JSON.stringify(gotB)}`);
    check(gotB.topic === TOPIC && gotB.contentTopic === CONTENT_TOPIC && gotB.payload === "010203" && gotB.timestamp === TIMESTAMP && gotB.meta === null,
      "B receives the vector message with equal fields and hash");

    // The same message again from A is a gossipsub duplicate (msg id = sha256(data)).
    const dup = await a.cmd({ cmd: "publish", topic: TOPIC, contentTopic: CONTENT_TOPIC, payload: "010203", timestamp: TIMESTAMP });
    check(dup.ok === false && /Duplicate/.test(dup.error), `republishing the same bytes is refused (${dup.error})`);

    // B -> A: the vector message again. B has already seen A's bytes (gossipsub
    // msg id = sha256(data)), so identical bytes would be refused as a
    // Duplicate; B sends it with ephemeral=true, which changes the bytes but
    // not the Waku message hash (ephemeral is not hashed).
    const pubB = await b.cmd({ cmd: "publish", topic: TOPIC, contentTopic: CONTENT_TOPIC, payload: "010203", timestamp: TIMESTAMP, ephemeral: true });
    console.log(`B publish: ${JSON.stringify(pubB)}`);
    check(pubB.ok && pubB.hash === EXPECTED_HASH && pubB.recipients === 1, "B publish (ephemeral) hash = vector, 1 recipient");
    const gotA = await a.waitEvent((e) => e.event === "message" && e.hash === EXPECTED_HASH, "vector message on A");
    console.log(`A got: ${JSON.stringify(gotA)}`);
    check(gotA.topic === TOPIC && gotA.contentTopic === CONTENT_TOPIC && gotA.payload === "010203" && gotA.timestamp === TIMESTAMP && gotA.ephemeral === true,
      "A receives the vector message with equal fields and hash");

    // Big payload B -> A
    const big = Buffer.alloc(BIG_PAYLOAD_LEN);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
    const bigHex = big.toString("hex");
    const pubBig = await b.cmd({ cmd: "publish", topic: TOPIC, contentTopic: CONTENT_TOPIC, payload: bigHex, timestamp: TIMESTAMP });
    console.log(`B publish big: ok=${pubBig.ok} size=${pubBig.size} recipients=${pubBig.recipients} hash=${pubBig.hash}`);
    check(pubBig.ok && pubBig.recipients === 1, `B publishes a ${BIG_PAYLOAD_LEN}-byte payload (${pubBig.size}-byte WakuMessage)`);
    const gotBig = await a.waitEvent((e) => e.event === "message" && e.hash === pubBig.hash, "big message on A");
    check(gotBig.payload === bigHex, `A receives the ${BIG_PAYLOAD_LEN}-byte payload intact`);

    // Big payload A -> B
    big[0] ^= 0xff;
    const bigHex2 = big.toString("hex");
    const pubBig2 = await a.cmd({ cmd: "publish", topic: TOPIC, contentTopic: CONTENT_TOPIC, payload: bigHex2, timestamp: TIMESTAMP });
    check(pubBig2.ok && pubBig2.recipients === 1, "A publishes a big payload");
    const gotBig2 = await b.waitEvent((e) => e.event === "message" && e.hash === pubBig2.hash, "big message on B");
    check(gotBig2.payload === bigHex2, "B receives it intact");

    // Invalid data is rejected by the receiver's js-waku validator.
    const raw = await a.cmd({ cmd: "publishRaw", topic: TOPIC, data: "deadbeef" });
    check(raw.ok && raw.recipients === 1, "A publishRaw garbage");
    const rej = await b.waitEvent((e) => e.event === "rejected" && e.data === "deadbeef", "rejection of garbage on B");
    check(rej.from === readyA.peerId, `B rejects undecodable data (${rej.reason})`);
    const emptyPayload = await a.cmd({ cmd: "publish", topic: TOPIC, contentTopic: CONTENT_TOPIC, payload: "", timestamp: TIMESTAMP });
    check(emptyPayload.ok, "A publishes an empty-payload message");
    const rej2 = await b.waitEvent((e) => e.event === "rejected" && /empty/.test(e.reason), "rejection of empty payload on B");
    check(rej2.from === readyA.peerId, "B rejects the empty payload");

    // A third peer C dials B; B forwards C's messages to A.
    const c = new Peer("C");
    try {
      const readyC = await c.waitEvent((e) => e.event === "ready", "ready");
      check((await c.cmd({ cmd: "dial", addr: readyB.addrs[0] })).ok, "C dials B");
      check((await c.cmd({ cmd: "subscribe", topic: TOPIC })).ok, "C subscribes");
      const mc = await waitMesh(b, readyC.peerId);
      check(mc !== null, `B has C as mesh peer (${mc} ms)`);
      const pubC = await c.cmd({ cmd: "publish", topic: TOPIC, contentTopic: CONTENT_TOPIC, payload: "0a0b0c", timestamp: TIMESTAMP });
      check(pubC.ok, "C publishes");
      const viaB = await a.waitEvent((e) => e.event === "message" && e.hash === pubC.hash, "C's message forwarded by B to A");
      check(viaB.payload === "0a0b0c", "B forwards C's message to A");
      const stopC = await c.cmd({ cmd: "stop" });
      check(stopC.ok, "C stop answered");
      const [codeC] = await c.exited;
      check(codeC === 0, `C exits 0 on stop (${codeC})`);
      await b.waitEvent((e) => e.event === "peer:disconnect" && e.peerId === readyC.peerId, "peer:disconnect C on B");
      check(true, "B sees peer:disconnect for C");
    } finally {
      if (c.proc.exitCode === null) c.proc.kill("SIGKILL");
    }

    // Shutdown paths: A by stdin EOF, B by SIGTERM.
    a.proc.stdin.end();
    const [codeA] = await a.exited;
    check(codeA === 0, `A exits 0 on stdin EOF (${codeA})`);
    b.proc.kill("SIGTERM");
    const [codeB] = await b.exited;
    check(codeB === 0, `B exits 0 on SIGTERM (${codeB})`);
  } catch (e) {
    failed++;
    console.log(`FAIL - ${e?.stack ?? e}`);
  } finally {
    for (const p of [a, b]) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill("SIGKILL");
  }
  console.log(`total ${Date.now() - t0} ms`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

await main();
