"""Every report states its method, so anyone can re-derive each number from the raw data.

The method section lists: period boundaries and time zone, how expected readings are counted,
the averaging rule, the completeness threshold, which QC flags are excluded, how exceedances and
outage hours are counted, and the legal basis of every limit the report applies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.records import QcFlag
from reports.i18n import Lang, t
from reports.model import Column, Section
from thresholds.annual import MIN_DAY_FRACTION
from thresholds.aqi import DAY_HOURS, DAY_MIN_HOURS, O3_8H_MIN_HOURS
from thresholds.limits import Limit
from thresholds.reference_o2 import ReferenceO2, StandardConditions

EXCLUDED_FLAGS = tuple(f.value for f in QcFlag if f is not QcFlag.VALID)


def _pick(lang: Lang, vi: str, en: str) -> str:
    return en if lang is Lang.EN else vi


def method_rows(
    *,
    lang: Lang,
    timezone: str,
    threshold: float,
    limits: Iterable[Limit] = (),
    outage: bool = False,
    aqi: bool = False,
    status: bool = False,
    stack: StackMethod | None = None,
) -> list[tuple[str, str]]:
    flags = ", ".join(EXCLUDED_FLAGS)
    rows = [
        (
            t("m.period", lang),
            _pick(
                lang,
                f"Ngày và tháng theo giờ địa phương ({timezone}); kỳ là [00:00 ngày đầu, 00:00 "
                "ngày sau ngày cuối). Thời gian trong báo cáo là giờ địa phương.",
                f"Days and months in local time ({timezone}); a period is [00:00 of its first "
                "day, 00:00 after its last day). Times in this report are local.",
            ),
        ),
        (
            t("m.expected", lang),
            _pick(
                lang,
                "Số bản tin kỳ vọng = số mốc thời gian của chu kỳ truyền (theo danh mục nguồn) "
                "trong kỳ, tính đến thời điểm lập nếu kỳ chưa kết thúc. Tỷ lệ đầy đủ = số bản tin "
                "hợp lệ / số kỳ vọng (tối đa 1).",
                "Expected readings = the reporting cadence's time slots (from the source "
                "registry) in the period, up to the time of the report if the period is still "
                "running. Completeness = valid readings / expected (at most 1).",
            ),
        ),
        (
            t("m.excluded", lang),
            _pick(
                lang,
                f"Chỉ bản tin có cờ 'valid' được tính; bị loại: {flags}. Bản tin thiết bị báo "
                "trạng thái 01 (hiệu chuẩn) hoặc 02 (lỗi) không bao giờ hợp lệ. Bản tin cán bộ "
                "vận hành loại bỏ thủ công (mục Đánh giá thủ công) cũng bị loại; cờ QA/QC tự "
                "động của chúng giữ nguyên và được đếm riêng.",
                f"Only readings flagged 'valid' count; excluded: {flags}. Readings with device "
                "status 01 (calibrating) or 02 (error) are never valid. Readings an operator "
                "invalidated by hand (section Manual validation) are excluded too; their "
                "automatic QC flag is kept and counted apart.",
            ),
        ),
        (
            t("m.averaging", lang),
            _pick(
                lang,
                "Trung bình 1 giờ: trung bình số học các bản tin hợp lệ trong giờ đồng hồ địa "
                "phương. Trung bình 8 giờ (QCVN 05:2023 mục 1.3.7): trung bình các giá trị 1 giờ "
                "của 8 giờ liên tục kết thúc tại giờ đang xét, tính mỗi giờ. Trung bình 24 giờ "
                "(mục 1.3.8, 'một ngày đêm'): ngày lịch địa phương 00:00–24:00; mỗi ngày vượt là "
                "một lần vượt. Trung bình 24 giờ trượt chỉ dùng để cảnh báo sớm và hiển thị. "
                f"Trung bình năm (mục 1.3.9): trung bình các giá trị ngày hợp lệ của năm dương "
                f"lịch, hợp lệ khi có ≥ {MIN_DAY_FRACTION:.0%} số ngày; chỉ đánh giá khi năm đã "
                "kết thúc. Giá trị trung bình lấy từ bảng averages (lần sửa mới nhất).",
                "1-hour mean: arithmetic mean of the valid readings in the local clock hour. "
                "8-hour mean (QCVN 05:2023 §1.3.7): mean of the 1-hour means of the 8 consecutive "
                "hours ending with the hour, evaluated hourly. 24-hour mean (§1.3.8, 'one "
                "day-and-night'): the local calendar day 00:00–24:00; each exceeding day is one "
                "exceedance. Rolling 24-hour means serve early warning and display only. Annual "
                "mean (§1.3.9): mean of the calendar year's valid daily means, valid with at least"
                f" {MIN_DAY_FRACTION:.0%} of the days, assessed once the year is over. Averages "
                "are read from the averages table (latest revision).",
            ),
        ),
        (
            t("m.completeness", lang),
            _pick(
                lang,
                f"Giá trị trung bình chỉ hợp lệ khi số mẫu hợp lệ ≥ {threshold:.0%} số mẫu kỳ "
                "vọng; giá trị không hợp lệ không được dùng để kết luận tuân thủ hay vượt.",
                f"An average is valid only with at least {threshold:.0%} of the expected samples;"
                " invalid averages are used neither for compliance nor for exceedance.",
            ),
        ),
        (
            t("m.exceedance", lang),
            _pick(
                lang,
                "Một giá trị trung bình hợp lệ vượt khi lớn hơn giới hạn trên hoặc nhỏ hơn giới "
                "hạn dưới. Tỷ lệ = giá trị / giới hạn trên (giới hạn dưới / giá trị). Số giờ vượt"
                " = số giá trị vượt (mỗi giá trị 1 giờ, 8 giờ được đánh giá mỗi giờ) và 24 giờ "
                "cho mỗi ngày vượt của giới hạn trung bình 24 giờ (ngày).",
                "A valid average exceeds when above the upper or below the lower limit. Ratio = "
                "value / upper limit (lower limit / value). Hours in exceedance = number of "
                "exceeding averages (1- and 8-hour means are evaluated hourly), and 24 hours"
                " per exceeding day for 24-hour (daily) limits.",
            ),
        ),
    ]
    if outage:
        rows.append(
            (
                t("m.outage", lang),
                _pick(
                    lang,
                    "Theo mốc chu kỳ truyền của nguồn: một mốc có bản tin trạng thái 01 tính là "
                    "hiệu chuẩn; nếu không, có trạng thái 02 tính là lỗi thiết bị; mốc không có "
                    "bản tin nào của bất kỳ thông số nào tính là không có dữ liệu. Giờ = số mốc × "
                    "chu kỳ / 3600.",
                    "On the source's reporting slots: a slot with any status-01 reading counts "
                    "as calibration; otherwise one with any status-02 reading as device error; a "
                    "slot with no reading of any parameter as silence. Hours = slots × interval /"
                    " 3600.",
                ),
            )
        )
    if aqi:
        rows.append(
            (
                t("m.aqi", lang),
                _pick(
                    lang,
                    "VN_AQI ngày theo Quyết định 1459/QĐ-TCMT (12/11/2019), mức và màu theo Bảng 1."
                    " Ngày là ngày lịch địa phương: các giờ bắt đầu 00:00–23:00 (Quyết định ghi "
                    "1:00 … 0:00 theo giờ kết thúc); trung bình 8 giờ O3 của các giờ đầu ngày dùng"
                    " cả giờ của ngày trước. Quy tắc đầy đủ (của quantrac, Quyết định không quy "
                    f"định): mỗi giá trị ngày cần {DAY_MIN_HOURS}/{DAY_HOURS} giá trị 1 giờ, mỗi "
                    f"trung bình 8 giờ O3 cần {O3_8H_MIN_HOURS}/8. Ngày không có AQI tính là "
                    "'không có dữ liệu'.",
                    "Daily VN_AQI per Decision 1459/QĐ-TCMT (12/11/2019); categories and colours "
                    "per its Table 1. The day is the local calendar day: hours starting "
                    "00:00–23:00 (the decision's 1:00 … 0:00 label hour ends); the O3 8-h means "
                    "of the day's first hours include hours of the previous day. Completeness "
                    "(quantrac's rule; the decision states none): each daily statistic needs "
                    f"{DAY_MIN_HOURS} of {DAY_HOURS} hourly means, each O3 8-h mean "
                    f"{O3_8H_MIN_HOURS} of 8. Days without an AQI count as 'no data'.",
                ),
            )
        )
    if status:
        rows.append(
            (
                t("m.status", lang),
                _pick(
                    lang,
                    "Không truyền dữ liệu: không có bản tin nào trong kỳ. Vi phạm: có ít nhất một "
                    "vi phạm vượt giới hạn trùng với kỳ. Tuân thủ: các trường hợp còn lại.",
                    "Did not report: no reading in the period. Violated: at least one exceedance "
                    "violation overlapping the period. Complied: all others.",
                ),
            )
        )
    if stack is not None:
        rows += stack_method_rows(lang, stack)
    for lim in limits:
        unverified = "" if lim.verified else _pick(lang, " [CHƯA KIỂM CHỨNG]", " [UNVERIFIED]")
        note = f" — {lim.note}" if lim.note else ""
        rows.append((f"{t('m.limit', lang)} {lim.rule_id}", f"{lim.legal_basis}{unverified}{note}"))
    return rows


@dataclass(frozen=True)
class StackMethod:
    """What a stack's report says about reference O2 and standard conditions (issue 19)."""

    reference: ReferenceO2 | None  # None: compared as measured
    parameters: tuple[str, ...]  # corrected parameters
    conditions: StandardConditions | None  # of the regulation the stack is held to
    reported: tuple[str, ...]  # which of Temp, P, H2O, O2 the stack reports
    max_o2: float = 20.9


def stack_method_rows(lang: Lang, m: StackMethod) -> list[tuple[str, str]]:
    """The reference-O2 and standard-conditions rows of a stack's method section."""
    if m.reference is None:
        o2 = _pick(
            lang,
            "Không hiệu chỉnh oxy: giấy phép và bảng O2 tham chiếu (thresholds/data/"
            "reference_o2.yaml) không nêu O2 tham chiếu cho ngành/nhiên liệu của nguồn; nồng độ "
            "được so sánh như đo.",
            "No oxygen correction: neither the permit nor the reference-O2 table (thresholds/"
            "data/reference_o2.yaml) names a reference O2 for the source's sector/fuel; "
            "concentrations are compared as measured.",
        )
    else:
        params = ", ".join(m.parameters)
        o2 = _pick(
            lang,
            f"{params}: so sánh giá trị quy về O2 tham chiếu C_ref = C_đo × (21 − O2_ref) / "
            f"(21 − O2_đo), O2_ref = {m.reference.o2_percent:g} % ({m.reference.basis}"
            f"{'' if m.reference.verified else ', CHƯA KIỂM CHỨNG'}); O2_đo là trung bình O2 "
            "của chính nguồn trong cùng khoảng tính trung bình. Khoảng không có trung bình O2 "
            f"hợp lệ, hoặc O2 ≥ {m.max_o2:g} %, không được đánh giá (nêu lý do). Vi phạm và "
            "báo cáo ghi cả giá trị đo, O2 đo và giá trị hiệu chỉnh.",
            f"{params}: compared at the reference O2, C_ref = C_measured × (21 − O2_ref) / "
            f"(21 − O2_measured), O2_ref = {m.reference.o2_percent:g} % ({m.reference.basis}"
            f"{'' if m.reference.verified else ', UNVERIFIED'}); O2_measured is the source's "
            "own O2 average over the same averaging window. A window without a valid O2 "
            f"average, or with O2 ≥ {m.max_o2:g} %, is not judged (the reason is listed). "
            "Violations and reports show the measured value, the measured O2 and the corrected "
            "value.",
        )
    reported = ", ".join(m.reported) or _pick(lang, "không", "none")
    cond = (
        m.conditions.text()
        if m.conditions
        else _pick(
            lang, "quy chuẩn không nêu (chưa xác định)", "not stated by the regulation (unknown)"
        )
    )
    std = _pick(
        lang,
        f"Điều kiện tiêu chuẩn: {cond}. quantrac nhận nồng độ đã quy về mg/Nm³ từ thiết bị đo "
        "của nguồn và không tự quy đổi nhiệt độ, áp suất hay độ ẩm (khô/ướt); nguồn báo "
        f"cáo: {reported}.",
        f"Standard conditions: {cond}. quantrac takes concentrations already in mg/Nm³ from "
        "the source's analyser and converts neither temperature, pressure nor moisture "
        f"(dry/wet basis) itself; the source reports: {reported}.",
    )
    return [(t("m.reference_o2", lang), o2), (t("m.standard_conditions", lang), std)]


def method_section(rows: list[tuple[str, str]]) -> Section:
    return Section("sec.method", [Column("item"), Column("value")], rows)
