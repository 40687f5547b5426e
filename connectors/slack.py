"""Slack connector: a workspace export (the zip from "Export data", or unzipped).

Reads: `users.json`, `channels.json` (public), `groups.json` (private channels), and, with
`include_direct`, `mpims.json`/`dms.json`; then `<channel>/<YYYY-MM-DD>.json` message lists.
Documents: one per thread (messages sharing `thread_ts`) and, for messages outside threads,
one per conversation: consecutive messages in a channel no more than `gap_minutes` apart.
User ids become names from users.json, in authors and in `<@U123>` mentions. The title is
`#channel`, the kind, the date and the first words, so each chunk is embedded in context.
Document id: `<source name>:<channel id>:<ts of the thread or first message>`; uri
`<workspace_url>/archives/<channel id>/p<ts>` with `workspace_url`, else `slack://<channel>/p<ts>`.
ACL: public channels get the source's groups (`acl`, `public`, `acl_paths` on the channel
name). Private channels and direct messages never do: they carry the group
`slack:<channel name>` (plus `acl_paths` matches), so only that channel's members, once
mapped to the group, read them. A channel folder listed in no JSON file has unknown
visibility and is reported, never indexed.
Bad input: malformed JSON files and messages without a timestamp are report entries. An
unreadable day file keeps every indexed conversation of its channel, and an unreadable
channel list every document of the source, until they read again (nothing is lost to a
damaged export).
The JSON is parsed on every scan (conversations span days), but unchanged threads and
conversations are neither rendered nor embedded again.

Example:
    >>> conn = SlackConnector(name="slack", path="Acme Slack export.zip", acl=("staff",))  # doctest: +SKIP
    >>> docs = [item.read() for item in conn.scan() if hasattr(item, "read")]               # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Iterator, Literal, Union

from pydantic import Field

from connectors.archive import ArchiveLimits, Export, ExportSource, export_root
from framework.ingest.acl import AclPolicy
from framework.ingest.contract import LoadFailure, SourceItem
from framework.records import Document


class SlackSource(ExportSource):
    """A Slack workspace export (folder or zip)."""

    type: Literal["slack"]
    workspace_url: str | None = Field(default=None, pattern=r"^https://[A-Za-z0-9.-]+/?$")
    conversation_gap_minutes: float = Field(default=30.0, gt=0)
    include_private: bool = True
    include_direct: bool = False

_DAY_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.json$")
_LISTINGS = ("channels.json", "groups.json", "mpims.json", "dms.json")
_SKIPPED_SUBTYPES = {"channel_join", "channel_leave", "group_join", "group_leave"}


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    private: bool
    members: tuple[str, ...] = ()


class SlackConnector:
    schema = SlackSource

    @classmethod
    def from_config(cls, cfg: SlackSource) -> "SlackConnector":
        """Build from the validated `sources:` entry (see docs/connectors/slack.md)."""
        return cls(name=cfg.name, path=cfg.path, acl=AclPolicy.from_config(cfg),
                   limits=ArchiveLimits.from_config(cfg), workspace_url=cfg.workspace_url,
                   gap_minutes=cfg.conversation_gap_minutes, include_private=cfg.include_private,
                   include_direct=cfg.include_direct)

    def __init__(self, *, name: str, path: str | Path, acl: AclPolicy | tuple[str, ...] = (),
                 limits: ArchiveLimits = ArchiveLimits(), workspace_url: str | None = None,
                 gap_minutes: float = 30.0, include_private: bool = True, include_direct: bool = False) -> None:
        self.name = name
        self.path = Path(path).expanduser()
        self.acl = acl if isinstance(acl, AclPolicy) else AclPolicy(groups=tuple(acl))
        self.limits = limits
        self.workspace_url = workspace_url.rstrip("/") if workspace_url else None
        self.gap_s = gap_minutes * 60
        self.include_private = include_private
        self.include_direct = include_direct

    def scan(self) -> Iterator[Union[SourceItem, LoadFailure]]:
        export = Export.open(self.path, limits=self.limits, key=f"sources.{self.name}.path")
        root = export_root(export.names, "channels.json") or export_root(export.names, "users.json") or ""
        failures: list[LoadFailure] = []
        users = _user_names(_load(export, root + "users.json", failures))
        channels, skipped = self._channels(export, root, failures)
        yield from export.failures_for(lambda name: (None, self._kept(name, root, channels), None))
        days: dict[str, list[str]] = {}
        for n in export.names:
            parts = PurePosixPath(n[len(root):]).parts if n.startswith(root) else ()
            if len(parts) == 2 and _DAY_FILE.match(parts[1]):
                days.setdefault(parts[0], []).append(n)
        for folder in sorted(days):
            if folder in skipped:
                continue
            channel = channels.get(folder)
            if channel is None:
                failures.append(LoadFailure(uri=export.uri(root + folder), reason=(
                    "channel folder listed in none of channels.json, groups.json, mpims.json, dms.json; "
                    "its visibility is unknown, so it is not indexed")))
                continue
            kept = f"{self.name}:{channel.id}:"  # a day file that fails keeps the channel's indexed documents
            messages = [m for day in days[folder] for m in _messages(export, day, failures, kept)]
            for group in group_messages(messages, self.gap_s):
                yield self._item(channel, group, users)
        yield from failures

    def _kept(self, name: str, root: str, channels: dict[str, Channel]) -> str | None:
        """The id prefix of the documents a refused entry holds: a channel list holds all of them."""
        parts = PurePosixPath(name[len(root):] if name.startswith(root) else name).parts
        if len(parts) == 1 and parts[0] in _LISTINGS:
            return f"{self.name}:"
        if len(parts) == 2 and _DAY_FILE.match(parts[1]) and parts[0] in channels:
            return f"{self.name}:{channels[parts[0]].id}:"
        return None

    def _channels(self, export: Export, root: str, failures: list) -> tuple[dict[str, Channel], set[str]]:
        """Folder name -> channel, and the folders left out on purpose (private or direct when excluded)."""
        found: dict[str, Channel] = {}
        skipped: set[str] = set()
        for file, private, wanted in (("channels.json", False, True), ("groups.json", True, self.include_private),
                                      ("mpims.json", True, self.include_direct), ("dms.json", True, self.include_direct)):
            # a channel list that fails hides which channels exist: every indexed document stays
            for info in _load(export, root + file, failures, f"{self.name}:" if wanted else None):
                if not isinstance(info, dict) or not info.get("id"):
                    continue
                folder = str(info.get("name") or info["id"])
                if not wanted:
                    skipped.add(folder)
                    continue
                found[folder] = Channel(id=str(info["id"]), name=folder, private=private,
                                        members=tuple(str(m) for m in info.get("members") or ()))
        return found, skipped

    def _acl(self, channel: Channel) -> tuple[str, ...]:
        if not channel.private:
            return self.acl.for_path(channel.name)
        members_only = replace(self.acl, groups=(), public=False)
        return members_only.for_path(channel.name, carried=(f"slack:{channel.name}",))

    def _item(self, channel: Channel, messages: list[dict], users: dict[str, str]) -> SourceItem:
        first = messages[0]
        start = str(first.get("thread_ts") or first["ts"])
        doc_id = f"{self.name}:{channel.id}:{start}"
        stamp = start.replace(".", "")
        uri = (f"{self.workspace_url}/archives/{channel.id}/p{stamp}" if self.workspace_url
               else f"slack://{channel.name}/p{stamp}")
        names = {uid: users[uid] for m in messages for uid in _user_ids(m) if uid in users}
        digest = hashlib.sha256(json.dumps({"channel": channel.name, "messages": messages, "names": names},
                                           sort_keys=True).encode()).hexdigest()
        acl = self._acl(channel)

        def read() -> Document:
            return _document(channel, messages, users, id=doc_id, source=self.name, uri=uri,
                             content_hash=digest, acl=acl)

        return SourceItem(doc_id=doc_id, uri=uri, content_hash=digest, read=read, acl=acl)


def group_messages(messages: list[dict], gap_s: float) -> list[list[dict]]:
    """Threads by `thread_ts`, the rest into runs of messages at most `gap_s` seconds apart.

    Example:
        >>> m = [{"ts": "100.0"}, {"ts": "160.0"}, {"ts": "5000.0"}, {"ts": "200.0", "thread_ts": "200.0"}]
        >>> [[x["ts"] for x in g] for g in group_messages(m, 600)]
        [['100.0', '160.0'], ['200.0'], ['5000.0']]
    """
    threads: dict[str, list[dict]] = {}
    runs: list[list[dict]] = []
    for m in sorted(messages, key=lambda m: float(m["ts"])):
        if m.get("thread_ts"):
            threads.setdefault(str(m["thread_ts"]), []).append(m)
        elif runs and float(m["ts"]) - float(runs[-1][-1]["ts"]) <= gap_s:
            runs[-1].append(m)
        else:
            runs.append([m])
    groups = runs + list(threads.values())
    return sorted(groups, key=lambda g: float(g[0].get("thread_ts") or g[0]["ts"]))


def _load(export: Export, name: str, failures: list[LoadFailure], keep_prefix: str | None = None) -> list:
    """The JSON list in one entry; empty (with a report entry when it exists but is broken) otherwise.
    A broken entry's report entry keeps the indexed documents whose ids start with `keep_prefix`."""
    if name not in export:
        return []
    raw = export.try_read(name)
    if isinstance(raw, LoadFailure):
        failures.append(replace(raw, keep_prefix=keep_prefix))
        return []
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        failures.append(LoadFailure(uri=export.uri(name), reason=f"malformed JSON ({err}); export the workspace "
                                    "again", keep_prefix=keep_prefix))
        return []
    if not isinstance(data, list):
        failures.append(LoadFailure(uri=export.uri(name), reason=f"malformed JSON (a list was expected, found "
                                    f"{type(data).__name__}); export the workspace again", keep_prefix=keep_prefix))
        return []
    return data


def _messages(export: Export, name: str, failures: list[LoadFailure], keep_prefix: str | None = None) -> list[dict]:
    data = _load(export, name, failures, keep_prefix)
    valid = [m for m in data if _valid(m)]
    if len(valid) < len(data):
        failures.append(LoadFailure(uri=export.uri(name), reason=(
            f"{len(data) - len(valid)} messages without a valid ts, thread_ts or text were skipped")))
    return [m for m in valid if m.get("subtype") not in _SKIPPED_SUBTYPES]


def _valid(m) -> bool:
    """A message the connector can place and render: numeric `ts` (and `thread_ts`), text a string."""
    if not isinstance(m, dict) or not isinstance(m.get("text", ""), (str, type(None))):
        return False
    try:
        float(m.get("ts"))
        float(m.get("thread_ts") or 0)
        return True
    except (TypeError, ValueError):
        return False


def _user_names(users: list) -> dict[str, str]:
    names = {}
    for u in users:
        if isinstance(u, dict) and u.get("id"):
            profile = u.get("profile") or {}
            names[u["id"]] = (profile.get("real_name") or u.get("real_name") or profile.get("display_name")
                              or u.get("name") or u["id"])
    return names


def _user_ids(m: dict) -> list[str]:
    user = m.get("user")
    return [user] * isinstance(user, str) + re.findall(r"<@([A-Z0-9]+)", m.get("text") or "")


def _speaker(m: dict, users: dict[str, str]) -> str:
    uid = m.get("user") if isinstance(m.get("user"), str) else None
    profile = m.get("user_profile") if isinstance(m.get("user_profile"), dict) else {}
    return (users.get(uid) if uid else None) or profile.get("real_name") or m.get("username") or uid or "unknown"


def _render(text: str, users: dict[str, str]) -> str:
    """Slack markup to plain text: mentions, channel links, links and HTML entities."""
    text = re.sub(r"<@([A-Z0-9]+)(?:\|[^>]*)?>", lambda g: "@" + users.get(g.group(1), g.group(1)), text)
    text = re.sub(r"<#[A-Z0-9]+\|([^>]*)>", r"#\1", text)
    text = re.sub(r"<!(here|channel|everyone)[^>]*>", r"@\1", text)
    text = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r"\2 (\1)", text)
    text = re.sub(r"<(https?://[^>]+)>", r"\1", text)
    return html.unescape(text)


def _when(ts) -> datetime:
    return datetime.fromtimestamp(float(ts), tz=timezone.utc)


def _document(channel: Channel, messages: list[dict], users: dict[str, str], **fields) -> Document:
    lines = []
    for m in messages:
        text = _render(m.get("text") or "", users)
        files = [f.get("title") or f.get("name") for f in m.get("files") or () if isinstance(f, dict)]
        text += "".join(f" [file: {f}]" for f in files if f)
        lines.append(f"[{_when(m['ts']):%Y-%m-%d %H:%M}] {_speaker(m, users)}: {text.strip()}")
    first = messages[0]
    kind = "thread" if first.get("thread_ts") else "conversation"
    opening = _render(first.get("text") or "", users).strip().splitlines()
    words = " ".join((opening[0] if opening else "").split()[:10])
    speakers = list(dict.fromkeys(_speaker(m, users) for m in messages))
    return Document(
        text="\n".join(lines), title=f"#{channel.name} {kind} {_when(first['ts']):%Y-%m-%d}: {words}",
        updated_at=_when(max(float(m["ts"]) for m in messages)).isoformat(timespec="seconds"),
        metadata={"channel": channel.name, "channel_id": channel.id, "private": str(channel.private).lower(),
                  "kind": kind, "author": speakers[0], "participants": ", ".join(speakers),
                  "messages": str(len(messages)),
                  **({"members": ", ".join(users.get(u, u) for u in channel.members)} if channel.private else {})},
        **fields)
