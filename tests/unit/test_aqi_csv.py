"""The ``quantrac aqi`` core: CSV of hourly means in, hourly or daily VN_AQI out."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest

from thresholds.aqi import DAY_MIN_HOURS, O3_8H_MIN_HOURS
from thresholds.aqi_csv import AQI_COLUMNS, AqiCsvError, run_aqi_csv
from thresholds.averaging import LOCAL_TZ

# QĐ 1459 §2.3 a PM2.5 series (09:00 … 20:00); at 20:00 also O3 and NO2 of §2.3 b.
PM25 = [26.9, 24.7, 20.5, 23.5, 19.5, 16.5, 19.0, 16.5, 20.3, 22.4, 19.6, 20.6]


def example_csv() -> str:
    lines = ["time,SO2,NO2,CO,O3,PM10,PM2.5,note"]
    for k, pm in enumerate(PM25):
        hour = 9 + k
        gases = "118.7,,136.1" if hour == 20 else ",,"
        stamp = f"2026-11-24T{hour:02d}:00" + ("+07:00" if hour == 20 else "")
        lines.append(f"{stamp},,{gases},,{pm},n{hour}")
    return "\n".join(lines) + "\n"


def run(text: str, daily: bool = False) -> list[dict[str, str]]:
    out = io.StringIO()
    run_aqi_csv(io.StringIO(text), out, daily)
    return list(csv.DictReader(io.StringIO(out.getvalue())))


def test_hourly_reproduces_the_decision_example() -> None:
    rows = run(example_csv())
    assert list(rows[0]) == [
        "time",
        "SO2",
        "NO2",
        "CO",
        "O3",
        "PM10",
        "PM2.5",
        "note",
        *AQI_COLUMNS,
    ]
    last = rows[-1]
    assert last["note"] == "n20"  # other columns are copied through
    # QĐ 1459 §2.3: NowCast 20.3 → AQI(PM2.5) 41; O3 136.1 → 43; NO2 118.7 → 59.35 → 59
    assert (last["AQI_PM2.5"], last["AQI_O3"], last["AQI_NO2"]) == ("41", "43", "59")
    assert last["AQI"] == "59" and last["category"] == "moderate"
    assert last["AQI_SO2"] == "" and last["AQI_PM10"] == ""


def test_hourly_first_hour_has_no_nowcast() -> None:
    rows = run(example_csv())
    assert rows[0]["AQI"] == "" and rows[0]["category"] == ""  # only c1 of c1..c3
    assert rows[1]["AQI_PM2.5"] != ""  # c1 and c2: 2 of 3


@pytest.mark.parametrize(
    ("stamps", "has_nowcast"),
    [
        pytest.param(["09:00", "11:00"], True, id="c1-c3-is-2-of-3"),
        pytest.param(["08:00", "11:00"], False, id="c1-c4-is-1-of-3"),
    ],
)
def test_nowcast_looks_up_hours_by_time(stamps: list[str], has_nowcast: bool) -> None:
    text = "time,PM2.5\n" + "".join(f"2026-11-24T{s},30\n" for s in stamps)
    assert (run(text)[-1]["AQI_PM2.5"] != "") is has_nowcast


def _day_csv(first: datetime, values: list[float], no2_peak_at: int = 5) -> list[str]:
    lines = []
    for k, v in enumerate(values):
        stamp = datetime.fromtimestamp(first.timestamp() + k * 3600, LOCAL_TZ)
        lines.append(f"{stamp:%Y-%m-%dT%H:%M},{v:.1f},{130.8 if k == no2_peak_at else 20}")
    return lines


def test_daily_reproduces_pm25_example_on_the_calendar_day() -> None:
    # QĐ 1459 §2.2.2 a: the PM 24-h mean of the hourly values labelled 01:00 … 00:00 (hour ends),
    # i.e. the hours starting 00:00 … 23:00 local; §2.3 c: PM2.5 24-h 55.7 → AQIᵈ 110.
    values = [55.7 + (5 if k % 2 else -5) for k in range(24)]
    lines = ["time,PM2.5,NO2", *_day_csv(datetime(2026, 11, 24, 0, tzinfo=LOCAL_TZ), values)]
    rows = run("\n".join(lines) + "\n", daily=True)
    assert [r["date"] for r in rows] == ["2026-11-24"]  # no one-hour row for 2026-11-23
    day = rows[0]
    assert day["hours"] == "24"
    assert day["PM2.5_24h"] == "55.70"
    assert day["NO2_max1h"] == "130.80"
    assert (day["AQI_PM2.5"], day["AQI_NO2"], day["AQI"]) == ("110", "65", "110")
    assert day["category"] == "poor"


def test_daily_a_day_below_the_completeness_rule_is_printed_empty() -> None:
    # The decision states no completeness; quantrac's rule is 18 of 24 hourly means.
    first = datetime(2026, 11, 24, 0, tzinfo=LOCAL_TZ)
    lines = ["time,PM2.5,NO2", *_day_csv(first, [40.0] * (DAY_MIN_HOURS - 1))]
    (day,) = run("\n".join(lines) + "\n", daily=True)
    assert day["hours"] == str(DAY_MIN_HOURS - 1)
    assert (day["PM2.5_24h"], day["AQI"], day["category"]) == ("", "", "")


def test_daily_prints_no_row_for_a_day_without_data() -> None:
    # 2026-11-25 has a row in the file but no value; 2026-11-26 has no row at all.
    first = datetime(2026, 11, 24, 0, tzinfo=LOCAL_TZ)
    lines = ["time,PM2.5,NO2", *_day_csv(first, [40.0] * 24), "2026-11-25T00:00,,"]
    lines += _day_csv(datetime(2026, 11, 27, 0, tzinfo=LOCAL_TZ), [40.0] * 24)
    rows = run("\n".join(lines) + "\n", daily=True)
    assert [r["date"] for r in rows] == ["2026-11-24", "2026-11-27"]


def test_daily_header_goes_to_err_and_states_the_rules() -> None:
    out, err = io.StringIO(), io.StringIO()
    run_aqi_csv(io.StringIO("time,PM2.5\n2026-11-24T00:00,3\n"), out, True, err=err)
    assert out.getvalue().startswith("date,hours,")  # stdout stays plain CSV
    header = err.getvalue().splitlines()
    assert header and all(line.startswith("# ") for line in header)
    text = err.getvalue()
    assert "00:00-23:00" in text and "Decision 1459 states none" in text
    assert f"{DAY_MIN_HOURS} of the day's 24" in text and f"{O3_8H_MIN_HOURS} of 8" in text


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        pytest.param("SO2,PM2.5\n1,2\n", 1, "time", id="no-time-column"),
        pytest.param("time,PM2.5\n2026-11-24T01:00,abc\n", 2, "PM2.5", id="not-a-number"),
        pytest.param("time,PM2.5\n2026-11-24T01:00,-3\n", 2, "PM2.5", id="negative"),
        pytest.param("time,PM2.5\n24/11/2026 01:00,3\n", 2, "time", id="bad-time"),
        pytest.param("time,PM2.5\n2026-11-24T01:30,3\n", 2, "time", id="not-hour-start"),
        pytest.param("time,PM2.5\n2026-11-24T01:00,3,4\n", 2, None, id="extra-field"),
        pytest.param(
            "time,PM2.5\n2026-11-24T01:00,3\n\n2026-11-23T18:00Z,4\n", 4, "time",
            id="duplicate-hour-across-offsets",
        ),
    ],
)  # fmt: skip
def test_malformed_rows_name_line_and_column(text: str, line: int, column: str | None) -> None:
    with pytest.raises(AqiCsvError) as info:
        run(text)
    assert info.value.line == line
    assert info.value.column == column
    assert f"line {line}" in str(info.value)
