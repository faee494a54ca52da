"""A webhook receiver for keyward's tests: it checks every delivery's signature with the
Standard Webhooks library (PyPI `standardwebhooks`), records what came, and answers as told.

Run: python receiver.py  -> prints the port it listens on (127.0.0.1), then serves until killed.

Control (JSON):
  POST /_config {"path": "/hook", "secret": "whsec_...", "fail": N, "hang": N}
      deliveries to `path` are verified with `secret`; the next N answer 500; the next N
      (after those) get no answer for 60 s.
  GET /_events -> [{"path", "id", "type", "verified", "answered", "body"}]
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

LOCK = threading.Lock()
CONFIG = {}
EVENTS = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _json(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def do_GET(self):
        if self.path == "/_events":
            with LOCK:
                return self._json(200, list(EVENTS))
        self._json(404, {})

    def do_POST(self):
        body = self._body()
        if self.path == "/_config":
            cfg = json.loads(body)
            with LOCK:
                CONFIG[cfg["path"]] = {
                    "secret": cfg["secret"],
                    "fail": cfg.get("fail", 0),
                    "hang": cfg.get("hang", 0),
                }
            return self._json(200, {})
        with LOCK:
            cfg = CONFIG.get(self.path, {"secret": None, "fail": 0, "hang": 0})
            action = "ok"
            if cfg["fail"] > 0:
                cfg["fail"] -= 1
                action = "fail"
            elif cfg["hang"] > 0:
                cfg["hang"] -= 1
                action = "hang"
        verified = False
        payload = None
        if cfg["secret"]:
            try:
                headers = {k.lower(): v for k, v in self.headers.items()}
                payload = Webhook(cfg["secret"]).verify(body, headers)
                verified = True
            except Exception as e:  # the test reads `verified`
                sys.stderr.write(f"verification failed: {e}\n")
        record = {
            "path": self.path,
            "id": self.headers.get("webhook-id"),
            "type": (payload or {}).get("type"),
            "verified": verified,
            "answered": {"ok": 200, "fail": 500, "hang": None}[action],
            "body": body.decode("utf-8", "replace"),
        }
        with LOCK:
            EVENTS.append(record)
        if action == "hang":
            time.sleep(60)
            return
        if action == "fail":
            return self._json(500, {"error": "told to fail"})
        self._json(200, {"ok": True})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
