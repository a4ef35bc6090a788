"""A real HTTP server on 127.0.0.1 that keeps the webhook POSTs it receives.

Fixture ``http_receiver`` (registered with ``pytest_plugins = ["http_receiver"]``):
a running `Receiver`; ``receiver.url("/hook/TOKEN")`` is a URL to post to,
``receiver.requests`` what arrived, and ``receiver.status`` the status it
answers with (200 unless a test sets another; a 3xx redirects to ``/moved``).
With ``receiver.trickle`` set to N, it answers one byte every N seconds (a
server that is alive but never done), until the fixture stops it.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Request:
    def __init__(self, method, path, headers, body):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))


class Receiver:
    def __init__(self):
        self.requests = []
        self.status = 200
        self.trickle = None  # seconds between the bytes of a slow answer
        self.stopped = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path="/"):
        return "http://127.0.0.1:{}{}".format(self.port, path)

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append(Request("POST", self.path, dict(self.headers), body))
                if receiver.trickle:
                    self._trickle(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
                    return
                self.send_response(receiver.status)
                if 300 <= receiver.status < 400:
                    self.send_header("Location", receiver.url("/moved"))
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def _trickle(self, answer):
                for byte in answer:
                    if receiver.stopped.wait(receiver.trickle):
                        return
                    self.wfile.write(bytes([byte]))

            def log_message(self, format, *args):  # keep the test output clean
                pass

        return Handler

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_receiver(monkeypatch):
    """A webhook receiver on 127.0.0.1; proxies from the environment are ignored."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    receiver = Receiver().start()
    yield receiver
    receiver.stop()
