"""A real OpenAI-compatible `/v1/embeddings` HTTP server on 127.0.0.1, for tests and benchmarks.

It embeds with any ragtune Embedder (the hashing one, or a local sentence-transformers model),
records each request's batch, and can be told to fail the next requests with a status code.

Example:
    with EmbeddingServer(HashingEmbedder(dim=64)) as server:
        OpenAIEmbedder(base_url=server.url, model="hashing").embed(["hi"])
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class EmbeddingServer:
    def __init__(self, embedder, *, model: str = "hashing") -> None:
        self.embedder = embedder
        self.model = model
        self.batches: list[list[str]] = []
        self.failures: list[tuple[int, dict]] = []  # (status, headers) for the next requests, in order
        self.auth: list[str | None] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.auth.append(self.headers.get("Authorization"))
                    failure = server.failures.pop(0) if server.failures else None
                if self.path != "/v1/embeddings":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if failure:
                    return self._send(failure[0], {"error": {"message": "busy"}}, failure[1])
                if body.get("model") != server.model:
                    return self._send(400, {"error": {"message": f"model {body.get('model')!r} is not served"}})
                texts = body["input"]
                with server._lock:
                    server.batches.append(list(texts))
                vectors = server.embedder.embed(list(texts))
                data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
                self._send(200, {"object": "list", "data": list(reversed(data)), "model": server.model,
                                 "usage": {"prompt_tokens": 0, "total_tokens": 0}})

            def _send(self, status, payload, headers=None):
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> "EmbeddingServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
