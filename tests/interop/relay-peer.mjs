// A js-waku relay peer for murmur's interop tests, driven by JSON lines.
//
// Built from libp2p 2.8.11 with the transports, encrypter, muxer and services
// of js-waku's own default node (@waku/sdk src/create/libp2p.ts), plus
// @chainsafe/libp2p-gossipsub 14.1.1 configured the way js-waku's relay
// (@waku/relay wakuGossipSub + messageValidator) configures it.
//
//   node relay-peer.mjs --cluster 1 --shards 0,1,2,3,4,5,6,7 [--listen /ip4/127.0.0.1/tcp/0/ws]
//
// stdout carries ONLY JSON lines (see README.md); all logging goes to stderr.
import "./polyfill.mjs";

import { createHash } from "node:crypto";
import { createInterface } from "node:readline";

import { gossipsub } from "@chainsafe/libp2p-gossipsub";
import { noise } from "@chainsafe/libp2p-noise";
import { identify } from "@libp2p/identify";
import { StrictNoSign, TopicValidatorResult } from "@libp2p/interface";
import { mplex } from "@libp2p/mplex";
import { ping } from "@libp2p/ping";
import { webSockets } from "@libp2p/websockets";
import { all as filterAll } from "@libp2p/websockets/filters";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr } from "@multiformats/multiaddr";
import { createEncoder, wakuMetadata } from "@waku/core";
import { messageHash } from "@waku/message-hash";
import { proto_message } from "@waku/proto";
import { createLibp2p } from "libp2p";

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
  process.stderr.write(`[relay-peer ${process.pid}] ${args.join(" ")}\n`);
}

const toHex = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");

function fromHex(hex, what) {
  if (typeof hex !== "string" || !/^([0-9a-fA-F]{2})*$/.test(hex)) {
    throw new Error(`${what} must be an even-length hex string`);
  }
  return new Uint8Array(Buffer.from(hex, "hex"));
}

// ------------------------------------------------------------------ args ---

function parseArgs(argv) {
  const opts = { cluster: 1, shards: [0, 1, 2, 3, 4, 5, 6, 7], listen: "/ip4/127.0.0.1/tcp/0/ws" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === "--cluster") {
      opts.cluster = Number.parseInt(v, 10);
      i++;
    } else if (a === "--shards") {
      opts.shards = v === "" ? [] : v.split(",").map((s) => Number.parseInt(s, 10));
      i++;
    } else if (a === "--listen") {
      opts.listen = v;
      i++;
    } else {
      throw new Error(`unknown argument ${a}`);
    }
  }
  if (!Number.isInteger(opts.cluster) || opts.cluster < 0 || opts.cluster > 65535) {
    throw new Error("--cluster must be an integer 0..65535");
  }
  if (opts.shards.some((s) => !Number.isInteger(s) || s < 0 || s > 1023)) {
    throw new Error("--shards must be a comma-separated list of integers 0..1023");
  }
  return opts;
}

// --------------------------------------------------------- js-waku relay ---

// js-waku: packages/relay/src/constants.ts RelayCodecs
const RELAY_CODEC = "/vac/waku/relay/2.0.0";
// nwaku's limit for a WakuMessage is 150 KiB; allow comfortably more per RPC frame.
const MAX_INBOUND_DATA_LENGTH = 1024 * 1024;

// js-waku: msgIdFn: ({ data }) => sha256(data)  (raw 32 bytes)
function msgIdFn(msg) {
  return new Uint8Array(createHash("sha256").update(msg.data).digest());
}

// js-waku: packages/relay/src/relay.ts wakuGossipSub. The multicodecs must be
// replaced inside the service factory: gossipsub registers its protocol
// handlers and topology from them when the node starts.
function wakuGossipSub(init) {
  const factory = gossipsub({
    ...init,
    msgIdFn,
    // Ensure that no signature is included nor expected in the messages.
    globalSignaturePolicy: StrictNoSign,
    fallbackToFloodsub: false
  });
  return (components) => {
    const ps = factory(components);
    ps.multicodecs = [RELAY_CODEC];
    return ps;
  };
}

// js-waku: packages/relay/src/message_validator.ts (messageValidator), plus a
// JSON line so tests can see that a message was rejected.
function messageValidator(peer, message) {
  let result = TopicValidatorResult.Accept;
  let reason = null;
  try {
    const protoMessage = proto_message.WakuMessage.decode(message.data);
    if (
      !protoMessage.contentTopic ||
      !protoMessage.contentTopic.length ||
      !protoMessage.payload ||
      !protoMessage.payload.length
    ) {
      result = TopicValidatorResult.Reject;
      reason = "empty payload or content topic";
    }
  } catch (e) {
    result = TopicValidatorResult.Reject;
    reason = `decode failed: ${e?.message ?? e}`;
  }
  if (result !== TopicValidatorResult.Accept) {
    emit({ event: "rejected", topic: message.topic, from: peer.toString(), reason, data: toHex(message.data) });
  }
  return result;
}

// ------------------------------------------------------------------ node ---

const opts = parseArgs(process.argv.slice(2));

const libp2p = await createLibp2p({
  addresses: { listen: [opts.listen] },
  // As js-waku's defaultLibp2p with filterMultiaddrs: false (plain /ws allowed).
  transports: [webSockets({ filter: filterAll })],
  streamMuxers: [mplex()],
  connectionEncrypters: [noise()],
  services: {
    identify: identify({ agentVersion: "js-waku" }),
    ping: ping({ maxInboundStreams: 10 }),
    // js-waku's own metadata service. It takes only the cluster id: it always
    // answers (and asks with) an empty shard list, as js-waku nodes do.
    metadata: wakuMetadata(opts.cluster),
    pubsub: wakuGossipSub({
      // Test-harness settings:
      allowPublishToZeroTopicPeers: false,
      maxInboundDataLength: MAX_INBOUND_DATA_LENGTH
    })
  },
  // createLibp2p() starts the node by default; start it only once the event
  // listeners below are attached.
  start: false
});

const pubsub = libp2p.services.pubsub;

libp2p.addEventListener("peer:connect", (evt) => {
  emit({ event: "peer:connect", peerId: evt.detail.toString() });
});
libp2p.addEventListener("peer:disconnect", (evt) => {
  emit({ event: "peer:disconnect", peerId: evt.detail.toString() });
});

pubsub.addEventListener("message", (evt) => {
  const msg = evt.detail;
  try {
    const wm = proto_message.WakuMessage.decode(msg.data);
    emit({
      event: "message",
      topic: msg.topic,
      contentTopic: wm.contentTopic,
      payload: toHex(wm.payload ?? new Uint8Array()),
      timestamp: wm.timestamp !== undefined && wm.timestamp !== null ? wm.timestamp.toString() : null,
      meta: wm.meta !== undefined && wm.meta !== null ? toHex(wm.meta) : null,
      version: wm.version ?? null,
      ephemeral: wm.ephemeral ?? null,
      hash: toHex(messageHash(msg.topic, wm))
    });
  } catch (e) {
    logErr("failed to decode a validated message:", e?.stack ?? e);
  }
});

await libp2p.start();

emit({
  event: "ready",
  peerId: libp2p.peerId.toString(),
  addrs: libp2p.getMultiaddrs().map((ma) => ma.toString()),
  cluster: opts.cluster,
  shards: opts.shards
});

// -------------------------------------------------------------- commands ---

function subscribe(topic) {
  // js-waku's Relay.subscribeToAllTopics: validator, then subscribe.
  pubsub.topicValidators.set(topic, messageValidator);
  pubsub.subscribe(topic);
}

async function encodeWakuMessage(c) {
  if (typeof c.contentTopic !== "string") throw new Error("contentTopic must be a string");
  const payload = fromHex(c.payload ?? "", "payload");
  let tsNs = null;
  if (c.timestamp !== undefined && c.timestamp !== null) {
    if (!/^[0-9]+$/.test(String(c.timestamp))) throw new Error("timestamp must be a decimal string of nanoseconds");
    tsNs = BigInt(c.timestamp);
  }
  // js-waku's version-0 encoder (version 0, ephemeral false, ms timestamp).
  // The routing info is used only for its pubsubTopic getter.
  const encoder = createEncoder({
    contentTopic: c.contentTopic,
    routingInfo: { pubsubTopic: c.topic },
    ephemeral: Boolean(c.ephemeral)
  });
  const protoObj = await encoder.toProtoObj({
    payload,
    timestamp: tsNs === null ? undefined : new Date(Number(tsNs / 1_000_000n))
  });
  // Keep the exact nanosecond timestamp the test asked for (js-waku itself only
  // has millisecond precision; the ms case is identical).
  if (tsNs !== null) protoObj.timestamp = tsNs;
  if (c.meta !== undefined && c.meta !== null) protoObj.meta = fromHex(c.meta, "meta");
  return { protoObj, bytes: proto_message.WakuMessage.encode(protoObj) };
}

const handlers = {
  async dial(c) {
    const conn = await libp2p.dial(multiaddr(c.addr), { signal: AbortSignal.timeout(c.timeoutMs ?? 10_000) });
    return { peerId: conn.remotePeer.toString() };
  },
  async hangUp(c) {
    await libp2p.hangUp(peerIdFromString(c.peerId));
    return {};
  },
  async subscribe(c) {
    if (typeof c.topic !== "string") throw new Error("topic must be a string");
    subscribe(c.topic);
    return {};
  },
  async unsubscribe(c) {
    pubsub.unsubscribe(c.topic);
    pubsub.topicValidators.delete(c.topic);
    return {};
  },
  async meshPeers(c) {
    return { peers: pubsub.getMeshPeers(c.topic).map(String) };
  },
  async subscribers(c) {
    return { peers: pubsub.getSubscribers(c.topic).map(String) };
  },
  async peers() {
    return { peers: libp2p.getPeers().map(String) };
  },
  async publish(c) {
    if (typeof c.topic !== "string") throw new Error("topic must be a string");
    const { protoObj, bytes } = await encodeWakuMessage(c);
    const hash = toHex(messageHash(c.topic, protoObj));
    const res = await pubsub.publish(c.topic, bytes);
    return { hash, recipients: res.recipients.length, size: bytes.length };
  },
  async publishRaw(c) {
    if (typeof c.topic !== "string") throw new Error("topic must be a string");
    // gossipsub does not run topic validators on its own publications.
    const res = await pubsub.publish(c.topic, fromHex(c.data, "data"));
    return { recipients: res.recipients.length };
  },
  async metadataQuery(c) {
    // js-waku's metadata client request (cluster id, empty shards) to a connected peer.
    const res = await libp2p.services.metadata.query(peerIdFromString(c.peerId));
    if (res.error) throw new Error(String(res.error));
    return { clusterId: res.shardInfo.clusterId, shards: res.shardInfo.shards };
  },
  async peerProtocols(c) {
    const peer = await libp2p.peerStore.get(peerIdFromString(c.peerId));
    return { protocols: peer.protocols, agentVersion: peer.metadata.get("AgentVersion") ? Buffer.from(peer.metadata.get("AgentVersion")).toString() : null };
  }
};

async function shutdown(code) {
  if (stopping) return;
  stopping = true;
  const timer = setTimeout(() => process.exit(code), 3000);
  timer.unref();
  try {
    await libp2p.stop();
  } catch (e) {
    logErr("error stopping libp2p:", e?.message ?? e);
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
