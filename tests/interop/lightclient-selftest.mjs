// Self-test of light-client.mjs, without a murmur node.
//
// Part 1: the light client alone and against a relay-peer.mjs (which serves
// no lightpush, filter or store): it starts, answers, fails cleanly.
// Part 2: against a small in-process FAKE service node (lightpush v3, filter
// v2, store v3, metadata; written below from the specs, test-only): the
// client's lightpush, filter and store commands work end to end, and the
// requests js-waku sends are recorded (pagination, final empty page, ...).
//
// Run with `node lightclient-selftest.mjs` (or `npm run selftest:light`).
// Prints `N passed, N failed`; exit code 0 only if all passed. VERBOSE=1
// shows the children's stderr and every line.
import "./polyfill.mjs";

import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

import { noise } from "@chainsafe/libp2p-noise";
import { identify } from "@libp2p/identify";
import { mplex } from "@libp2p/mplex";
import { webSockets } from "@libp2p/websockets";
import { all as filterAll } from "@libp2p/websockets/filters";
import { messageHash } from "@waku/message-hash";
import { proto_filter_v2, proto_lightpush, proto_metadata, proto_store } from "@waku/proto";
import { createLibp2p } from "libp2p";

const LIGHT_CLIENT = fileURLToPath(new URL("./light-client.mjs", import.meta.url));
const RELAY_PEER = fileURLToPath(new URL("./relay-peer.mjs", import.meta.url));
const TOPIC = "/waku/2/rs/1/4";
const CONTENT_TOPIC = "/test/1/hash/proto";
const TIMESTAMP = "1700000000000000000";
const EXPECTED_HASH = "bfd57923726173c6af604c44d06be2927922c30985e80fa5337162f27327317e";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const toHex = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");

// ------------------------------------------------------- child processes ---

class Proc {
  constructor(name, script, args) {
    this.name = name;
    this.nextId = 1;
    this.pending = new Map();
    this.events = [];
    this.waiters = [];
    this.badLines = [];
    this.orphans = []; // answers with "id": null
    this.proc = spawn(process.execPath, [script, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    this.exited = once(this.proc, "exit");
    this.proc.stderr.on("data", (d) => {
      if (process.env.VERBOSE) process.stderr.write(`[${name} stderr] ${d}`);
    });
    createInterface({ input: this.proc.stdout }).on("line", (line) => this.onLine(line));
  }

  onLine(line) {
    if (process.env.VERBOSE) console.log(`${this.name} <- ${line}`);
    let obj;
    try {
      obj = JSON.parse(line);
    } catch {
      this.badLines.push(line);
      return;
    }
    if (obj.event !== undefined) {
      this.events.push(obj);
      for (const w of [...this.waiters]) {
        if (w.pred(obj)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(obj);
        }
      }
    } else if (obj.id === null) {
      this.orphans.push(obj);
    } else if (this.pending.has(obj.id)) {
      this.pending.get(obj.id)(obj);
      this.pending.delete(obj.id);
    } else {
      this.badLines.push(line);
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

  // Raw line, for protocol-level checks.
  send(line) {
    this.proc.stdin.write(line + "\n");
  }

  cmd(obj, timeoutMs = 20_000) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, resolve);
      this.send(JSON.stringify({ id, ...obj }));
      setTimeout(() => {
        if (this.pending.delete(id)) reject(new Error(`${this.name}: no answer to ${obj.cmd}`));
      }, timeoutMs).unref();
    });
  }

  alive() {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }
}

const lightClient = (name) => new Proc(name, LIGHT_CLIENT, ["--cluster", "1", "--num-shards", "8"]);

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

// ------------------------------------------------- fake service node -------
// Test-only stand-in for a Waku service node, so the client's commands can be
// exercised end to end. Protocol behaviour follows shared/specs/waku-wire.md
// §4–§7 in the simplest form; it is NOT a reference for murmur.

const CODEC = {
  lightpush: "/vac/waku/lightpush/3.0.0",
  filterSubscribe: "/vac/waku/filter-subscribe/2.0.0-beta1",
  filterPush: "/vac/waku/filter-push/2.0.0-beta1",
  store: "/vac/waku/store-query/3.0.0",
  metadata: "/vac/waku/metadata/1.0.0"
};

function concatBytes(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function lpEncode(bytes) {
  const prefix = [];
  let n = bytes.length;
  while (n >= 0x80) {
    prefix.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  prefix.push(n);
  return concatBytes(Uint8Array.from(prefix), bytes);
}

// One request/response exchange on an inbound stream: read one
// unsigned-varint length-prefixed frame, write one, then wait for the remote
// to close its side before closing ours. (Closing early makes mplex drop the
// stream; the remote's late CLOSE then counts as a message for a missing
// stream, and more than 5 of those a second make mplex abort the connection.)
class Exchange {
  constructor(stream) {
    this.stream = stream;
    this.it = stream.source[Symbol.asyncIterator]();
    this.buf = new Uint8Array(0);
  }

  // The first frame, or null on EOF before one.
  async read() {
    for (;;) {
      let len = 0;
      let shift = 0;
      let i = 0;
      let complete = false;
      for (; i < this.buf.length; i++) {
        len += (this.buf[i] & 0x7f) * 2 ** shift;
        shift += 7;
        if ((this.buf[i] & 0x80) === 0) {
          complete = true;
          i++;
          break;
        }
      }
      if (complete && this.buf.length - i >= len) {
        const frame = this.buf.subarray(i, i + len);
        this.buf = this.buf.subarray(i + len);
        return frame;
      }
      const { value, done } = await this.it.next();
      if (done) return null;
      this.buf = concatBytes(this.buf, value.subarray());
    }
  }

  async respond(bytes) {
    await this.stream.sink([lpEncode(bytes)]);
    const drain = (async () => {
      while (!(await this.it.next()).done) {
        // ignore anything after the request
      }
    })();
    await Promise.race([drain, sleep(5000)]);
    await this.stream.close().catch(() => {});
  }
}

const cmpBig = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

class FakeService {
  constructor() {
    this.requests = { lightpush: [], filter: [], store: [], metadata: [] };
    this.stored = []; // { hash, hashHex, message, pubsubTopic }
    this.subscriptions = new Map(); // peerId -> Set of "pubsub|contentTopic"
    this.pushed = [];
  }

  async start() {
    this.node = await createLibp2p({
      addresses: { listen: ["/ip4/127.0.0.1/tcp/0/ws"] },
      transports: [webSockets({ filter: filterAll })],
      streamMuxers: [mplex()],
      connectionEncrypters: [noise()],
      services: { identify: identify({ agentVersion: "fake-service" }) },
      start: false
    });
    const serve = (codec, fn) =>
      this.node.handle(codec, ({ stream, connection }) => {
        fn(stream, connection).catch((e) => console.error(`fake ${codec}: ${e?.stack ?? e}`));
      }, { maxInboundStreams: 64 });
    await serve(CODEC.lightpush, (s, c) => this.onLightpush(s, c));
    await serve(CODEC.filterSubscribe, (s, c) => this.onFilter(s, c));
    await serve(CODEC.store, (s) => this.onStore(s));
    await serve(CODEC.metadata, (s) => this.onMetadata(s));
    await this.node.start();
    this.addr = this.node.getMultiaddrs()[0].toString();
    this.peerId = this.node.peerId.toString();
  }

  async stop() {
    await this.node.stop();
  }

  add(pubsubTopic, message) {
    const hash = messageHash(pubsubTopic, message);
    const entry = { hash, hashHex: toHex(hash), message, pubsubTopic };
    if (!this.stored.some((e) => e.hashHex === entry.hashHex)) this.stored.push(entry);
    return entry;
  }

  async onMetadata(stream) {
    const ex = new Exchange(stream);
    const frame = await ex.read();
    if (!frame) return;
    this.requests.metadata.push(proto_metadata.WakuMetadataRequest.decode(frame));
    await ex.respond(proto_metadata.WakuMetadataResponse.encode({ clusterId: 1, shards: [0, 1, 2, 3, 4, 5, 6, 7] }));
  }

  async onLightpush(stream, connection) {
    const ex = new Exchange(stream);
    const frame = await ex.read();
    if (!frame) return; // js-waku pre-opens streams and may close them unused
    const req = proto_lightpush.LightPushRequestV3.decode(frame);
    this.requests.lightpush.push({ from: connection.remotePeer.toString(), req });
    const msg = req.message;
    let statusCode = 200;
    let statusDesc = "OK";
    if (!msg || !req.pubsubTopic) {
      statusCode = 400;
      statusDesc = "missing message or pubsub topic";
    } else if (msg.contentTopic.includes("/reject/")) {
      statusCode = 505;
      statusDesc = "No peers to relay";
    }
    await ex.respond(proto_lightpush.LightPushResponseV3.encode({
      requestId: req.requestId,
      statusCode,
      statusDesc,
      relayPeerCount: statusCode === 200 ? 1 : undefined
    }));
    if (statusCode === 200) {
      this.add(req.pubsubTopic, msg);
      await this.pushToSubscribers(req.pubsubTopic, msg);
    }
  }

  async pushToSubscribers(pubsubTopic, msg) {
    for (const [peer, subs] of this.subscriptions) {
      if (!subs.has(`${pubsubTopic}|${msg.contentTopic}`)) continue;
      const conn = this.node.getConnections().find((c) => c.remotePeer.toString() === peer);
      if (!conn) continue;
      const stream = await conn.newStream(CODEC.filterPush);
      // A push is one-way: write the frame, close.
      await stream.sink([lpEncode(proto_filter_v2.MessagePush.encode({ wakuMessage: msg, pubsubTopic }))]);
      await stream.close().catch(() => {});
      this.pushed.push({ peer, pubsubTopic, contentTopic: msg.contentTopic });
    }
  }

  async onFilter(stream, connection) {
    const ex = new Exchange(stream);
    const frame = await ex.read();
    if (!frame) return;
    const req = proto_filter_v2.FilterSubscribeRequest.decode(frame);
    const peer = connection.remotePeer.toString();
    this.requests.filter.push({ from: peer, req });
    const T = proto_filter_v2.FilterSubscribeRequest.FilterSubscribeType;
    const subs = this.subscriptions.get(peer) ?? new Set();
    let statusCode = 200;
    if (req.filterSubscribeType === T.SUBSCRIBE || req.filterSubscribeType === T.UNSUBSCRIBE) {
      if (!req.pubsubTopic || req.contentTopics.length === 0) statusCode = 400;
      else if (req.filterSubscribeType === T.SUBSCRIBE) {
        for (const ct of req.contentTopics) subs.add(`${req.pubsubTopic}|${ct}`);
      } else {
        for (const ct of req.contentTopics) subs.delete(`${req.pubsubTopic}|${ct}`);
      }
    } else if (req.filterSubscribeType === T.UNSUBSCRIBE_ALL) {
      subs.clear();
    } else if (subs.size === 0) {
      statusCode = 404; // ping without a subscription
    }
    this.subscriptions.set(peer, subs);
    // js-waku never reads the answer to UNSUBSCRIBE: ignore write errors.
    await ex.respond(proto_filter_v2.FilterSubscribeResponse.encode({
      requestId: req.requestId,
      statusCode,
      statusDesc: statusCode === 200 ? "OK" : "error"
    })).catch(() => {});
  }

  async onStore(stream) {
    const ex = new Exchange(stream);
    const frame = await ex.read();
    if (!frame) return;
    const req = proto_store.StoreQueryRequest.decode(frame);
    this.requests.store.push(req);
    let matches;
    if (req.messageHashes.length > 0) {
      const wanted = new Set(req.messageHashes.map(toHex));
      matches = this.stored.filter((e) => wanted.has(e.hashHex));
    } else {
      matches = this.stored.filter((e) =>
        (!req.pubsubTopic || e.pubsubTopic === req.pubsubTopic) &&
        (req.contentTopics.length === 0 || req.contentTopics.includes(e.message.contentTopic)) &&
        (req.timeStart === undefined || e.message.timestamp >= req.timeStart) &&
        (req.timeEnd === undefined || e.message.timestamp < req.timeEnd));
    }
    matches.sort((a, b) => cmpBig(a.message.timestamp ?? 0n, b.message.timestamp ?? 0n) || (a.hashHex < b.hashHex ? -1 : a.hashHex > b.hashHex ? 1 : 0));
    const forward = req.paginationForward;
    if (req.paginationCursor) {
      const at = matches.findIndex((e) => e.hashHex === toHex(req.paginationCursor));
      if (at >= 0) matches = forward ? matches.slice(at + 1) : matches.slice(0, at);
    }
    const limit = Math.min(Number(req.paginationLimit ?? 20n), 100);
    const page = forward ? matches.slice(0, limit) : matches.slice(Math.max(0, matches.length - limit));
    const more = matches.length > page.length;
    await ex.respond(proto_store.StoreQueryResponse.encode({
      requestId: req.requestId,
      statusCode: 200,
      statusDesc: "OK",
      messages: page.map((e) => (req.includeData
        ? { messageHash: e.hash, message: e.message, pubsubTopic: e.pubsubTopic }
        : { messageHash: e.hash })),
      paginationCursor: more ? (forward ? page[page.length - 1].hash : page[0].hash) : undefined
    }));
  }
}

// ------------------------------------------------------------------ test ---

async function main() {
  const t0 = Date.now();
  const procs = [];
  const fake = new FakeService();
  try {
    const relay = new Proc("relay", RELAY_PEER, ["--cluster", "1", "--shards", "0,1,2,3,4,5,6,7"]);
    const lc = lightClient("L1");
    procs.push(relay, lc);
    const readyRelay = await relay.waitEvent((e) => e.event === "ready", "relay ready");
    const ready = await lc.waitEvent((e) => e.event === "ready", "light client ready");
    console.log(`light client ready after ${Date.now() - t0} ms: ${JSON.stringify(ready)}`);
    check(/^12D3Koo/.test(ready.peerId) && ready.cluster === 1 && ready.numShards === 8, "ready line has peerId, cluster 1, numShards 8");

    // ---- protocol basics
    lc.send("this is not json");
    await sleep(200);
    check(lc.orphans.some((o) => o.ok === false && /bad JSON/.test(o.error)), "a line that is not JSON -> {id:null, ok:false}");
    const unknown = await lc.cmd({ cmd: "nope" });
    check(unknown.ok === false && /unknown cmd/.test(unknown.error), "unknown command -> ok:false");
    const route = await lc.cmd({ cmd: "route", contentTopic: CONTENT_TOPIC });
    check(route.ok && route.pubsubTopic === TOPIC && route.shard === 4, `autosharding puts ${CONTENT_TOPIC} on ${route.pubsubTopic}`);

    // ---- no service peer at all
    const lpNone = await lc.cmd({ cmd: "lightpush", contentTopic: CONTENT_TOPIC, payload: "010203", timestamp: TIMESTAMP });
    console.log(`lightpush without peers: ${JSON.stringify(lpNone)}`);
    check(lpNone.ok === false && /No peer available/.test(lpNone.error) && lpNone.successes.length === 0,
      "lightpush with no service peer -> ok:false, 'No peer available'");
    check(lpNone.hash === EXPECTED_HASH && lpNone.pubsubTopic === TOPIC, "lightpush hash = js-waku vector on /waku/2/rs/1/4");
    const subNone = await lc.cmd({ cmd: "subscribe", contentTopic: CONTENT_TOPIC });
    check(subNone.ok === false, `subscribe with no filter peer -> ok:false (${subNone.error})`);
    const sqNone = await lc.cmd({ cmd: "storeQuery", contentTopic: CONTENT_TOPIC });
    check(sqNone.ok === false && /No peers available/.test(sqNone.error), `storeQuery with no store peer -> ok:false (${sqNone.error})`);
    const shNoCt = await lc.cmd({ cmd: "storeHashes", hashes: [EXPECTED_HASH] });
    check(shNoCt.ok === false && /contentTopic/.test(shNoCt.error), "storeHashes without a content topic -> ok:false");
    let t = Date.now();
    const wNone = await lc.cmd({ cmd: "waitForProtocols", protocols: ["lightpush"], timeoutMs: 1000 });
    check(wNone.ok === false && Date.now() - t >= 900, `waitForProtocols with no peers times out (${Date.now() - t} ms: ${wNone.error})`);
    const peers0 = await lc.cmd({ cmd: "peers" });
    check(peers0.ok && peers0.peers.length === 0, "no connections of its own (no bootstrap / discovery)");

    // ---- relay peer: no lightpush / filter / store
    const badDial = await lc.cmd({ cmd: "dial", addr: `/ip4/127.0.0.1/tcp/1/ws/p2p/${readyRelay.peerId}` });
    check(badDial.ok === false, `dial to a closed port fails cleanly (${badDial.error})`);
    const dialRelay = await lc.cmd({ cmd: "dial", addr: readyRelay.addrs[0] });
    console.log(`dial relay peer: ${JSON.stringify(dialRelay)}`);
    check(dialRelay.ok && dialRelay.peerId === readyRelay.peerId && dialRelay.protocols.includes("/vac/waku/relay/2.0.0"),
      "dial a relay-peer over plain /ws: ok with its identify protocols");
    await relay.waitEvent((e) => e.event === "peer:connect" && e.peerId === ready.peerId, "relay sees the light client");
    check(true, "the relay peer sees peer:connect");
    t = Date.now();
    const wRelay = await lc.cmd({ cmd: "waitForProtocols", protocols: ["lightpush", "filter", "store"], timeoutMs: 1500 });
    const took = Date.now() - t;
    console.log(`waitForProtocols vs relay peer: ${JSON.stringify(wRelay)} after ${took} ms`);
    check(wRelay.ok === false && took >= 1400 && took < 5000 && /lightpush, filter, store/.test(wRelay.error),
      "waitForProtocols against a relay-only peer times out cleanly with ok:false");
    const lpRelay = await lc.cmd({ cmd: "lightpush", contentTopic: CONTENT_TOPIC, payload: "010203", timestamp: TIMESTAMP });
    check(lpRelay.ok === false && /No peer available/.test(lpRelay.error), "lightpush with only a relay peer -> ok:false 'No peer available'");

    // ---- fake service node
    await fake.start();
    const dialFake = await lc.cmd({ cmd: "dial", addr: fake.addr });
    console.log(`dial fake service: ${JSON.stringify(dialFake)}`);
    check(dialFake.ok && [CODEC.lightpush, CODEC.filterSubscribe, CODEC.store].every((p) => dialFake.protocols.includes(p)),
      "dial the fake service: identify lists lightpush v3, filter, store");
    const wFake = await lc.cmd({ cmd: "waitForProtocols", protocols: ["lightpush", "filter", "store"], contentTopic: CONTENT_TOPIC, timeoutMs: 5000 });
    console.log(`waitForProtocols vs fake: ${JSON.stringify(wFake)}`);
    check(wFake.ok && ["lightpush", "filter", "store"].every((p) => wFake.peers[p].length === 1 && wFake.peers[p][0] === fake.peerId),
      "waitForProtocols -> ok, the fake service for each protocol");
    check(fake.requests.metadata.length >= 1 && fake.requests.metadata[0].clusterId === 1,
      `the SDK did the metadata handshake (cluster ${fake.requests.metadata[0]?.clusterId}, shards ${JSON.stringify(fake.requests.metadata[0]?.shards)})`);

    // filter + lightpush
    const sub = await lc.cmd({ cmd: "subscribe", contentTopic: CONTENT_TOPIC });
    check(sub.ok && sub.pubsubTopic === TOPIC, "filter subscribe -> ok");
    const fsub = fake.requests.filter.find((r) => r.req.filterSubscribeType === "SUBSCRIBE");
    check(fsub && fsub.req.pubsubTopic === TOPIC && fsub.req.contentTopics.join() === CONTENT_TOPIC,
      "the service got SUBSCRIBE with pubsub_topic and the content topic");
    const lp = await lc.cmd({ cmd: "lightpush", contentTopic: CONTENT_TOPIC, payload: "010203", timestamp: TIMESTAMP });
    console.log(`lightpush: ${JSON.stringify(lp)}`);
    check(lp.ok && lp.successes.length === 1 && lp.successes[0] === fake.peerId && lp.failures.length === 0 && lp.hash === EXPECTED_HASH,
      "lightpush -> ok, success from the service, hash = vector");
    const lreq = fake.requests.lightpush.at(-1).req;
    check(lreq.pubsubTopic === TOPIC && lreq.message.timestamp === BigInt(TIMESTAMP) && lreq.message.version === 0 && toHex(lreq.message.payload) === "010203",
      "the service got pubsub_topic, the exact timestamp, version 0, the payload");
    const fev = await lc.waitEvent((e) => e.event === "filter" && e.hash === EXPECTED_HASH, "filter push");
    console.log(`filter event: ${JSON.stringify(fev)}`);
    check(fev.contentTopic === CONTENT_TOPIC && fev.payload === "010203" && fev.timestamp === TIMESTAMP && fev.pubsubTopic === TOPIC,
      "filter event with equal fields and hash");
    const nsTs = "1700000000000000123";
    const lpNs = await lc.cmd({ cmd: "lightpush", contentTopic: CONTENT_TOPIC, payload: "0405", timestamp: nsTs });
    const nsEntry = fake.stored.find((e) => e.hashHex === lpNs.hash);
    check(lpNs.ok && lpNs.timestamp === nsTs && fake.requests.lightpush.at(-1).req.message.timestamp === BigInt(nsTs) && nsEntry,
      "a non-millisecond timestamp is sent exactly and hashed the same on both sides");
    const lpRej = await lc.cmd({ cmd: "lightpush", contentTopic: "/test/1/reject/proto", payload: "01" });
    console.log(`lightpush rejected: ${JSON.stringify(lpRej)}`);
    check(lpRej.ok === false && lpRej.failures.length === 1 && lpRej.failures[0].peerId === fake.peerId && /Remote peer rejected/.test(lpRej.failures[0].error),
      "a 505 answer -> ok:false, failure 'Remote peer rejected' from the service");
    const nLp = fake.requests.lightpush.length;
    const lpEmpty = await lc.cmd({ cmd: "lightpush", contentTopic: CONTENT_TOPIC, payload: "" });
    check(lpEmpty.ok === false && /Payload is empty/.test(lpEmpty.error) && fake.requests.lightpush.length === nLp,
      "an empty payload is refused locally by js-waku, nothing sent");
    await sleep(1500);
    check(fake.requests.lightpush.length === nLp, "no automatic retries of failed pushes");

    // store
    const STORE_CT = "/test/1/store/proto";
    const base = 1_700_000_100_000n; // ms
    for (let i = 0; i < 45; i++) {
      fake.add(TOPIC, { payload: Uint8Array.of(i), contentTopic: STORE_CT, version: 0, timestamp: (base + BigInt(i)) * 1_000_000n, ephemeral: false });
    }
    let nStore = fake.requests.store.length;
    const sq = await lc.cmd({ cmd: "storeQuery", contentTopic: STORE_CT, pageSize: 20 });
    const sqReqs = fake.requests.store.slice(nStore);
    console.log(`storeQuery forward pageSize 20: ${sq.messages?.length} messages, pages ${JSON.stringify(sq.pages)}, ${sqReqs.length} requests`);
    check(sq.ok && sq.messages.length === 45 && sq.messages.every((m, i) => m.payload === i.toString(16).padStart(2, "0")),
      "storeQuery collects all 45 messages, forward order");
    check(JSON.stringify(sq.pages) === "[20,20,5]" && sqReqs.length === 4 && !sqReqs[0].paginationCursor,
      "3 pages + 1 final query (4 requests), first without a cursor");
    check(toHex(sqReqs[3].paginationCursor) === sq.messages[44].hash && sqReqs.every((r) => r.paginationLimit === 20n && r.paginationForward && r.includeData && r.pubsubTopic === TOPIC),
      "the final query's cursor is the last message's hash; every request: limit 20, forward, include_data, pubsub_topic");
    check(sq.messages.every((m) => fake.stored.some((e) => e.hashHex === m.hash)), "store results' hashes match the service's");

    nStore = fake.requests.store.length;
    const sqb = await lc.cmd({ cmd: "storeQuery", contentTopic: STORE_CT, pageSize: 20, direction: "backward" });
    const payloads = sqb.messages?.map((m) => parseInt(m.payload, 16));
    console.log(`storeQuery backward: pages ${JSON.stringify(sqb.pages)}, payload order ${JSON.stringify(payloads)}`);
    const expectBack = [...Array(20).keys()].map((i) => i + 25).concat([...Array(20).keys()].map((i) => i + 5), [0, 1, 2, 3, 4]);
    check(sqb.ok && JSON.stringify(payloads) === JSON.stringify(expectBack) && fake.requests.store.slice(nStore).every((r) => !r.paginationForward),
      "backward: pages newest first, each page in ascending order, as yielded");

    nStore = fake.requests.store.length;
    const sqd = await lc.cmd({ cmd: "storeQuery", contentTopic: STORE_CT });
    const dReq = fake.requests.store.slice(nStore);
    check(sqd.ok && sqd.messages.length === 45 && dReq[0].paginationLimit === undefined && dReq[0].paginationForward === true,
      "no pageSize/direction: no pagination_limit sent, forward");

    nStore = fake.requests.store.length;
    // js-waku computes BigInt(ms * 1_000_000) in float64: for current epochs
    // the ns bounds are off by up to ~128 ns (here start -128 ns, end +64 ns,
    // so the message exactly at timeEnd is returned too).
    const tsStart = base + 10n;
    const tsEnd = base + 15n;
    const sqt = await lc.cmd({ cmd: "storeQuery", contentTopic: STORE_CT, timeStart: String(tsStart), timeEnd: String(tsEnd) });
    const tReq = fake.requests.store[nStore];
    console.log(`storeQuery time range [${tsStart}, ${tsEnd}) ms: ${sqt.messages?.length} messages; sent time_start ${tReq?.timeStart} time_end ${tReq?.timeEnd}`);
    check(sqt.ok && tReq.timeStart === BigInt(Number(tsStart) * 1_000_000) && tReq.timeEnd === BigInt(Number(tsEnd) * 1_000_000),
      "timeStart/timeEnd (ms) go out as js-waku's BigInt(ms * 1e6), computed in float64");
    check(tReq.timeStart !== tsStart * 1_000_000n && tReq.timeEnd !== tsEnd * 1_000_000n,
      "...which is NOT exactly ms * 10^6 ns (SDK rounding; see README)");
    check(sqt.ok && JSON.stringify(sqt.messages.map((m) => parseInt(m.payload, 16))) === "[10,11,12,13,14,15]",
      "so [base+10, base+15) ms returns messages 10..15, including the one exactly at timeEnd");

    nStore = fake.requests.store.length;
    const want = [sq.messages[3].hash, "ab".repeat(32)];
    const sh = await lc.cmd({ cmd: "storeHashes", contentTopic: STORE_CT, hashes: want });
    const hReq = fake.requests.store.slice(nStore);
    console.log(`storeHashes: ${JSON.stringify(sh)}; ${hReq.length} requests`);
    check(sh.ok && sh.messages.length === 1 && sh.messages[0].hash === want[0], "storeHashes finds the stored message only");
    check(hReq[0].messageHashes.length === 2 && hReq[0].contentTopics.length === 0 && hReq[0].pubsubTopic === TOPIC && hReq[0].timeStart === undefined,
      "hash lookup sent with message_hashes, no content topics or time, but WITH pubsub_topic");
    check(hReq.length === 2 && toHex(hReq[1].paginationCursor) === want[0], "hash lookup also pages on: a second query with cursor = last hash");

    // unsubscribe
    const unsub = await lc.cmd({ cmd: "unsubscribe", contentTopic: CONTENT_TOPIC });
    check(unsub.ok, "filter unsubscribe -> ok");
    await sleep(300);
    check(fake.requests.filter.some((r) => r.req.filterSubscribeType === "UNSUBSCRIBE" && r.req.contentTopics.join() === CONTENT_TOPIC),
      "the service got UNSUBSCRIBE for the content topic");
    const lpAfter = await lc.cmd({ cmd: "lightpush", contentTopic: CONTENT_TOPIC, payload: "0909" });
    await sleep(1000);
    check(lpAfter.ok && !lc.events.some((e) => e.event === "filter" && e.hash === lpAfter.hash), "no filter event after unsubscribe");
    const unsub2 = await lc.cmd({ cmd: "unsubscribe", contentTopic: CONTENT_TOPIC });
    check(unsub2.ok === false, "unsubscribe when not subscribed -> ok:false");

    // ---- ways of stopping
    const stop = await lc.cmd({ cmd: "stop" });
    check(stop.ok, "stop answered");
    const [code1] = await lc.exited;
    check(code1 === 0, `exits 0 on stop (${code1})`);

    const l2 = lightClient("L2");
    const l3 = lightClient("L3");
    procs.push(l2, l3);
    await l2.waitEvent((e) => e.event === "ready", "L2 ready");
    await l3.waitEvent((e) => e.event === "ready", "L3 ready");
    l2.proc.stdin.end();
    const [code2] = await l2.exited;
    check(code2 === 0, `exits 0 on stdin EOF (${code2})`);
    l3.proc.kill("SIGTERM");
    const [code3] = await l3.exited;
    check(code3 === 0, `exits 0 on SIGTERM (${code3})`);
    check(procs.every((p) => p.badLines.length === 0), "no stray stdout lines from any process");

    relay.proc.stdin.end();
    await relay.exited;
  } catch (e) {
    failed++;
    console.log(`FAIL - ${e?.stack ?? e}`);
  } finally {
    for (const p of procs) if (p.alive()) p.proc.kill("SIGKILL");
    await fake.node?.stop().catch(() => {});
  }
  console.log(`total ${Date.now() - t0} ms`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

await main();
