import os
import shutil
import subprocess

import pytest
from conftest import project_config

from connectors.git import GitConnector, GitError
from framework.ingest.acl import AclPolicy
from framework.ingest.contract import LoadFailure, SourceItem
from framework.project import Project, load_config_dict
from framework.records import Principal

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="the git command is not installed")

README = """# Lanternfish Platform

Lanternfish is the internal deployment platform of the logistics team.
Deployments run every Tuesday at 14:00 after the change review.
"""

RUNBOOK = """# On-call runbook

The pager rotation changes every Monday. Escalate to the duty manager after 20 minutes.
The status page is called Beaconboard.
"""

SECRET = """# Salary bands

Band F4 starts at 61000 EUR per year.
"""


def git(repo, *args, author="Ann Lee"):
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": f"{author.split()[0].lower()}@example.com",
           "GIT_COMMITTER_NAME": author, "GIT_COMMITTER_EMAIL": "ci@example.com"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "platform"
    (root / "docs").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "hr").mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text(README)
    (root / ".gitignore").write_text("build/\n*.log\n")
    (root / "src" / "deploy.py").write_text('"""Deploy a service to the Lanternfish cluster named Driftwood."""\n'
                                            "REGION = 'north-2'\n")
    (root / "docs" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (root / "docs" / "blob.txt").write_bytes(b"header\x00\x01\x02 binary data that claims to be text")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    (root / "docs" / "runbook.md").write_text(RUNBOOK)
    (root / "hr" / "bands.md").write_text(SECRET)
    (root / "docs" / "Überblick.md").write_text("# Überblick\nDie Kantine öffnet um 11:30.\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "runbook", author="Bo Chen")
    # Ignored and uncommitted files exist in the working tree but not at HEAD.
    (root / "build").mkdir()
    (root / "build" / "out.md").write_text("# Build output\nThe artefact store is called Quarrybox.\n")
    (root / "debug.log").write_text("log line mentioning Quarrybox")
    (root / "docs" / "draft.md").write_text("# Draft\nThe draft mentions Quarrybox.\n")
    (root / "README.md").write_text("# Lanternfish\nUncommitted edit mentioning Quarrybox.\n")
    return root


def _scan(repo, **kw):
    conn = GitConnector(name="platform", repo=repo, acl=("engineering",), **kw)
    items = list(conn.scan())
    docs, failures = {}, {}
    for item in items:
        if isinstance(item, LoadFailure):
            failures[item.uri.rsplit("/", 1)[1]] = item.reason
            continue
        try:
            docs[item.doc_id] = (item, item.read())
        except Exception as err:  # the ingest reports these
            failures[item.doc_id] = str(err)
    conn.close()
    return docs, failures


def test_reads_committed_text_files_at_head_only(repo):
    docs, failures = _scan(repo)
    assert set(docs) == {"platform:README.md", "platform:.gitignore", "platform:src/deploy.py",
                         "platform:docs/runbook.md", "platform:hr/bands.md", "platform:docs/Überblick.md"}
    assert docs["platform:docs/Überblick.md"][1].metadata["author"] == "Bo Chen"
    readme = docs["platform:README.md"][1]
    assert "every Tuesday at 14:00" in readme.text and "Quarrybox" not in readme.text
    assert readme.title == "Lanternfish Platform"
    assert "Driftwood" in docs["platform:src/deploy.py"][1].text
    assert "binary file type" in failures["logo.png"]
    assert "binary blob" in failures["platform:docs/blob.txt"]


def test_metadata_has_commit_author_and_blob_hash(repo):
    docs, _ = _scan(repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    first = git(repo, "rev-parse", "HEAD~1").strip()
    item, readme = docs["platform:README.md"]
    blob = git(repo, "rev-parse", "HEAD:README.md").strip()
    assert item.content_hash == readme.content_hash == blob
    assert readme.metadata["commit"] == head and readme.metadata["last_commit"] == first
    assert readme.metadata["author"] == "Ann Lee"
    runbook = docs["platform:docs/runbook.md"][1]
    assert runbook.metadata["last_commit"] == head and runbook.metadata["author"] == "Bo Chen"
    assert runbook.updated_at == git(repo, "log", "-1", "--format=%cI", "HEAD").strip()
    assert readme.uri == (repo / "README.md").resolve().as_uri()


def test_include_exclude_and_uri_template(repo):
    docs, _ = _scan(repo, include=("**/*.md",), exclude=("hr/*",),
                    uri_template="https://git.example.com/platform/blob/{commit}/{path}")
    assert set(docs) == {"platform:README.md", "platform:docs/runbook.md", "platform:docs/Überblick.md"}
    head = git(repo, "rev-parse", "HEAD").strip()
    assert docs["platform:docs/runbook.md"][1].uri == f"https://git.example.com/platform/blob/{head}/docs/runbook.md"


def test_not_a_repository_is_a_clear_error(tmp_path):
    with pytest.raises(GitError, match="has no commit at ref 'HEAD'"):
        list(GitConnector(name="x", repo=tmp_path).scan())
    with pytest.raises(FileNotFoundError, match="sources.x.path"):
        list(GitConnector(name="x", repo=tmp_path / "missing").scan())


def test_acl_paths_per_file(repo):
    conn = GitConnector(name="platform", repo=repo, acl=AclPolicy(groups=("engineering",),
                                                                  by_path=(("hr/*", ("hr",)),)))
    acl = {i.doc_id: i.acl for i in conn.scan() if isinstance(i, SourceItem)}
    assert acl["platform:hr/bands.md"] == ("engineering", "hr")
    assert acl["platform:README.md"] == ("engineering",)


def _project(tmp_path, repo, **source):
    src = {"name": "platform", "type": "git", "path": str(repo), "acl": ["engineering"],
           "exclude": ["hr/*"], **source}
    return Project(load_config_dict(project_config(tmp_path, repo, sources=[src])), show_progress=False)


def test_ingest_query_and_incremental_reingest(tmp_path, repo):
    project = _project(tmp_path, repo)
    report = project.ingest().to_dict()
    assert report["documents"]["new"] == 5 and report["documents"]["failed"] == 2
    hits = project.retrieve("status page called Beaconboard", principal=Principal(groups=("engineering",)))
    assert hits[0].doc_id == "platform:docs/runbook.md"
    assert project.retrieve("Beaconboard", principal=Principal(groups=("sales",))) == []
    ids = project.index.ids()

    assert project.ingest().to_dict()["documents"]["unchanged"] == 5
    assert project.index.ids() == ids

    # Commit a change and a deletion; the uncommitted README edit is restored first.
    git(repo, "checkout", "--", "README.md")
    (repo / "docs" / "runbook.md").write_text(RUNBOOK.replace("Beaconboard", "Lighthouse Board"))
    git(repo, "rm", "-q", "src/deploy.py")
    git(repo, "commit", "-q", "-am", "rename the status page; drop deploy script")
    report = project.ingest().to_dict()
    assert report["documents"] == {"new": 0, "changed": 1, "unchanged": 3, "deleted": 1, "failed": 2}
    engineer = Principal(groups=("engineering",))
    texts = " ".join(s.text for s in project.index.get(sorted(project.index.ids()), principal=engineer))
    assert "Lighthouse Board" in texts and "Beaconboard" not in texts and "Driftwood" not in texts
    assert "Quarrybox" not in texts


def test_config_validates_uri_template():
    from framework.config import ConfigError

    with pytest.raises(ConfigError, match=r"unknown field \{branch\}"):
        load_config_dict({"sources": [{"name": "g", "type": "git", "path": ".", "uri_template": "x/{branch}/{path}"}]})


def test_blobs_read_in_a_forked_worker_use_their_own_git_process(repo):
    """Parsing may run in forked workers; they must not share the parent's cat-file pipe."""
    import multiprocessing

    conn = GitConnector(name="platform", repo=repo)
    items = [i for i in conn.scan() if isinstance(i, SourceItem)]
    runbook = next(i for i in items if i.doc_id == "platform:docs/runbook.md")
    assert "Beaconboard" in runbook.read().text  # starts the parent's reader
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()

    def work():
        child.send(([i.read().title for i in items if i.doc_id.endswith(".md")], conn._blobs.proc.pid))

    proc = ctx.Process(target=work)
    proc.start()
    titles, git_pid = parent.recv()
    proc.join()
    assert proc.exitcode == 0 and "On-call runbook" in titles
    assert git_pid != conn._blobs.proc.pid
    assert "Beaconboard" in runbook.read().text  # the parent's reader still answers in step
    conn.close()
