"""Web connector: pages of a web site, crawled from start URLs or a sitemap, one host at a time.

Reads: HTML pages reachable from `start_urls` (and every page a `sitemap` lists) through
links on the same host (scheme, host and port), at most `max_depth` links away and at most
`max_pages` pages per run. robots.txt is obeyed (its Crawl-delay too), as are
`<meta name="robots" content="noindex, nofollow">`; requests are spaced by `delay_s`.
Main text comes from trafilatura (navigation, headers, footers and boilerplate removed),
with a BeautifulSoup fallback for pages it finds no main text in.
Document id: `<source name>:<URL>`, the URL normalised (fragment dropped, host lower-cased,
default port dropped) and replaced by the page's `<link rel="canonical">` when that points
to the same host, so one page reached by two URLs is one document. Content hash: SHA-256
of the title and extracted text.
ACL: the source's groups plus those of each `acl_paths:` pattern matching the URL's path
without its leading `/` (e.g. `"hr/*"`), see framework.ingest.acl.
Failures are report entries: a 404/410 (or robots.txt forbidding a page, or a non-HTML
link) means the page is gone and leaves the index; a timeout or 5xx keeps what is indexed.
If no page at all can be fetched, the scan raises instead, so an outage never empties the index.

Example:
    >>> conn = WebConnector(name="wiki", start_urls=("https://wiki.example.com/",), acl=("staff",))  # doctest: +SKIP
    >>> docs = [item.read() for item in conn.scan() if hasattr(item, "read")]                         # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import deque
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Iterator, Literal, Union
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser
from xml.etree import ElementTree

import httpx
from pydantic import Field, model_validator

from framework.ingest.acl import AclPolicy
from framework.ingest.contract import LoadFailure, SourceConfig, SourceItem
from framework.records import Document


class WebSource(SourceConfig):
    """A web site crawled from start URLs or a sitemap, same host only (see connectors/web.py)."""

    type: Literal["web"]
    start_urls: list[str] = []
    sitemap: str | None = None
    max_depth: int = Field(default=2, ge=0)
    max_pages: int = Field(default=500, ge=1)
    delay_s: float = Field(default=0.5, ge=0)
    timeout_s: float = Field(default=20.0, gt=0)
    max_page_mb: float = Field(default=5.0, gt=0)
    user_agent: str = "ragtune"

    @model_validator(mode="after")
    def _has_start(self) -> "WebSource":
        if not self.start_urls and not self.sitemap:
            raise ValueError("give `start_urls` (a list of pages) or `sitemap` (a sitemap.xml URL)")
        for url in [*self.start_urls, *([self.sitemap] if self.sitemap else [])]:
            if not re.match(r"^https?://[^/\s]+", url):
                raise ValueError(f"{url!r} is not an http(s) URL with a host")
        return self

log = logging.getLogger(__name__)

HTML_TYPES = {"text/html", "application/xhtml+xml"}
GONE = {401, 403, 404, 410}
MAX_REDIRECTS = 5  # the page is no longer there for us; anything else may come back
BOILERPLATE = ["script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form"]


class WebSourceError(RuntimeError):
    """The site could not be crawled at all; nothing indexed from it was touched."""


@dataclass
class Page:
    url: str
    title: str
    text: str
    links: list[str]
    follow: bool
    index: bool
    metadata: dict[str, str] = field(default_factory=dict)
    updated_at: str | None = None
    fetched_url: str = ""


def _acl_path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")


def normalize_url(url: str, base: str | None = None) -> str | None:
    """Absolute http(s) URL without fragment, lower-case host, no default port; None for other schemes."""
    url, _ = urldefrag(urljoin(base, url.strip()) if base else url.strip())
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port and port != {"http": 80, "https": 443}[parts.scheme]:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme, host, parts.path or "/", parts.query, ""))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class WebConnector:
    schema = WebSource

    @classmethod
    def from_config(cls, cfg: WebSource) -> "WebConnector":
        """Build from the validated `sources:` entry (see docs/connectors/web.md)."""
        return cls(name=cfg.name, start_urls=tuple(cfg.start_urls), sitemap=cfg.sitemap,
                   max_depth=cfg.max_depth, max_pages=cfg.max_pages, delay_s=cfg.delay_s,
                   timeout_s=cfg.timeout_s, max_bytes=int(cfg.max_page_mb * 1024 * 1024),
                   user_agent=cfg.user_agent, acl=AclPolicy.from_config(cfg))

    def __init__(self, *, name: str, start_urls: tuple[str, ...] = (), sitemap: str | None = None,
                 max_depth: int = 2, max_pages: int = 500, delay_s: float = 0.5, timeout_s: float = 20.0,
                 max_bytes: int = 5 * 2**20, user_agent: str = "ragtune",
                 acl: AclPolicy | tuple[str, ...] = ()) -> None:
        if not start_urls and not sitemap:
            raise ValueError(f"sources.{name}: give start_urls or a sitemap")
        self.name = name
        self.start_urls = start_urls
        self.sitemap = sitemap
        self.max_depth = max_depth
        self.max_pages = max_pages
        self.delay_s = delay_s
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.user_agent = user_agent
        self.acl = acl if isinstance(acl, AclPolicy) else AclPolicy(groups=tuple(acl))

    def scan(self) -> Iterator[Union[SourceItem, LoadFailure]]:
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False,
                          headers={"User-Agent": self.user_agent}) as client:
            crawl = _Crawl(self, client)
            yield from crawl.run()

    def acl_for(self, *urls: str) -> tuple[str, ...]:
        """The groups of the pages at `urls` (each URL's path matched against `acl_paths`), together."""
        return tuple(sorted({g for url in urls for g in self.acl.for_path(_acl_path(url))}))

    def item(self, page: Page) -> SourceItem:
        doc_id = f"{self.name}:{page.url}"
        # Groups come from the URL that was fetched as well as the page's canonical URL: a page
        # cannot move itself out of a restricted path by declaring a canonical link elsewhere.
        acl = self.acl_for(page.url, page.fetched_url or page.url)
        digest = hashlib.sha256(f"{page.title}\n{page.text}".encode()).hexdigest()
        doc = Document(id=doc_id, text=page.text, source=self.name, uri=page.url, title=page.title,
                       content_hash=digest, acl=acl, updated_at=page.updated_at, metadata=page.metadata)
        return SourceItem(doc_id=doc_id, uri=page.url, content_hash=digest, read=lambda: doc, acl=acl)


class _Crawl:
    """One breadth-first crawl: the queue, the robots.txt cache and the politeness clock."""

    def __init__(self, conn: WebConnector, client: httpx.Client) -> None:
        self.conn = conn
        self.client = client
        self.robots: dict[str, RobotFileParser | str] = {}
        self.last_request: dict[str, float] = {}
        self.fetched = self.succeeded = 0
        self.transient: list[str] = []
        self.first_failure = ""

    def run(self) -> Iterator[Union[SourceItem, LoadFailure]]:
        starts = [u for u in (normalize_url(s) for s in self.conn.start_urls) if u]
        if self.conn.sitemap:
            starts += self._sitemap_urls(self.conn.sitemap)
        hosts = {urlsplit(u).netloc for u in starts}
        queue = deque((u, 0) for u in dict.fromkeys(starts))
        queued, emitted = set(starts), set()
        while queue and self.fetched < self.conn.max_pages:
            url, depth = queue.popleft()
            before = self.fetched
            result = self._visit(url)
            if self.fetched // 50 > before // 50:
                log.info("sources.%s: %d requests, %d pages queued", self.conn.name, self.fetched, len(queue))
            if isinstance(result, LoadFailure):
                self.first_failure = self.first_failure or f"{result.uri}: {result.reason}"
                yield result
                continue
            queued.add(result.url)
            if result.follow and depth < self.conn.max_depth:
                for link in result.links:
                    if urlsplit(link).netloc in hosts and link not in queued:
                        queued.add(link)
                        queue.append((link, depth + 1))
            if result.index and result.url not in emitted:
                emitted.add(result.url)
                yield self.conn.item(result)
        if queue:
            log.warning("sources.%s: stopped at max_pages=%d with %d pages still queued; pages not reached "
                        "this run leave the index", self.conn.name, self.conn.max_pages, len(queue))
        if not self.succeeded and (starts or self.transient):
            # An expired login (401/403), a single sign-on redirect or an outage look like "every
            # page is gone"; deleting the whole source on that is never what anyone wants.
            why = self.transient[0] if self.transient else self.first_failure or "nothing was reached"
            raise WebSourceError(f"sources.{self.conn.name}: no page could be fetched ({why}); is the site up "
                                 "and readable without a login? Nothing was changed in the index")

    def _visit(self, url: str) -> Union[Page, LoadFailure]:
        """Fetch one page, following redirects only within its host and only where robots.txt allows."""
        target = url
        for _ in range(MAX_REDIRECTS + 1):
            robots = self._robots(target)
            if isinstance(robots, str):
                return LoadFailure(uri=url, reason=robots, doc_id=f"{self.conn.name}:{url}", acl=self.conn.acl_for(url))
            if not robots.can_fetch(self.conn.user_agent, target):
                return LoadFailure(uri=url, reason="disallowed by robots.txt" if target == url else
                                   f"redirects to {target}, which robots.txt disallows")
            self.fetched += 1
            try:
                with self._get(target, robots.crawl_delay(self.conn.user_agent)) as response:
                    if not response.is_redirect:
                        return self._page(url, target, response)
                    location = normalize_url(response.headers.get("location", ""), target)
            except httpx.HTTPError as err:
                return self._transient(url, f"{type(err).__name__}: {err}")
            if location is None or urlsplit(location).netloc != urlsplit(url).netloc:
                return LoadFailure(uri=url, reason=f"redirects to another site ({location}); not followed")
            target = location
        return LoadFailure(uri=url, reason=f"more than {MAX_REDIRECTS} redirects")

    def _page(self, url: str, final: str, response: httpx.Response) -> Union[Page, LoadFailure]:
        if response.status_code in GONE:
            return LoadFailure(uri=url, reason=f"HTTP {response.status_code}")
        if response.status_code >= 400:
            return self._transient(url, f"HTTP {response.status_code}")
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in HTML_TYPES:
            return LoadFailure(uri=url, reason=f"not an HTML page ({kind or 'no content type'}); skipped")
        raw = bytearray()
        for block in response.iter_bytes():
            raw += block
            if len(raw) > self.conn.max_bytes:
                return LoadFailure(uri=url, reason="page is over the source's max_page_mb limit",
                                   doc_id=f"{self.conn.name}:{final}", acl=self.conn.acl_for(url, final))
        self.succeeded += 1
        page = parse_page(final, bytes(raw), response.encoding if "charset" in response.headers.get(
            "content-type", "") else None)
        page.fetched_url = final
        if page.index and not page.text:
            return LoadFailure(uri=url, reason="no text found on the page (only scripts or markup?); exclude the URL "
                               "if that is expected", doc_id=f"{self.conn.name}:{page.url}",
                               acl=self.conn.acl_for(page.url, final))
        modified = response.headers.get("last-modified")
        if modified:
            try:
                page.updated_at = parsedate_to_datetime(modified).isoformat()
            except (TypeError, ValueError):
                pass
        return page

    def _transient(self, url: str, reason: str) -> LoadFailure:
        self.transient.append(f"{url}: {reason}")
        return LoadFailure(uri=url, reason=f"{reason}; kept what was indexed, retried next run",
                           doc_id=f"{self.conn.name}:{url}", acl=self.conn.acl_for(url))

    def _get(self, url: str, crawl_delay: float | None = None, *, follow: bool = False):
        origin = _origin(url)
        delay = max(self.conn.delay_s, float(crawl_delay or 0))
        wait = self.last_request.get(origin, -1e9) + delay - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self.last_request[origin] = time.monotonic()
        return self.client.stream("GET", url, follow_redirects=follow)

    def _robots(self, url: str) -> RobotFileParser | str:
        """The origin's robots.txt rules, or the reason it could not be read (nothing is fetched then)."""
        origin = _origin(url)
        if origin not in self.robots:
            parser = RobotFileParser(f"{origin}/robots.txt")
            try:
                with self._get(f"{origin}/robots.txt", follow=True) as response:
                    body = response.read()
                status = response.status_code
            except httpx.HTTPError as err:
                status, body = None, b""
                self.robots[origin] = self._transient(url, f"robots.txt unreachable: {type(err).__name__}").reason
            if status in (401, 403):
                parser.disallow_all = True
            elif status is not None and status >= 500:
                self.robots[origin] = self._transient(url, f"robots.txt answered HTTP {status}").reason
            elif status is not None:
                parser.parse(body.decode("utf-8", "replace").splitlines() if status < 400 else [])
            self.robots.setdefault(origin, parser)
        return self.robots[origin]

    def _sitemap_urls(self, sitemap: str, nesting: int = 0) -> list[str]:
        try:
            with self._get(sitemap, follow=True) as response:
                response.raise_for_status()
                body = response.read()
            root = ElementTree.fromstring(body)
        except (httpx.HTTPError, ElementTree.ParseError) as err:
            raise WebSourceError(f"sources.{self.conn.name}.sitemap: cannot read {sitemap}: {err}") from None
        locs = [e.text.strip() for e in root.iter() if e.tag.endswith("loc") and e.text]
        if root.tag.endswith("sitemapindex"):
            if nesting > 2:
                raise WebSourceError(f"sources.{self.conn.name}.sitemap: sitemap indexes nested too deep at {sitemap}")
            return [u for child in locs for u in self._sitemap_urls(child, nesting + 1)]
        return [u for u in (normalize_url(loc) for loc in locs) if u]


def parse_page(url: str, raw: bytes, encoding: str | None = None) -> Page:
    """Title, main text, links and robots directives of one HTML page."""
    import trafilatura
    from bs4 import BeautifulSoup
    from bs4.dammit import UnicodeDammit

    html = UnicodeDammit(raw, known_definite_encodings=[encoding] if encoding else []).unicode_markup or ""
    soup = BeautifulSoup(html, "lxml")
    robots = " ".join(m.get("content", "") for m in soup.find_all("meta", attrs={"name": "robots"})).lower()
    base = soup.find("base", href=True)
    base_url = urljoin(url, base["href"]) if base else url
    links = [u for u in (normalize_url(a["href"], base_url) for a in soup.find_all("a", href=True)
                         if "nofollow" not in (a.get("rel") or [])) if u]
    canonical = soup.find("link", rel="canonical", href=True)
    canonical_url = normalize_url(canonical["href"], url) if canonical else None
    if canonical_url and urlsplit(canonical_url).netloc == urlsplit(url).netloc:
        url = canonical_url
    title = (soup.title.get_text(" ", strip=True) if soup.title else "") or _first_heading(soup) or url
    author = soup.find("meta", attrs={"name": "author"})
    # Markdown output keeps the headings, so chunks know their section.
    text = trafilatura.extract(html, url=url, output_format="markdown", favor_recall=True, include_tables=True,
                               include_comments=False, deduplicate=False) or ""
    if not text.strip():
        for tag in soup(BOILERPLATE):
            tag.decompose()
        for level in range(1, 7):
            for tag in soup.find_all(f"h{level}"):
                tag.replace_with(f"\n{'#' * level} {tag.get_text(' ', strip=True)}\n")
        text = (soup.body or soup).get_text("\n")
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(line.strip() for line in text.splitlines())).strip()
    metadata = {"author": author["content"]} if author and author.get("content") else {}
    return Page(url=url, title=title, text=text, links=links, follow="nofollow" not in robots,
                index="noindex" not in robots, metadata=metadata)


def _first_heading(soup) -> str:
    heading = soup.find(["h1", "h2"])
    return heading.get_text(" ", strip=True) if heading else ""
