"""UTCDateTime, the one datetime column type of the state tables: what is read back is an aware
UTC datetime, whatever was written (naive is taken as UTC; another offset is the same instant)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa

from resources.infra.state_db import UTCDateTime

EVENTS = sa.Table("events", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("at", UTCDateTime()))


def test_reads_are_aware_utc_and_writes_of_any_offset_are_the_same_instant(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'events.db'}")
    noon = datetime(2026, 3, 1, 12, tzinfo=UTC)
    try:
        EVENTS.create(engine)
        with engine.begin() as conn:
            conn.execute(EVENTS.insert(), [
                {"id": 1, "at": noon},
                {"id": 2, "at": noon.replace(tzinfo=None)},  # naive: taken as UTC
                {"id": 3, "at": noon.astimezone(timezone(timedelta(hours=-7)))},
                {"id": 4, "at": None},
            ])
            rows = conn.execute(sa.select(EVENTS.c.at).order_by(EVENTS.c.id)).scalars().all()
            stored = conn.execute(sa.text("SELECT DISTINCT at FROM events WHERE at IS NOT NULL")).scalars().all()
            later = conn.execute(sa.select(EVENTS.c.id).where(EVENTS.c.at >= noon.astimezone(timezone(timedelta(hours=5)))))
            assert sorted(later.scalars()) == [1, 2, 3]  # comparisons convert their parameter too
    finally:
        engine.dispose()
    assert rows == [noon, noon, noon, None]
    assert all(at.tzinfo is UTC for at in rows[:3])
    assert stored == ["2026-03-01 12:00:00.000000"]  # SQLite holds the UTC wall clock, as before
