"""Every export connector keeps the same promises about the items it yields."""

import pytest
from export_zips import ASSETS, zip_folder

from connectors.confluence import ConfluenceConnector
from connectors.notion import NotionConnector
from connectors.slack import SlackConnector
from framework.ingest.contract import Connector, LoadFailure, SourceItem

CONNECTORS = {"confluence": ConfluenceConnector, "notion": NotionConnector, "slack": SlackConnector}


@pytest.fixture(params=[(kind, form) for kind in CONNECTORS for form in ("folder", "zip")],
                ids=lambda p: "-".join(p))
def connector(request, tmp_path):
    kind, form = request.param
    path = ASSETS / kind if form == "folder" else zip_folder(ASSETS / kind, tmp_path / f"{kind}.zip")
    return CONNECTORS[kind](name="src", path=path, acl=("staff",))


def test_items_keep_the_contract(connector):
    assert isinstance(connector, Connector)
    items = list(connector.scan())
    found = [i for i in items if isinstance(i, SourceItem)]
    assert found and all(isinstance(i, (SourceItem, LoadFailure)) for i in items)
    assert len({i.doc_id for i in found}) == len(found), "document ids must be unique"
    for item in found:
        doc = item.read()
        assert item.doc_id.startswith("src:") and doc.id == item.doc_id
        assert (doc.source, doc.uri, doc.content_hash, doc.acl) == ("src", item.uri, item.content_hash, item.acl)
        assert doc.text.strip() and doc.title.strip() and doc.updated_at
        assert all(isinstance(v, str) for v in doc.metadata.values())
    for failure in (i for i in items if isinstance(i, LoadFailure)):
        assert failure.uri and failure.reason


def test_second_scan_gives_the_same_ids_and_hashes(connector):
    def versions():
        return {i.doc_id: i.version for i in connector.scan() if isinstance(i, SourceItem)}

    assert versions() == versions()
