"""The sample web site (tests/assets/website) served on 127.0.0.1 from a copy a test may edit."""

from __future__ import annotations

import shutil
import threading
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

SITE = Path(__file__).parent / "assets" / "website"


class _Handler(SimpleHTTPRequestHandler):
    """Static files, plus `server.failing` paths answering 503 and `server.redirects` paths redirecting.

    Every request path is logged in `server.requests`.
    """

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path in self.server.redirects:
            self.send_response(301)
            self.send_header("Location", self.server.redirects[self.path])
            self.end_headers()
            return
        if self.path in self.server.failing:
            self.send_error(503, "maintenance")
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@contextmanager
def serve_site(root: Path) -> Iterator[tuple[str, ThreadingHTTPServer]]:
    """Copy the sample site to `root`, serve it, and yield (base URL, server); stopped on exit."""
    shutil.copytree(SITE, root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    server.failing, server.redirects, server.requests = set(), {}, []
    base = f"http://127.0.0.1:{server.server_address[1]}"
    sitemap = root / "sitemap.xml"
    sitemap.write_text(sitemap.read_text().replace("{{BASE}}", base))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield base, server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
