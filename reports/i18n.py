"""Report wording: Vietnamese by default, English on request.

Keys are the column and section keys of the report model. An unknown key renders as itself, so a
missing translation shows up in review instead of crashing a report a regulator is waiting for.
"""

from __future__ import annotations

from enum import StrEnum


class Lang(StrEnum):
    VI = "vi"
    EN = "en"


_TEXT: dict[str, tuple[str, str]] = {
    # titles
    "title.compliance": ("Báo cáo tuân thủ của nguồn quan trắc", "Source compliance report"),
    "title.air-quality": (
        "Báo cáo chất lượng không khí trạm quan trắc",
        "Station air quality report",
    ),
    "title.water-quality": (
        "Báo cáo chất lượng nước mặt trạm quan trắc",
        "Station surface water quality report",
    ),
    "title.province": ("Tổng hợp toàn tỉnh", "Province summary"),
    "title.export": ("Xuất dữ liệu quan trắc", "Monitoring data export"),
    "title.evidence": ("Hồ sơ chứng cứ vi phạm", "Violation evidence package"),
    "period": ("Kỳ báo cáo", "Period"),
    "timezone": ("Múi giờ", "Time zone"),
    "generated_at": ("Thời điểm lập", "Generated at"),
    "subject": ("Đối tượng", "Subject"),
    # sections
    "sec.summary": ("Thông tin chung", "Summary"),
    "sec.completeness": ("Mức đầy đủ dữ liệu", "Data completeness"),
    "sec.limits": ("Giới hạn áp dụng và căn cứ pháp lý", "Limits and legal basis"),
    "sec.statistics": ("Thống kê giá trị trung bình", "Average statistics"),
    "sec.exceedances": (
        "Vượt giới hạn theo thời gian trung bình",
        "Exceedances by averaging period",
    ),
    "sec.violations": ("Vi phạm", "Violations"),
    "sec.acknowledgements": ("Xác nhận vi phạm", "Acknowledgements"),
    "sec.outages": ("Thời gian mất dữ liệu theo tháng", "Outage hours per month"),
    "sec.daily": ("Trung bình ngày", "Daily averages"),
    "sec.hourly": ("Trung bình 1 giờ", "Hourly averages"),
    "sec.aqi_daily": ("VN_AQI ngày", "Daily VN_AQI"),
    "sec.aqi_categories": ("Số ngày theo mức AQI", "Days per AQI category"),
    "sec.water_daily": (
        "Loại nước (QCVN 08:2023) và VN_WQI theo ngày",
        "Daily water class (QCVN 08:2023) and VN_WQI",
    ),
    "sec.water_classes": ("Số ngày theo loại nước", "Days per water class"),
    "sec.wqi_categories": ("Số ngày theo mức VN_WQI", "Days per VN_WQI band"),
    "water_class": ("Loại nước", "Water class"),
    "target_class": ("Loại mục tiêu", "Target class"),
    "water_alert": ("Cảnh báo chất lượng nước", "Water quality alert"),
    "wqi": ("VN_WQI", "VN_WQI"),
    "wqi.below_minimum": (
        "VN_WQI dưới mức tối thiểu 3/5 nhóm (QĐ 1460): tham khảo",
        "VN_WQI below the 3-of-5-groups minimum (Decision 1460): for information",
    ),
    "sec.annual": (
        "Trung bình năm (năm dương lịch, từ trung bình ngày)",
        "Annual means (calendar year, from daily means)",
    ),
    "sec.province": ("Tình trạng tuân thủ các nguồn", "Compliance status of sources"),
    "sec.readings": ("Số liệu đo", "Readings"),
    "sec.averages": ("Giá trị trung bình", "Averages"),
    "sec.method": ("Phương pháp tính", "Method"),
    # manual validation (issue 21): reports/manual.py
    "sec.manual_validation": (
        "Đánh giá số liệu thủ công (loại bỏ / khôi phục)",
        "Manual validation (invalidated / restored periods)",
    ),
    "note.manual_validation": (
        "Các quyết định của cán bộ vận hành có khoảng thời gian giao với kỳ báo cáo. Số bản tin:"
        " số bản tin trong kỳ đang bị quyết định này loại bỏ. Trung bình, vi phạm và mức đầy đủ"
        " trong báo cáo đã tính theo các quyết định đã áp dụng; cờ QA/QC tự động giữ nguyên.",
        "The operators' decisions whose period overlaps the report's. Readings: those of the"
        " period the decision invalidates now. Averages, violations and completeness in this"
        " report follow the applied decisions; the automatic QC flags are unchanged.",
    ),
    "manual_id": ("Số quyết định", "Decision"),
    "manual_action": ("Quyết định", "Action"),
    "manual_reason": ("Lý do", "Reason"),
    "decided_by": ("Người quyết định", "Decided by"),
    "decided_at": ("Thời điểm quyết định", "Decided at"),
    "applied": ("Đã áp dụng", "Applied"),
    "applied_at": ("Thời điểm áp dụng", "Applied at"),
    "period_start": ("Từ", "From"),
    "period_end": ("Đến (không kể)", "To (exclusive)"),
    "manual_readings": ("Số bản tin bị loại", "Readings invalidated"),
    "manual_invalid": (
        "Loại bỏ thủ công (đạt QA/QC tự động)",
        "Invalidated by hand (passed automatic QC)",
    ),
    "all_parameters": ("Tất cả thông số", "All parameters"),
    "manual.invalidate": ("Loại bỏ", "Invalidated"),
    "manual.restore": ("Khôi phục", "Restored"),
    "manual.reason.maintenance": ("Bảo trì", "Maintenance"),
    "manual.reason.calibration": ("Hiệu chuẩn", "Calibration"),
    "manual.reason.analyser_fault": ("Lỗi thiết bị phân tích", "Analyser fault"),
    "manual.reason.other": ("Khác", "Other"),
    "sec.charts": ("Biểu đồ", "Charts"),
    "note.hourly_not_in_pdf": (
        "Bảng trung bình 1 giờ có trong bản CSV/XLSX.",
        "The hourly table is in the CSV/XLSX editions.",
    ),
    # columns
    "item": ("Mục", "Item"),
    "value": ("Giá trị", "Value"),
    "source_id": ("Mã nguồn", "Source id"),
    "name": ("Tên", "Name"),
    "kind": ("Loại", "Kind"),
    "district": ("Huyện/thị", "District"),
    "facility": ("Cơ sở", "Facility"),
    "permit": ("Giấy phép", "Permit"),
    "facility_id": ("Mã cơ sở", "Facility id"),
    "facility_status": ("Cơ sở hiện hữu / mới", "Existing / new facility"),
    "facility_points": ("Các điểm quan trắc của cơ sở", "The facility's monitoring points"),
    "parameter": ("Thông số", "Parameter"),
    "unit": ("Đơn vị", "Unit"),
    "interval_s": ("Chu kỳ (giây)", "Interval (s)"),
    "expected": ("Số bản tin kỳ vọng", "Expected"),
    "received": ("Số bản tin nhận", "Received"),
    "valid": ("Số bản tin hợp lệ", "Valid"),
    "calibrating": ("Hiệu chuẩn (01)", "Calibrating (01)"),
    "device_error": ("Lỗi thiết bị (02)", "Device error (02)"),
    "other_invalid": ("Không hợp lệ khác", "Other invalid"),
    "completeness": ("Tỷ lệ đầy đủ", "Completeness"),
    "meets_threshold": ("Đạt ngưỡng đầy đủ", "Meets threshold"),
    "mean": ("Trung bình", "Mean"),
    "max": ("Lớn nhất", "Max"),
    "min": ("Nhỏ nhất", "Min"),
    "rule_id": ("Mã quy định", "Rule id"),
    "averaging": ("Thời gian trung bình", "Averaging period"),
    "limit_min": ("Giới hạn dưới", "Lower limit"),
    "limit_max": ("Giới hạn trên", "Upper limit"),
    "legal_basis": ("Căn cứ pháp lý", "Legal basis"),
    "verified": ("Đã kiểm chứng", "Verified"),
    "note": ("Ghi chú", "Note"),
    "windows": ("Số giá trị TB", "Averages"),
    "valid_windows": ("Số giá trị TB hợp lệ", "Valid averages"),
    "exceeding": ("Số giá trị vượt", "Exceeding averages"),
    "hours_exceeding": ("Số giờ vượt", "Hours in exceedance"),
    "max_ratio": ("Tỷ lệ vượt lớn nhất", "Max ratio"),
    "violation_id": ("Mã vi phạm", "Violation id"),
    "state": ("Tình trạng xử lý", "State"),
    "started_at": ("Bắt đầu", "Start"),
    "ended_at": ("Kết thúc", "End"),
    "duration_h": ("Thời lượng (giờ)", "Duration (h)"),
    "peak_value": ("Giá trị đỉnh", "Peak value"),
    "peak_ratio": ("Tỷ lệ đỉnh", "Peak ratio"),
    # reference-O2 correction of stacks (issue 19)
    "sec.reference_o2": (
        "Hiệu chỉnh O2 tham chiếu (giá trị đo, O2 đo, giá trị hiệu chỉnh)",
        "Reference-O2 correction (measured, O2, corrected)",
    ),
    "measured_value": ("Giá trị đo", "Measured value"),
    "peak_measured_value": ("Giá trị đo tại đỉnh", "Measured value at peak"),
    "o2_measured": ("O2 đo (%)", "Measured O2 (%)"),
    "peak_o2_measured": ("O2 đo tại đỉnh (%)", "Measured O2 at peak (%)"),
    "o2_reference": ("O2 tham chiếu (%)", "Reference O2 (%)"),
    "corrected_value": ("Giá trị hiệu chỉnh", "Corrected value"),
    "not_judged": ("Không đánh giá (lý do)", "Not judged (why)"),
    "m.reference_o2": ("Hiệu chỉnh O2 tham chiếu", "Reference-O2 correction"),
    "m.standard_conditions": ("Điều kiện tiêu chuẩn", "Standard conditions"),
    "severity": ("Mức độ", "Severity"),
    "decree_45": (
        "NĐ 45/2022: điều, khoản, khung lưu lượng",
        "Decree 45/2022: article, clause, flow bracket",
    ),
    "penalty_sanction": ("Hình thức xử phạt (tham khảo)", "Sanction (for information)"),
    "acks": ("Số lần xác nhận", "Acknowledgements"),
    "username": ("Người xác nhận", "User"),
    "at": ("Thời điểm", "At"),
    "month": ("Tháng", "Month"),
    "expected_hours": ("Số giờ kỳ vọng", "Expected hours"),
    "calibration_hours": ("Giờ hiệu chuẩn (01)", "Calibration hours (01)"),
    "error_hours": ("Giờ lỗi thiết bị (02)", "Device error hours (02)"),
    "silence_hours": ("Giờ không có dữ liệu", "Silent hours"),
    "lost_hours": ("Tổng giờ mất dữ liệu", "Hours lost"),
    "window_start": ("Bắt đầu khung", "Window start"),
    "window_end": ("Kết thúc khung", "Window end"),
    "samples": ("Số mẫu", "Samples"),
    "revision": ("Lần sửa", "Revision"),
    "day": ("Ngày", "Day"),
    "aqi": ("AQI", "AQI"),
    "category": ("Mức", "Category"),
    "colour": ("Màu", "Colour"),
    "rgb": ("Mã màu RGB", "RGB code"),
    "dominant": ("Thông số chính", "Dominant pollutant"),
    "days": ("Số ngày", "Days"),
    "year": ("Năm", "Year"),
    "valid_days": ("Số ngày hợp lệ", "Valid days"),
    "annual_verdict": ("Đánh giá", "Assessment"),
    "exceeds": ("Vượt giới hạn", "Exceeds"),
    "within": ("Đạt", "Within the limit"),
    "incomplete": ("Không đủ số ngày (< 75 %)", "Incomplete (< 75 % of days)"),
    "provisional": ("Tạm tính (năm chưa kết thúc)", "Provisional (year not over)"),
    "status": ("Trạng thái", "Status"),
    "violations": ("Số vi phạm", "Violations"),
    "measured_at": ("Thời điểm đo", "Measured at"),
    "device_status": ("Trạng thái thiết bị", "Device status"),
    "flag": ("Cờ QA/QC", "QC flag"),
    "raw_value": ("Giá trị gốc", "Raw value"),
    "raw_unit": ("Đơn vị gốc", "Raw unit"),
    "channel": ("Kênh", "Channel"),
    "origin": ("Tệp gốc", "Origin"),
    "received_at": ("Thời điểm nhận", "Received at"),
    "period_key": ("Chu kỳ trung bình", "Averaging basis"),
    # statuses and words
    "complied": ("Tuân thủ", "Complied"),
    "violated": ("Vi phạm", "Violated"),
    "did_not_report": ("Không truyền dữ liệu", "Did not report"),
    "no_data": ("Không có dữ liệu", "No data"),
    "yes": ("Có", "Yes"),
    "no": ("Không", "No"),
    "ongoing": ("đang diễn ra", "ongoing"),
    # method items
    "m.period": ("Ranh giới kỳ", "Period boundaries"),
    "m.averaging": ("Quy tắc tính trung bình", "Averaging rule"),
    "m.completeness": ("Ngưỡng đầy đủ dữ liệu", "Completeness threshold"),
    "m.excluded": ("Cờ bị loại", "Excluded flags"),
    "m.expected": ("Số bản tin kỳ vọng", "Expected readings"),
    "m.exceedance": ("Xác định vượt", "Exceedance"),
    "m.outage": ("Thời gian mất dữ liệu", "Outage hours"),
    "m.limit": ("Giới hạn", "Limit"),
    "m.aqi": ("VN_AQI", "VN_AQI"),
    "m.status": ("Trạng thái tuân thủ", "Compliance status"),
}


def t(key: str, lang: Lang | str = Lang.VI) -> str:
    pair = _TEXT.get(key)
    if pair is None:
        return key
    return pair[1] if Lang(lang) is Lang.EN else pair[0]


def has(key: str) -> bool:
    return key in _TEXT
