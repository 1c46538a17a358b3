// Many js-waku light clients at once against one service node: each pages
// through the store, pushes a message and subscribes with filter, all
// released together, so that the service meets their requests at the same
// moment. Used by murmur's load test (tests/integration/load.rs).
//
//   node load.mjs --addr /ip4/127.0.0.1/tcp/P/ws/p2p/ID --clients 50 \
//     --store-topic /murmur/1/load/proto --push-topic /murmur/1/load-push/proto \
//     --filter-topic /murmur/1/load-filter/proto [--page-size 5]
//
// Prints one JSON line to stdout when every client is done:
//   {"clients":N,"ready":N,"store":{"ok":N,"failed":N,"counts":[...],"errors":[...]},
//    "lightpush":{"ok":N,"failed":N,"hashes":[...],"errors":[...]},
//    "filter":{"ok":N,"failed":N,"errors":[...]}}
// Logs go to stderr. Exit code 0 once the line is printed.
import "./polyfill.mjs";

import { multiaddr } from "@multiformats/multiaddr";
import { messageHash } from "@waku/message-hash";
import { createLightNode, Protocols } from "@waku/sdk";

for (const name of ["log", "info", "debug", "warn", "trace"]) {
  console[name] = (...args) => console.error(...args);
}

function parseArgs(argv) {
  const opts = { clients: 50, pageSize: 5, cluster: 1, numShards: 8 };
  const names = {
    "--addr": "addr",
    "--clients": "clients",
    "--store-topic": "storeTopic",
    "--push-topic": "pushTopic",
    "--filter-topic": "filterTopic",
    "--page-size": "pageSize",
    "--cluster": "cluster",
    "--num-shards": "numShards"
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (!key) throw new Error(`unknown argument ${argv[i]}`);
    const value = argv[i + 1];
    opts[key] = ["clients", "pageSize", "cluster", "numShards"].includes(key) ? Number.parseInt(value, 10) : value;
  }
  for (const key of ["addr", "storeTopic", "pushTopic", "filterTopic"]) {
    if (!opts[key]) throw new Error(`--${key} is required`);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const toHex = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
const PROTOCOLS = [Protocols.LightPush, Protocols.Filter, Protocols.Store];

async function startClient() {
  const waku = await createLightNode({
    networkConfig: { clusterId: opts.cluster, numShardsInCluster: opts.numShards },
    defaultBootstrap: false,
    discovery: { dns: false, peerExchange: false, peerCache: false },
    bootstrapPeers: [],
    libp2p: { filterMultiaddrs: false, hideWebSocketInfo: true }
  });
  await waku.libp2p.dial(multiaddr(opts.addr), { signal: AbortSignal.timeout(20_000) });
  await waku.waitForPeers(PROTOCOLS, 20_000);
  // As light-client.mjs: waitForPeers may resolve before identify listed the
  // service's protocols; wait until the peer manager would pick it.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const peers = await waku.connectionManager.getConnectedPeers();
    if (PROTOCOLS.every((p) => peers.some((peer) => waku.peerManager.hasPeerProtocol(peer, p)))) return waku;
    if (Date.now() > deadline) throw new Error("the service's protocols never showed up");
    await sleep(50);
  }
}

function tally() {
  return { ok: 0, failed: 0, errors: [] };
}

const result = {
  clients: opts.clients,
  ready: 0,
  store: { ...tally(), counts: [] },
  lightpush: { ...tally(), hashes: [] },
  filter: tally()
};

function failed(what, e) {
  result[what].failed++;
  result[what].errors.push(String(e?.message ?? e));
}

// Start the clients a few at a time (each is a libp2p node), then release
// their requests together.
const clients = [];
for (let i = 0; i < opts.clients; i += 10) {
  const batch = await Promise.allSettled(
    Array.from({ length: Math.min(10, opts.clients - i) }, () => startClient())
  );
  for (const b of batch) {
    if (b.status === "fulfilled") clients.push(b.value);
    else process.stderr.write(`client did not start: ${b.reason?.message ?? b.reason}\n`);
  }
}
result.ready = clients.length;

async function page(waku) {
  const decoder = waku.createDecoder({ contentTopic: opts.storeTopic });
  let count = 0;
  for await (const p of waku.store.queryGenerator([decoder], { paginationLimit: opts.pageSize })) {
    count += (await Promise.all(p)).filter(Boolean).length;
  }
  return count;
}

async function push(waku, i) {
  const encoder = waku.createEncoder({ contentTopic: opts.pushTopic });
  const message = { payload: new TextEncoder().encode(`load ${i}`), timestamp: new Date() };
  const hash = toHex(messageHash(encoder.pubsubTopic, await encoder.toProtoObj(message)));
  const res = await waku.lightPush.send(encoder, message, { autoRetry: false });
  if (res.successes.length === 0) {
    throw new Error(res.failures.map((f) => f.error).join("; ") || "no result");
  }
  return hash;
}

async function subscribe(waku) {
  const decoder = waku.createDecoder({ contentTopic: opts.filterTopic });
  if (!(await waku.filter.subscribe(decoder, () => {}))) throw new Error("no filter peer accepted the subscription");
}

await Promise.all(
  clients.map(async (waku, i) => {
    await Promise.all([
      page(waku).then(
        (n) => {
          result.store.ok++;
          result.store.counts.push(n);
        },
        (e) => failed("store", e)
      ),
      push(waku, i).then(
        (hash) => {
          result.lightpush.ok++;
          result.lightpush.hashes.push(hash);
        },
        (e) => failed("lightpush", e)
      ),
      subscribe(waku).then(
        () => result.filter.ok++,
        (e) => failed("filter", e)
      )
    ]);
  })
);

process.stdout.write(JSON.stringify(result) + "\n");
await Promise.race([Promise.allSettled(clients.map((w) => w.stop())), sleep(5000)]);
process.exit(0);
