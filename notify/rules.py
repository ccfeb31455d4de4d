"""Routing rules as data: which violation events go to which channels, grouped how (pure).

A rules file (YAML, ``QUANTRAC_NOTIFY_RULES``; example in ``deploy/notify-rules.example.yaml``)
names channels (e-mail recipients, a webhook URL, a local file) and routes. A route matches
events by source or facility, parameter, kind and severity, and sends to its channels:

- an *episode* (one violation id: opened, updated, …, closed) is one message, sent at the first
  event of the episode that the route matches; its later events are folded into it; episodes of
  one source that a round finds together (a plant upset: several parameters at once) share one
  message (notify/store.py);
- rate limit: after a message for (route, source, rule), further episodes of that key within
  ``group_window_minutes`` are logged as *grouped* into it, not sent (a flapping limit is one
  message, not a storm);
- ``notify_close``: also a message when an announced episode closes;
- ``escalate``: a violation still unacknowledged ``after_minutes`` after its episode message
  goes, once, to the escalation channels (a grouped episode rides on its group's message).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from thresholds.severity import Severity

NAME = r"^[A-Za-z0-9_.-]{1,64}$"
KINDS = ("exceedance", "warning", "outage")
OPENING = frozenset({"opened", "warning", "outage_opened"})
CLOSING = frozenset({"closed", "outage_closed"})


class RulesError(ValueError):
    """The rules file cannot be used; the message names the file and the offending entry."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmailChannel(_Model):
    type: Literal["email"]
    to: tuple[Annotated[str, Field(pattern=r"^[^@\s,<>]+@[^@\s,<>]+$")], ...] = Field(min_length=1)

    def recipient(self) -> str:
        return ", ".join(self.to)


class WebhookChannel(_Model):
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://[^\s]+$")

    def recipient(self) -> str:
        """The URL without user information or query (either may carry a token)."""
        scheme, _, rest = self.url.partition("://")
        host_path = rest.split("@", 1)[-1].split("?", 1)[0]
        return f"{scheme}://{host_path}"


class FileChannel(_Model):
    """One JSON line per message appended to ``path``: a local sink (the demo, a log shipper)."""

    type: Literal["file"]
    path: Path

    def recipient(self) -> str:
        return str(self.path)


Channel = Annotated[EmailChannel | WebhookChannel | FileChannel, Field(discriminator="type")]


class Match(_Model):
    """Every given criterion must hold; an empty list or an unset field matches anything."""

    sources: tuple[str, ...] = ()
    facilities: tuple[str, ...] = ()
    parameters: tuple[str, ...] = ()
    kinds: tuple[Literal["exceedance", "warning", "outage"], ...] = ()
    min_severity: Severity | None = Field(
        None, description="Decree 45 band at least this (sources only; ambient stations: none)"
    )
    min_ratio: float | None = Field(None, gt=0, description="value/limit at least this")


class Escalation(_Model):
    after_minutes: float = Field(gt=0)
    channels: tuple[str, ...] = Field(min_length=1)


class Route(_Model):
    name: str = Field(pattern=NAME)
    match: Match = Match()
    channels: tuple[str, ...] = Field(min_length=1)
    group_window_minutes: float = Field(60.0, ge=0)
    notify_close: bool = False
    escalate: Escalation | None = None

    @property
    def group_window(self) -> timedelta:
        return timedelta(minutes=self.group_window_minutes)


class Rules(_Model):
    channels: dict[Annotated[str, Field(pattern=NAME)], Channel] = {}
    routes: tuple[Route, ...] = ()

    @model_validator(mode="after")
    def _names_resolve(self) -> Rules:
        names = [r.name for r in self.routes]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"route name '{dup}' is used twice")
        for r in self.routes:
            used = list(r.channels) + (list(r.escalate.channels) if r.escalate else [])
            for ch in used:
                if ch not in self.channels:
                    known = ", ".join(sorted(self.channels)) or "none defined"
                    raise ValueError(f"route '{r.name}': channel '{ch}' is not one of: {known}")
        return self

    def channel_types(self) -> set[str]:
        return {c.type for c in self.channels.values()}


def parse_rules(data: Any, origin: str = "<rules>") -> Rules:
    """Validate a parsed rules document; every problem is named by its place in the file."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise RulesError(f"{origin}: want a mapping with 'channels' and 'routes'")
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'top level'}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise RulesError(f"{origin}: {problems}") from None


def load_rules(path: Path | None) -> Rules:
    """The rules at ``path``; no path means no routes (the notifier then sends nothing)."""
    if path is None:
        return Rules()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"{path}: cannot read the rules file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"{path}: not valid YAML ({exc})") from None
    return parse_rules(data, str(path))


@dataclass(frozen=True)
class EventView:
    """The facts about one stored violation event that routing looks at."""

    violation_id: str
    seq: int
    event: str
    source_id: str
    facility_id: str | None
    parameter: str
    rule_id: str
    severity: str
    ratio: float | None

    @property
    def kind(self) -> str:
        """As storage/rows.py: violation_row stores it."""
        if self.event.startswith("outage"):
            return "outage"
        return "warning" if self.event == "warning" else "exceedance"


def matches(m: Match, ev: EventView) -> bool:
    if m.sources and ev.source_id not in m.sources:
        return False
    if m.facilities and ev.facility_id not in m.facilities:
        return False
    if m.parameters and ev.parameter not in m.parameters:
        return False
    if m.kinds and ev.kind not in m.kinds:
        return False
    if m.min_severity is not None:
        try:
            rank = Severity(ev.severity).rank
        except ValueError:  # a severity this release does not know: not provably severe enough
            return False
        if rank < m.min_severity.rank:
            return False
    return m.min_ratio is None or (ev.ratio is not None and ev.ratio >= m.min_ratio)


class Action(StrEnum):
    SKIP = "skip"  # the route does not want this event
    SEND = "send"  # the episode's message
    GROUP = "group"  # a new episode inside the rate-limit window: logged, folded into the last
    FOLD = "fold"  # a later event of an announced episode: nothing new to send
    CLOSE = "close"  # the announced episode closed and the route asks to be told


def decide(
    route: Route,
    ev: EventView,
    *,
    episode_announced: bool,
    last_group_message_at: datetime | None,
    now: datetime,
) -> Action:
    """What ``route`` does with ``ev``, given what it already did for this episode and key.

    ``episode_announced``: the route already has a message (sent, pending or grouped) for this
    violation id. ``last_group_message_at``: when the route last queued a message for this
    event's (source, rule), if ever.
    """
    if ev.event in CLOSING:
        return Action.CLOSE if route.notify_close and episode_announced else Action.SKIP
    if episode_announced:
        return Action.FOLD if matches(route.match, ev) else Action.SKIP
    if not matches(route.match, ev):
        return Action.SKIP
    if last_group_message_at is not None and now - last_group_message_at < route.group_window:
        return Action.GROUP
    return Action.SEND


def group_key(route: str, ev: EventView) -> str:
    return f"{route}|{ev.source_id}|{ev.rule_id}"


def dedupe_key(kind: str, route: str, channel: str, violation_id: str) -> str:
    """One delivery per (kind, route, channel, violation): what makes a re-plan a no-op."""
    return f"{kind}:{route}:{channel}:{violation_id}"


def demo_rules(sink: Path) -> dict[str, Any]:
    """The demo's rules: every exceedance and outage to a local file (nothing leaves the
    machine); the console's delivery log shows them, grouping and escalation included."""
    return {
        "channels": {
            "demo-sink": {"type": "file", "path": str(sink)},
            "demo-escalation": {"type": "file", "path": str(sink)},
        },
        "routes": [
            {
                "name": "demo",
                "match": {"kinds": ["exceedance", "outage"]},
                "channels": ["demo-sink"],
                "group_window_minutes": 60,
                "notify_close": True,
                "escalate": {"after_minutes": 15, "channels": ["demo-escalation"]},
            }
        ],
    }
