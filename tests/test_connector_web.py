import pytest
from conftest import project_config
from web_server import serve_site

from connectors.web import WebConnector, WebSourceError, normalize_url
from framework.config import ConfigError
from framework.ingest.acl import AclPolicy
from framework.ingest.contract import LoadFailure, SourceItem
from framework.project import Project, load_config_dict
from framework.records import Principal


@pytest.fixture
def site(tmp_path):
    """(base URL, site folder, server) of the sample site on 127.0.0.1."""
    with serve_site(tmp_path / "site") as (base, server):
        yield base, tmp_path / "site", server


def _scan(**kw):
    conn = WebConnector(name="intranet", delay_s=0, acl=("staff",), **kw)
    items = list(conn.scan())
    docs = {i.doc_id.split(":", 1)[1]: i.read() for i in items if isinstance(i, SourceItem)}
    failures = {i.uri: i for i in items if isinstance(i, LoadFailure)}
    return docs, failures


def test_crawl_follows_same_host_links_to_max_depth_and_obeys_robots(site):
    base, _, _ = site
    docs, failures = _scan(start_urls=(f"{base}/index.html",), max_depth=2)
    assert set(docs) == {f"{base}/index.html", f"{base}/about.html", f"{base}/guides/onboarding.html",
                         f"{base}/guides/field-safety.html"}  # glacier-routes is 3 links away
    reasons = {url.removeprefix(base): f.reason for url, f in failures.items()}
    assert reasons == {"/private/salaries.html": "disallowed by robots.txt",
                       "/files/price-list.csv": "not an HTML page (text/csv); skipped",
                       "/old-page.html": "HTTP 404"}
    assert all(f.doc_id is None for f in failures.values())  # gone: they leave the index
    home = docs[f"{base}/index.html"]
    assert home.title == "Fernhollow Intranet" and "Thursday at 16:00 in the Atlas room" in home.text
    assert home.text.startswith("# Welcome to Fernhollow\n")  # headings kept for section-aware chunking
    assert "tracking snippet" not in home.text and "header banner" not in home.text
    assert "Copyright" not in home.text
    assert docs[f"{base}/about.html"].metadata == {"author": "Mara Quist"}
    assert "partner.example.com" not in " ".join([*docs, *failures])


def test_sitemap_pages_and_page_limit(site):
    base, _, server = site
    docs, _ = _scan(sitemap=f"{base}/sitemap.xml", max_depth=0)
    assert set(docs) == {f"{base}/index.html", f"{base}/news/launch.html"}
    assert "212 coastal trails" in docs[f"{base}/news/launch.html"].text
    server.requests.clear()
    _scan(start_urls=(f"{base}/index.html",), max_pages=2)
    assert [p for p in server.requests if p != "/robots.txt"] == ["/index.html", "/"]


def test_site_down_raises_instead_of_emptying_the_index(site):
    base, _, server = site
    server.failing.update({"/index.html"})
    with pytest.raises(WebSourceError, match="no page could be fetched .*HTTP 503"):
        _scan(start_urls=(f"{base}/index.html",))
    with pytest.raises(WebSourceError, match="cannot read"):
        _scan(sitemap=f"{base}/missing-sitemap.xml")


def test_fallback_text_when_trafilatura_finds_no_main_text(monkeypatch):
    import trafilatura

    from connectors.web import parse_page

    monkeypatch.setattr(trafilatura, "extract", lambda *a, **k: None)
    html = (b"<html><head><title>Menu</title></head><body><nav>Home | Maps</nav><h2>Today</h2>"
            b"<div>Soup of the day: nettle.</div><footer>Footer text</footer></body></html>")
    page = parse_page("http://h/menu.html", html)
    assert page.text == "## Today\n\nSoup of the day: nettle."


def test_redirects_stay_on_the_host(site):
    base, _, server = site
    server.redirects.update({"/moved.html": "/about.html", "/away.html": "https://partner.example.com/",
                             "/hidden.html": "/private/salaries.html"})
    docs, failures = _scan(start_urls=tuple(f"{base}{p}" for p in server.redirects), max_depth=0)
    assert set(docs) == {f"{base}/about.html"}
    assert failures[f"{base}/away.html"].reason == "redirects to another site (https://partner.example.com/); not followed"
    assert "robots.txt disallows" in failures[f"{base}/hidden.html"].reason
    assert "/private/salaries.html" not in server.requests


@pytest.mark.parametrize("raw, expected", [
    ("HTTP://Example.COM:80/a/b.html#frag", "http://example.com/a/b.html"),
    ("https://example.com:8443?x=1", "https://example.com:8443/?x=1"),
    ("mailto:someone@example.com", None),
    ("javascript:void(0)", None),
])
def test_normalize_url(raw, expected):
    assert normalize_url(raw) == expected


def test_relative_links_resolve_against_the_page():
    assert normalize_url("../a.html#x", "http://h/guides/b.html") == "http://h/a.html"


def test_config_requires_a_start():
    with pytest.raises(ConfigError, match="give `start_urls`"):
        load_config_dict({"sources": [{"name": "w", "type": "web"}]})
    with pytest.raises(ConfigError, match="not an http"):
        load_config_dict({"sources": [{"name": "w", "type": "web", "start_urls": ["ftp://x/"]}]})


def test_ingest_query_acl_and_incremental_recrawl(tmp_path, site):
    base, root, server = site
    source = {"name": "intranet", "type": "web", "start_urls": [f"{base}/index.html"], "sitemap": f"{base}/sitemap.xml",
              "delay_s": 0, "acl": ["staff"], "acl_paths": {"guides/*": ["new-hires"]}}
    project = Project(load_config_dict(project_config(tmp_path, root, sources=[source])), show_progress=False)
    report = project.ingest().to_dict()
    assert report["documents"]["new"] == 5 and report["documents"]["failed"] == 3
    hires = Principal(user="nia", groups=("new-hires",))
    hits = project.retrieve("satellite beacon for survey teams", principal=hires)
    assert hits and hits[0].doc_id == f"intranet:{base}/guides/field-safety.html"
    assert all("/guides/" in h.doc_id for h in hits)  # the rest of the site is for staff only
    assert project.retrieve("printing press called", principal=Principal(groups=("sales",))) == []
    staff = Principal(groups=("staff",))
    assert project.retrieve("printing press called", principal=staff)[0].doc_id == f"intranet:{base}/about.html"
    ids = project.index.ids()

    server.failing.add("/about.html")  # an outage of one page keeps what is indexed
    report = project.ingest().to_dict()
    assert report["documents"]["deleted"] == 0 and project.index.ids() == ids
    assert any("HTTP 503" in f["reason"] for f in report["failures"])
    server.failing.clear()

    about = root / "about.html"
    about.write_text(about.read_text().replace("Old Juniper", "Blue Heron"))
    (root / "guides" / "field-safety.html").unlink()
    report = project.ingest().to_dict()
    assert report["documents"] == {"new": 0, "changed": 1, "unchanged": 3, "deleted": 1, "failed": 4}
    texts = " ".join(s.text for s in project.index.get(sorted(project.index.ids()),
                                                          principal=Principal(groups=("staff", "new-hires"))))
    assert "Blue Heron" in texts and "Old Juniper" not in texts and "Skylark" not in texts


def test_acl_paths_match_url_paths(site):
    base, _, _ = site
    conn = WebConnector(name="w", start_urls=(f"{base}/index.html",), delay_s=0,
                        acl=AclPolicy(by_path=(("guides/*", ("new-hires",)),)))
    acl = {i.uri.removeprefix(base): i.acl for i in conn.scan() if isinstance(i, SourceItem)}
    assert acl["/guides/onboarding.html"] == ("new-hires",) and acl["/about.html"] == ()


def test_login_redirect_to_another_site_raises_instead_of_emptying_the_index(site):
    # An expired session typically sends every page to a single sign-on host.
    base, _, server = site
    server.redirects["/index.html"] = "https://sso.example.com/login"
    with pytest.raises(WebSourceError, match="no page could be fetched"):
        _scan(start_urls=(f"{base}/index.html",))


def test_groups_come_from_the_fetched_path_even_with_a_canonical_link_elsewhere(site):
    base, root, _ = site
    (root / "hr").mkdir()
    (root / "hr" / "pay.html").write_text(
        f'<html><head><title>Pay</title><link rel="canonical" href="{base}/pay.html"></head>'
        "<body><h1>Pay bands</h1><p>Band four starts at 51,000 a year for field guides.</p></body></html>")
    policy = AclPolicy(groups=("staff",), by_path=(("hr/*", ("hr",)),))
    items = [i for i in WebConnector(name="intranet", delay_s=0, acl=policy, max_depth=0,
                                     start_urls=(f"{base}/hr/pay.html",)).scan() if isinstance(i, SourceItem)]
    assert [(i.uri, i.acl) for i in items] == [(f"{base}/pay.html", ("hr", "staff"))]
