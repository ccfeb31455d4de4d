"""The simulator's weekly calibration window and the plans that keep clear of it."""

from datetime import UTC, datetime, timedelta

from core.records import DeviceStatus
from stations.simulator import Series, calibrating, start_clear_of_calibration, status_at

SO2 = Series("HD-KK-01", "SO2", "µg/Nm3", 300, base=20.0, amplitude=0.0, noise=0.1)
# Monday 2026-12-07 02:00 local (UTC+7) is Sunday 2026-12-06 19:00 UTC.
CALIBRATION = datetime(2026, 12, 6, 19, 0, tzinfo=UTC)


def test_calibration_is_monday_0200_to_0230_local() -> None:
    assert calibrating(CALIBRATION)
    assert calibrating(CALIBRATION + timedelta(minutes=25))
    assert not calibrating(CALIBRATION + timedelta(minutes=30))
    assert not calibrating(CALIBRATION - timedelta(minutes=5))
    assert not calibrating(CALIBRATION - timedelta(days=1))  # Sunday 02:00 local
    assert status_at(SO2, CALIBRATION + timedelta(minutes=10), 7) == DeviceStatus.CALIBRATING


def test_a_plan_start_steps_back_until_its_hours_hold_no_calibration() -> None:
    # the 8-hour plan of a test run at 22:20 UTC that Sunday would hold the window (it failed CI)
    latest = datetime(2026, 12, 6, 14, 20, tzinfo=UTC)
    start = start_clear_of_calibration(latest, 8)
    assert start == datetime(2026, 12, 6, 11, 0, tzinfo=UTC)  # ends at 19:00, the window's start
    assert not any(calibrating(start + timedelta(minutes=m)) for m in range(0, 8 * 60, 5))


def test_a_plan_clear_of_the_window_starts_at_the_hour_asked() -> None:
    assert start_clear_of_calibration(CALIBRATION + timedelta(hours=1, minutes=9), 7) == (
        CALIBRATION + timedelta(hours=1)
    )
    assert start_clear_of_calibration(datetime(2026, 12, 3, 5, 59, tzinfo=UTC), 24) == datetime(
        2026, 12, 3, 5, 0, tzinfo=UTC
    )
