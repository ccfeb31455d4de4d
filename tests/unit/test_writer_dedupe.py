"""storage.writer.TableSpec.dedupe: one row per key before a merge (pure, no database).

An ON CONFLICT DO UPDATE may touch a row only once per statement, and the row a batch keeps for a
key must not depend on how the batch was split: these are the rules the writer relies on."""

from __future__ import annotations

from storage.writer import AVERAGES, READINGS, TableSpec


def _spec(**kw: object) -> TableSpec:
    return TableSpec("t", ("k1", "k2", "v", "rev"), ("k1", "k2"), "ON CONFLICT DO NOTHING", **kw)  # type: ignore[arg-type]


def test_a_batch_without_a_key_twice_is_kept_whole_and_in_order() -> None:
    rows = [("a", 1, "x", 0), ("a", 2, "y", 0), ("b", 1, "z", 0)]
    assert _spec().dedupe(rows) == rows
    assert _spec(keep_last_by="rev").dedupe(rows) == rows


def test_insert_only_keeps_the_first_row_of_a_key_where_it_first_came() -> None:
    rows = [("a", 1, "first", 0), ("b", 1, "b", 0), ("a", 1, "second", 9)]
    assert _spec().dedupe(rows) == [("a", 1, "first", 0), ("b", 1, "b", 0)]
    assert READINGS.inserts_only and not AVERAGES.inserts_only


def test_keep_last_by_keeps_the_largest_revision_and_ties_go_to_the_later_row() -> None:
    rows = [("a", 1, "r1", 1), ("a", 1, "r3", 3), ("a", 1, "r2", 2), ("a", 1, "r3 again", 3)]
    assert _spec(keep_last_by="rev").dedupe(rows) == [("a", 1, "r3 again", 3)]


def test_last_wins_keeps_the_batch_s_last_row() -> None:
    rows = [("a", 1, "old", 5), ("b", 1, "b", 0), ("a", 1, "new", 0)]
    assert _spec(last_wins=True).dedupe(rows) == [("a", 1, "new", 0), ("b", 1, "b", 0)]


def test_a_one_column_key() -> None:
    spec = TableSpec("t", ("id", "v"), ("id",), "ON CONFLICT DO NOTHING")
    assert spec.dedupe([("x", 1), ("y", 2), ("x", 3)]) == [("x", 1), ("y", 2)]
