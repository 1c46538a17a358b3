#!/usr/bin/env python3
"""A murmur webhook bot in Python, standard library only.

Run it, then point a node at it:

    MURMUR_WEBHOOK_SECRET=change-me-to-16+chars python3 examples/webhook_bot.py
    MURMUR_WEBHOOK__SECRET=change-me-to-16+chars murmur node --webhook http://127.0.0.1:8700/

The node POSTs every chat message it decrypts (JSON: sender, text, group,
...) signed with HMAC-SHA256; the bot checks the signature and answers
with {"reply": "..."}, which the node sends back where the message came
from. "/help", "/echo TEXT" and "/ping" are its commands. A message is
POSTed again until the bot answers 2xx, so handle each "seq" once if your
bot has side effects. PORT=0 picks a free port; the bot prints the one it
listens on.
"""

import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ.get("MURMUR_WEBHOOK_SECRET", "").encode()
# Signatures older than this are refused (a replayed request).
MAX_AGE = 300


def answer(message):
    """What the bot says to a message, or None to say nothing."""
    text = message.get("text")
    if text is None:
        return None  # a typed payload: not for this bot
    if text == "/ping":
        return "pong"
    if text.startswith("/echo "):
        return text[len("/echo "):]
    if text == "/help":
        return "commands: /ping, /echo TEXT, /help"
    return f"you said: {text}"


def verified(headers, body):
    """Whether the node that sent this holds the secret, lately."""
    timestamp = headers.get("x-murmur-timestamp", "")
    signature = headers.get("x-murmur-signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_AGE:
        return False
    expected = hmac.new(SECRET, timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest("sha256=" + expected.hexdigest(), signature)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        if not verified(self.headers, body):
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b"bad signature")
            return
        try:
            message = json.loads(body)
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        reply = answer(message)
        out = json.dumps({"reply": reply} if reply else {}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass  # quiet: one line per message is the node's job


def main():
    if len(SECRET) < 16:
        sys.exit("set MURMUR_WEBHOOK_SECRET (16 characters or more)")
    port = int(os.environ.get("PORT", "8700"))
    server = HTTPServer(("127.0.0.1", port), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
