// A js-waku LIGHT client for murmur's interop tests, driven by JSON lines.
//
// Built with the pinned @waku/sdk 0.0.36 `createLightNode` and driven only
// through the SDK's own protocol APIs: `waku.lightPush.send`,
// `waku.filter.subscribe` / `unsubscribe`, `waku.store.queryGenerator` and
// `waku.waitForPeers` (waitForRemotePeer). No protobuf is written by hand.
//
//   node light-client.mjs --cluster 1 --num-shards 8
//
// stdout carries ONLY JSON lines (see README.md); all logging goes to stderr
// (`DEBUG=waku:*` shows the SDK's own logs).
import "./polyfill.mjs";

import { createInterface } from "node:readline";

import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr } from "@multiformats/multiaddr";
import { messageHash } from "@waku/message-hash";
import { createLightNode, Protocols, ReliableChannel } from "@waku/sdk";

// ---------------------------------------------------------------- output ---

// Nothing but our JSON lines may reach stdout: send stray console output to stderr.
for (const name of ["log", "info", "debug", "warn", "trace"]) {
  console[name] = (...args) => console.error(...args);
}

let stopping = false;

function emit(obj) {
  // Once stopping, the answer to "stop" is the last line: no more events.
  if (stopping && obj.event !== undefined) return;
  // process.stdout is synchronous for pipes and files on Linux.
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function logErr(...args) {
  process.stderr.write(`[light-client ${process.pid}] ${args.join(" ")}\n`);
}

const toHex = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");

function fromHex(hex, what) {
  if (typeof hex !== "string" || !/^([0-9a-fA-F]{2})*$/.test(hex)) {
    throw new Error(`${what} must be an even-length hex string`);
  }
  return new Uint8Array(Buffer.from(hex, "hex"));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ args ---

function parseArgs(argv) {
  const opts = { cluster: 1, numShards: 8 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === "--cluster") {
      opts.cluster = Number.parseInt(v, 10);
      i++;
    } else if (a === "--num-shards") {
      opts.numShards = Number.parseInt(v, 10);
      i++;
    } else {
      throw new Error(`unknown argument ${a}`);
    }
  }
  if (!Number.isInteger(opts.cluster) || opts.cluster < 0 || opts.cluster > 65535) {
    throw new Error("--cluster must be an integer 0..65535");
  }
  if (!Number.isInteger(opts.numShards) || opts.numShards < 1 || opts.numShards > 1024) {
    throw new Error("--num-shards must be an integer 1..1024");
  }
  return opts;
}

// ------------------------------------------------------------------ node ---

const opts = parseArgs(process.argv.slice(2));

const waku = await createLightNode({
  // Autosharding: content topic -> /waku/2/rs/<cluster>/<shard>.
  networkConfig: { clusterId: opts.cluster, numShardsInCluster: opts.numShards },
  // Never bootstrap from the internet: no default bootstrap (DNS / peer
  // exchange / peer cache), each discovery method off, no bootstrap list.
  defaultBootstrap: false,
  discovery: { dns: false, peerExchange: false, peerCache: false },
  bootstrapPeers: [],
  libp2p: {
    // Plain /ws is dialable (the SDK's default filter allows only /wss).
    filterMultiaddrs: false,
    // No "Ignore WebSocket connection failures" banner.
    hideWebSocketInfo: true
  },
  // Attach the listeners below before starting.
  autoStart: false
});

waku.libp2p.addEventListener("peer:connect", (evt) => {
  emit({ event: "peer:connect", peerId: evt.detail.toString() });
});
waku.libp2p.addEventListener("peer:disconnect", (evt) => {
  emit({ event: "peer:disconnect", peerId: evt.detail.toString() });
});

await waku.start();

emit({
  event: "ready",
  peerId: waku.peerId.toString(),
  addrs: waku.libp2p.getMultiaddrs().map((ma) => ma.toString()),
  cluster: opts.cluster,
  numShards: opts.numShards
});

// --------------------------------------------------------------- helpers ---

const PROTOCOL_NAMES = {
  lightpush: Protocols.LightPush,
  filter: Protocols.Filter,
  store: Protocols.Store
};

function parseProtocols(list) {
  if (!Array.isArray(list) || list.length === 0) {
    throw new Error('protocols must be a non-empty array of "lightpush", "filter", "store"');
  }
  return list.map((p) => {
    if (!Object.hasOwn(PROTOCOL_NAMES, p)) throw new Error(`unknown protocol ${JSON.stringify(p)}`);
    return PROTOCOL_NAMES[p];
  });
}

function contentTopicsOf(c) {
  const list = c.contentTopics ?? (c.contentTopic !== undefined ? [c.contentTopic] : []);
  if (!Array.isArray(list) || list.length === 0 || list.some((t) => typeof t !== "string")) {
    throw new Error("contentTopic (string) or contentTopics (array of strings) is required");
  }
  return list;
}

function parseNs(value, what) {
  if (!/^[0-9]+$/.test(String(value))) throw new Error(`${what} must be a decimal string of nanoseconds`);
  return BigInt(value);
}

function parseMs(value, what) {
  if (!/^[0-9]+$/.test(String(value))) throw new Error(`${what} must be a decimal number of milliseconds since the epoch`);
  return new Date(Number(value));
}

// The peers the SDK's peer manager would pick for `protocol` (same checks as
// PeerManager.getPeers: connected, identify lists the codec, and on the
// pubsub topic if the peer's shard info is known), without locking them.
async function availablePeers(protocol, pubsubTopic) {
  const out = [];
  for (const peer of await waku.connectionManager.getConnectedPeers()) {
    if (!waku.peerManager.hasPeerProtocol(peer, protocol)) continue;
    if (pubsubTopic && !(await waku.peerManager.isPeerOnPubsub(peer.id, pubsubTopic))) continue;
    out.push(peer.id.toString());
  }
  return out;
}

// A decoded message (filter push or store result) as a JSON object. The hash
// and timestamp come from the raw WakuMessage (`msg.proto`, nanosecond
// bigint), not the DecodedMessage's millisecond Date.
function messageJson(msg) {
  const p = msg.proto;
  return {
    contentTopic: p.contentTopic,
    payload: toHex(p.payload ?? new Uint8Array()),
    timestamp: p.timestamp !== undefined && p.timestamp !== null ? p.timestamp.toString() : null,
    pubsubTopic: msg.pubsubTopic,
    hash: toHex(messageHash(msg.pubsubTopic, p)),
    meta: p.meta !== undefined && p.meta !== null ? toHex(p.meta) : null,
    version: p.version ?? null,
    ephemeral: p.ephemeral ?? null
  };
}

// js-waku's encoder only knows millisecond timestamps (Date). When a test asks
// for a timestamp that is not a whole number of milliseconds, keep the exact
// nanoseconds by overriding toProtoObj on a child of the SDK's encoder (all
// else, including toWire and the pubsub topic, is the SDK's).
function withExactTimestamp(encoder, tsNs) {
  if (tsNs % 1_000_000n === 0n) return encoder;
  const child = Object.create(encoder);
  child.toProtoObj = async (message) => {
    const protoObj = await encoder.toProtoObj(message);
    protoObj.timestamp = tsNs;
    return protoObj;
  };
  return child;
}

// Filter subscriptions: content topic -> the decoder it was subscribed with.
// The SDK keys callbacks by decoder object, so unsubscribe needs the same one.
const filterDecoders = new Map();

async function storeCollect(decoders, options) {
  const messages = [];
  const pages = [];
  let undecoded = 0;
  for await (const page of waku.store.queryGenerator(decoders, options)) {
    const decoded = await Promise.all(page);
    pages.push(page.length);
    for (const m of decoded) {
      if (m) messages.push(messageJson(m));
      else undecoded++;
    }
  }
  return { messages, pages, undecoded };
}

// Reliable channels (SDS) by channel id: the SDK's ReliableChannel, fed by a
// filter subscription and lightpush through the service node, missing
// messages fetched from its store.
const reliableChannels = new Map();

function reliableChannel(c) {
  const channel = reliableChannels.get(c.channelId);
  if (!channel) throw new Error(`no reliable channel ${JSON.stringify(c.channelId)} is open`);
  return channel;
}

// Every event the channel (and its SDS core) reports, as a JSON line.
function reportReliable(channelId, channel) {
  const on = (target, type, detail) =>
    target.addEventListener(type, (e) => emit({ event: `reliable:${type}`, channelId, ...detail(e.detail) }));
  on(channel, "message-received", (m) => ({
    payload: toHex(m.payload),
    hash: toHex(m.hash),
    pubsubTopic: m.pubsubTopic
  }));
  on(channel, "message-sent", (id) => ({ messageId: id }));
  on(channel, "message-acknowledged", (id) => ({ messageId: id }));
  on(channel, "message-possibly-acknowledged", (d) => ({ messageId: d.messageId, count: d.possibleAckCount }));
  on(channel, "sending-message-irrecoverable-error", (d) => ({ messageId: d.messageId, error: String(d.error) }));
  on(channel.messageChannel, "sds:in:message-delivered", (id) => ({ messageId: id }));
  on(channel.messageChannel, "sds:in:message-missing", (missing) => ({
    messageIds: missing.map((m) => m.messageId),
    hints: missing.map((m) => (m.retrievalHint ? toHex(m.retrievalHint) : null))
  }));
}

// -------------------------------------------------------------- commands ---

const handlers = {
  async dial(c) {
    const timeoutMs = c.timeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    const conn = await waku.libp2p.dial(multiaddr(c.addr), { signal: AbortSignal.timeout(timeoutMs) });
    const peerId = conn.remotePeer;
    // Wait for identify: the SDK picks service peers by their identify protocols.
    for (;;) {
      let peer = null;
      try {
        peer = await waku.libp2p.peerStore.get(peerId);
      } catch {
        // not in the peer store yet
      }
      if (peer && peer.protocols.length > 0) {
        const agent = peer.metadata.get("AgentVersion");
        return {
          peerId: peerId.toString(),
          protocols: peer.protocols,
          agentVersion: agent ? Buffer.from(agent).toString() : null
        };
      }
      if (Date.now() >= deadline) {
        throw new Error(`connected to ${peerId}, but identify did not complete within ${timeoutMs} ms`);
      }
      await sleep(20);
    }
  },
  async waitForProtocols(c) {
    const protocols = parseProtocols(c.protocols);
    const timeoutMs = c.timeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    const pubsubTopic = c.contentTopic !== undefined ? waku.createRoutingInfo(c.contentTopic).pubsubTopic : null;
    // The SDK's wait (waitForRemotePeer): waits for identify and does the
    // metadata handshake with matching peers.
    await waku.waitForPeers(protocols, timeoutMs);
    // waitForRemotePeer also resolves as soon as it has checked the existing
    // connections, even when none of them serves the protocols; so check the
    // peer manager's view until the deadline.
    for (;;) {
      const peers = {};
      const missing = [];
      for (const p of protocols) {
        peers[p] = await availablePeers(p, pubsubTopic);
        if (peers[p].length === 0) missing.push(p);
      }
      if (missing.length === 0) return { peers };
      if (Date.now() >= deadline) {
        throw new Error(`Timed out waiting for a remote peer: no connected peer serves ${missing.join(", ")}` +
          (pubsubTopic ? ` on ${pubsubTopic}` : ""));
      }
      await sleep(50);
    }
  },
  async lightpush(c) {
    const [contentTopic] = contentTopicsOf({ contentTopic: c.contentTopic });
    const payload = fromHex(c.payload ?? "", "payload");
    const tsNs = c.timestamp !== undefined && c.timestamp !== null
      ? parseNs(c.timestamp, "timestamp")
      : BigInt(Date.now()) * 1_000_000n;
    const encoder = withExactTimestamp(
      waku.createEncoder({ contentTopic, ephemeral: Boolean(c.ephemeral) }),
      tsNs
    );
    // Always pass the timestamp: without one the encoder takes `new Date()` on
    // each call, so the hash below and each peer's copy could differ.
    const message = { payload, timestamp: new Date(Number(tsNs / 1_000_000n)) };
    const protoObj = await encoder.toProtoObj(message);
    const hash = toHex(messageHash(encoder.pubsubTopic, protoObj));
    // autoRetry off: the SDK's retry manager would resend later (and in 0.0.36
    // it also re-queues successful sends until maxAttempts is used up).
    const res = await waku.lightPush.send(encoder, message, {
      autoRetry: false,
      useLegacy: Boolean(c.useLegacy)
    });
    const successes = res.successes.map(String);
    const failures = res.failures.map((f) => ({ peerId: f.peerId ? f.peerId.toString() : null, error: f.error }));
    const out = {
      successes,
      failures,
      hash,
      pubsubTopic: encoder.pubsubTopic,
      timestamp: protoObj.timestamp.toString()
    };
    if (successes.length === 0) {
      const why = failures.map((f) => (f.peerId ? `${f.peerId}: ${f.error}` : f.error)).join("; ") || "no result";
      return { ok: false, error: `light push failed: ${why}`, ...out };
    }
    return out;
  },
  async subscribe(c) {
    const [contentTopic] = contentTopicsOf({ contentTopic: c.contentTopic });
    if (filterDecoders.has(contentTopic)) {
      // The SDK would send nothing for a known content topic, but would add a
      // second callback (duplicate events).
      return { pubsubTopic: filterDecoders.get(contentTopic).pubsubTopic, alreadySubscribed: true };
    }
    const decoder = waku.createDecoder({ contentTopic });
    const subscribed = await waku.filter.subscribe(decoder, (msg) => {
      if (!msg) return; // the decoder refused it (version != 0)
      emit({ event: "filter", ...messageJson(msg) });
    });
    if (!subscribed) {
      // No filter peer accepted it. Undo the local registration, which the
      // SDK would otherwise keep and send when a filter peer connects.
      await waku.filter.unsubscribe(decoder).catch(() => {});
      throw new Error(`filter subscribe to ${contentTopic} on ${decoder.pubsubTopic} failed: no filter peer available or every peer refused`);
    }
    filterDecoders.set(contentTopic, decoder);
    return { pubsubTopic: decoder.pubsubTopic };
  },
  async unsubscribe(c) {
    const [contentTopic] = contentTopicsOf({ contentTopic: c.contentTopic });
    const decoder = filterDecoders.get(contentTopic);
    if (!decoder) throw new Error(`not subscribed to ${contentTopic}`);
    filterDecoders.delete(contentTopic);
    // js-waku's filter unsubscribe is fire-and-forget: true = the request was
    // written to at least one peer (the response is never read).
    const sent = await waku.filter.unsubscribe(decoder);
    if (!sent) throw new Error(`filter unsubscribe from ${contentTopic}: no request sent (no filter peer in use)`);
    return { pubsubTopic: decoder.pubsubTopic };
  },
  async storeQuery(c) {
    const decoders = contentTopicsOf(c).map((contentTopic) => waku.createDecoder({ contentTopic }));
    // Only set what was asked for: the SDK spreads these over its defaults
    // (includeData true, paginationForward true), so an undefined would win.
    const options = {};
    if (c.timeStart !== undefined && c.timeStart !== null) options.timeStart = parseMs(c.timeStart, "timeStart");
    if (c.timeEnd !== undefined && c.timeEnd !== null) options.timeEnd = parseMs(c.timeEnd, "timeEnd");
    if (c.pageSize !== undefined && c.pageSize !== null) {
      if (!Number.isInteger(c.pageSize) || c.pageSize < 1) throw new Error("pageSize must be a positive integer");
      options.paginationLimit = c.pageSize;
    }
    if (c.direction !== undefined && c.direction !== null) {
      if (c.direction !== "forward" && c.direction !== "backward") throw new Error('direction must be "forward" or "backward"');
      options.paginationForward = c.direction === "forward";
    }
    if (c.peerId) options.peerId = peerIdFromString(c.peerId);
    return { pubsubTopic: decoders[0].pubsubTopic, ...(await storeCollect(decoders, options)) };
  },
  async storeHashes(c) {
    if (!Array.isArray(c.hashes) || c.hashes.length === 0) throw new Error("hashes must be a non-empty array of hex strings");
    const messageHashes = c.hashes.map((h) => fromHex(h, "hash"));
    // js-waku decodes store results only through decoders, one per content
    // topic; the first decoder also gives the pubsub topic it sends.
    let contentTopics;
    try {
      contentTopics = contentTopicsOf(c);
    } catch {
      throw new Error("storeHashes needs contentTopic or contentTopics: js-waku returns only messages it has a decoder (content topic) for");
    }
    const decoders = contentTopics.map((contentTopic) => waku.createDecoder({ contentTopic }));
    const options = { messageHashes };
    if (c.pubsubTopic) options.pubsubTopic = c.pubsubTopic;
    if (c.peerId) options.peerId = peerIdFromString(c.peerId);
    return { pubsubTopic: options.pubsubTopic ?? decoders[0].pubsubTopic, ...(await storeCollect(decoders, options)) };
  },
  async route(c) {
    // Where the SDK's autosharding puts a content topic.
    const ri = waku.createRoutingInfo(c.contentTopic);
    return { pubsubTopic: ri.pubsubTopic, shard: ri.shardId };
  },
  async peers() {
    return { peers: waku.libp2p.getPeers().map(String) };
  },
  async peerProtocols(c) {
    const peer = await waku.libp2p.peerStore.get(peerIdFromString(c.peerId));
    const agent = peer.metadata.get("AgentVersion");
    return { protocols: peer.protocols, agentVersion: agent ? Buffer.from(agent).toString() : null };
  },
  async reliableOpen(c) {
    if (reliableChannels.has(c.channelId)) throw new Error(`reliable channel ${c.channelId} is open already`);
    const [contentTopic] = contentTopicsOf({ contentTopic: c.contentTopic });
    const encoder = waku.createEncoder({ contentTopic });
    const decoder = waku.createDecoder({ contentTopic });
    // Timings are the SDK's options, shortened by the test where it asks.
    const channel = await ReliableChannel.create(waku, c.channelId, c.senderId, encoder, decoder, {
      ...(c.options ?? {}),
      autoStart: false
    });
    reportReliable(c.channelId, channel);
    channel.testDecoder = decoder;
    reliableChannels.set(c.channelId, channel);
    await channel.start();
    return {};
  },
  async reliableSend(c) {
    return { messageId: reliableChannel(c).send(fromHex(c.payload, "payload")) };
  },
  // Stops receiving the channel (the filter subscription goes) while
  // keeping its state: a light client whose subscription lapsed.
  async reliableAway(c) {
    const channel = reliableChannel(c);
    return { unsubscribed: await waku.filter.unsubscribe(channel.testDecoder) };
  },
  // Subscribes again, as the channel does when it starts.
  async reliableBack(c) {
    return { subscribed: await reliableChannel(c).subscribe() };
  },
  async reliableClose(c) {
    reliableChannel(c).stop();
    reliableChannels.delete(c.channelId);
    return {};
  },
  async hangUp(c) {
    await waku.libp2p.hangUp(peerIdFromString(c.peerId));
    return {};
  }
};

async function shutdown(code) {
  if (stopping) return;
  stopping = true;
  const timer = setTimeout(() => process.exit(code), 3000);
  timer.unref();
  try {
    await waku.stop();
  } catch (e) {
    logErr("error stopping the node:", e?.message ?? e);
  }
  process.exit(code);
}

async function handleLine(line) {
  if (!line.trim()) return;
  let c;
  try {
    c = JSON.parse(line);
  } catch (e) {
    emit({ id: null, ok: false, error: `bad JSON: ${e.message}` });
    return;
  }
  const id = c.id ?? null;
  if (c.cmd === "stop") {
    emit({ id, ok: true });
    await shutdown(0);
    return;
  }
  const h = Object.hasOwn(handlers, c.cmd) ? handlers[c.cmd] : null;
  if (!h) {
    emit({ id, ok: false, error: `unknown cmd ${JSON.stringify(c.cmd)}` });
    return;
  }
  try {
    // A handler may answer ok:false with details by returning { ok: false, ... }.
    const res = await h(c);
    emit({ id, ok: true, ...res });
  } catch (e) {
    emit({ id, ok: false, error: String(e?.message ?? e) });
  }
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (line) => {
  handleLine(line).catch((e) => logErr("command failed:", e?.stack ?? e));
});
rl.on("close", () => {
  void shutdown(0);
});
// The parent went away: nobody to talk to.
process.stdout.on("error", () => void shutdown(0));
process.on("SIGTERM", () => void shutdown(0));
process.on("SIGINT", () => void shutdown(0));
process.on("unhandledRejection", (e) => logErr("unhandled rejection:", e?.stack ?? e));
