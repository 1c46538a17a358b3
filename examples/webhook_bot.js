#!/usr/bin/env node
// A murmur webhook bot in JavaScript, Node.js's standard library only.
//
// Run it, then point a node at it:
//
//   MURMUR_WEBHOOK_SECRET=change-me-to-16+chars node examples/webhook_bot.js
//   MURMUR_WEBHOOK__SECRET=change-me-to-16+chars murmur node --webhook http://127.0.0.1:8700/
//
// The node POSTs every chat message it decrypts (JSON: sender, text,
// group, ...) signed with HMAC-SHA256; the bot checks the signature and
// answers with {"reply": "..."}, which the node sends back where the
// message came from. "/help", "/echo TEXT" and "/ping" are its commands. A
// message is POSTed again until the bot answers 2xx, so handle each "seq"
// once if your bot has side effects. PORT=0 picks a free port; the bot
// prints the one it listens on.
"use strict";

const crypto = require("node:crypto");
const http = require("node:http");

const SECRET = process.env.MURMUR_WEBHOOK_SECRET || "";
// Signatures older than this are refused (a replayed request).
const MAX_AGE = 300;

// What the bot says to a message, or null to say nothing.
function answer(message) {
  const text = message.text;
  if (typeof text !== "string") return null; // a typed payload
  if (text === "/ping") return "pong";
  if (text.startsWith("/echo ")) return text.slice("/echo ".length);
  if (text === "/help") return "commands: /ping, /echo TEXT, /help";
  return `you said: ${text}`;
}

// Whether the node that sent this holds the secret, lately.
function verified(headers, body) {
  const timestamp = headers["x-murmur-timestamp"] || "";
  const signature = headers["x-murmur-signature"] || "";
  if (!/^\d+$/.test(timestamp)) return false;
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > MAX_AGE) return false;
  const expected =
    "sha256=" +
    crypto
      .createHmac("sha256", SECRET)
      .update(Buffer.concat([Buffer.from(timestamp + "."), body]))
      .digest("hex");
  const a = Buffer.from(expected);
  const b = Buffer.from(signature);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    if (req.method !== "POST" || !verified(req.headers, body)) {
      res.writeHead(401).end("bad signature");
      return;
    }
    let message;
    try {
      message = JSON.parse(body);
    } catch {
      res.writeHead(400).end();
      return;
    }
    const reply = answer(message);
    res
      .writeHead(200, { "content-type": "application/json" })
      .end(JSON.stringify(reply ? { reply } : {}));
  });
});

if (SECRET.length < 16) {
  console.error("set MURMUR_WEBHOOK_SECRET (16 characters or more)");
  process.exit(1);
}
server.listen(Number(process.env.PORT || 8700), "127.0.0.1", () => {
  console.log(`listening on ${server.address().port}`);
});
