"""The git, sql and web recipes run as scripts against the sample sources (preview: no model needed)."""

import runpy
import sys
from pathlib import Path

from test_connector_git import git
from test_connector_sql import create_articles
from web_server import serve_site

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def _run(script, args, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(RECIPES / script), *args])
    runpy.run_path(str(RECIPES / script), run_name="__main__")
    return capsys.readouterr().out


def test_sql_recipe_previews_rendered_rows(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'kb.sqlite'}"
    create_articles(url)
    monkeypatch.setenv("RAGTUNE_SQL_URL", url)
    out = _run("sql.py", ["--preview", "2", "--set", "sources.0.updated_at_column=updated",
                          "--set", "sources.0.acl_column=groups"], monkeypatch, capsys)
    assert "--- kb:101  'Resetting a badge'  groups support  updated 2026-03-01T09:30:00" in out
    assert "Lost badges are replaced at the Kestrel desk" in out and "kb:103" not in out


def test_git_recipe_previews_committed_files(tmp_path, monkeypatch, capsys):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "GUIDE.md").write_text("# Guide\nThe build server is called Anvil.\n")
    (repo / "notes.bin").write_text("not included by the recipe's globs")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "guide")
    monkeypatch.setenv("RAGTUNE_REPO", str(repo))
    out = _run("git.py", ["--preview"], monkeypatch, capsys)
    assert out.startswith("repo:GUIDE.md  blob ") and "groups engineering" in out and "notes.bin" not in out


def test_web_recipe_previews_the_crawl(tmp_path, monkeypatch, capsys):
    with serve_site(tmp_path / "site") as (base, _):
        monkeypatch.setenv("RAGTUNE_SITE", f"{base}/index.html")
        out = _run("web.py", ["--preview", "--set", "sources.0.delay_s=0"], monkeypatch, capsys)
    assert f"page {base}/guides/glacier-routes.html  'Glacier routes'" in out
    assert f"skip {base}/private/salaries.html: disallowed by robots.txt" in out
