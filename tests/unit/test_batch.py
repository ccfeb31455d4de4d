"""streams/batch.py: which events a restored state has already applied (pure, fake table)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from streams.batch import Batch


@dataclass
class FakeTable:
    name: str = "t"
    data: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        return self.data.get(key)


@dataclass
class Message:
    offset: int
    partition: int = 0


@dataclass
class Event:
    message: Message


def slot_state(table: FakeTable, key: str, offsets: list[int]) -> list[bool]:
    """For each event offset in one batch: was it applied (True) or skipped as done?"""
    batch, applied = Batch(), []
    for offset in offsets:
        event = Event(Message(offset))
        slot = batch.slot(table, key, event, lambda s: s or [], lambda s: s)
        applied.append(slot is not None)
        if slot is not None:
            batch.set(slot, event, [*slot.state, offset])
    return applied


@pytest.mark.parametrize(
    ("stored_offset", "offsets", "applied"),
    [
        (None, [0, 1, 2], [True, True, True]),  # nothing stored: everything is new
        (5, [4, 5, 6, 7], [False, False, True, True]),  # re-delivered up to the stored offset
        # one event carrying several items for the key (a QcBatch): all of them are applied
        (5, [6, 6, 6, 7], [True, True, True, True]),
        (6, [6, 6, 7], [False, False, True]),  # ... or all skipped
    ],
)
def test_events_up_to_the_stored_offset_are_skipped(
    stored_offset: int | None, offsets: list[int], applied: list[bool]
) -> None:
    table = FakeTable()
    if stored_offset is not None:
        table.data["k"] = {"o": stored_offset, "s": []}
    assert slot_state(table, "k", offsets) == applied
