"""Console wording: Vietnamese first, English on ``?lang=en`` (remembered in a cookie)."""

from __future__ import annotations

from enum import StrEnum


class Lang(StrEnum):
    VI = "vi"
    EN = "en"


LANG_COOKIE = "qt_lang"

#: key → (Vietnamese, English)
MESSAGES: dict[str, tuple[str, str]] = {
    "app_title": ("Quan trắc tự động Hải Dương", "Hai Duong automatic monitoring"),
    "alerts": ("Cảnh báo", "Alerts"),
    "board": ("Trạng thái trạm", "Station board"),
    "reports": ("Báo cáo", "Reports"),
    "users": ("Người dùng", "Users"),
    "audit": ("Nhật ký", "Audit trail"),
    "login": ("Đăng nhập", "Log in"),
    "logout": ("Đăng xuất", "Log out"),
    "username": ("Tên đăng nhập", "Username"),
    "password": ("Mật khẩu", "Password"),
    "role": ("Vai trò", "Role"),
    "change_password": ("Đổi mật khẩu", "Change password"),
    "current_password": ("Mật khẩu hiện tại", "Current password"),
    "new_password": ("Mật khẩu mới", "New password"),
    "password_changed": (
        "Đã đổi mật khẩu; các phiên đăng nhập khác đã kết thúc",
        "Password changed; your other sessions have ended",
    ),
    "wrong_current_password": ("Mật khẩu hiện tại không đúng", "The current password is wrong"),
    "password_rules": (
        "Ít nhất 12 ký tự, không phải mật khẩu phổ biến, khác tên đăng nhập",
        "At least 12 characters, not a common password, not your username",
    ),
    "bad_login": ("Sai tên đăng nhập hoặc mật khẩu", "Wrong username or password"),
    "throttled": (
        "Quá nhiều lần đăng nhập sai; thử lại sau 5 phút",
        "Too many failed logins; try again in 5 minutes",
    ),
    "open_alerts": ("Cảnh báo đang mở", "Open alerts"),
    "no_alerts": ("Không có cảnh báo", "No alerts"),
    "kind": ("Loại", "Kind"),
    "exceedance": ("Vượt chuẩn", "Exceedance"),
    "outage": ("Mất dữ liệu", "Outage"),
    "district": ("Huyện/thị", "District"),
    "severity": ("Mức độ", "Severity"),
    "decree_45": ("NĐ 45/2022/NĐ-CP", "Decree 45/2022/NĐ-CP"),
    "no_band": (
        "không áp dụng (trạm quan trắc xung quanh không phải nguồn thải; mất dữ liệu)",
        "none (ambient stations are not sources; outages)",
    ),
    "unverified": ("chưa kiểm chứng", "unverified"),
    "penalty_sanction": ("Hình thức xử phạt (tham khảo)", "Sanction (for information)"),
    "flow_bracket": ("Khung lưu lượng", "Flow bracket"),
    "flow_permitted": ("lưu lượng cấp phép", "permitted flow"),
    "flow_measured": ("lưu lượng đo", "measured flow"),
    "all": ("Tất cả", "All"),
    "filter": ("Lọc", "Filter"),
    "source": ("Nguồn", "Source"),
    "parameter": ("Thông số", "Parameter"),
    "value": ("Giá trị", "Value"),
    "limit": ("Giới hạn", "Limit"),
    "ratio": ("Tỷ lệ", "Ratio"),
    "started": ("Bắt đầu", "Started"),
    "ended": ("Kết thúc", "Ended"),
    "last": ("Gần nhất", "Latest"),
    "state": ("Trạng thái", "State"),
    "open": ("Đang mở", "Open"),
    "closed": ("Đã đóng", "Closed"),
    "acknowledge": ("Xác nhận", "Acknowledge"),
    "acknowledged": ("Đã xác nhận", "Acknowledged"),
    "ack_note": ("Ghi chú xử lý", "Note"),
    "sound": ("Âm thanh", "Sound"),
    "events": ("Diễn biến", "Event history"),
    "acknowledgements": ("Xác nhận", "Acknowledgements"),
    "legal_basis": ("Căn cứ pháp lý", "Legal basis"),
    "online": ("Trực tuyến", "Online"),
    "stale": ("Chậm", "Stale"),
    "offline": ("Mất kết nối", "Offline"),
    "last_reading": ("Số liệu cuối", "Last reading"),
    "age": ("Độ trễ", "Age"),
    "completeness": ("Đủ dữ liệu hôm nay", "Today's completeness"),
    "open_violations": ("Vi phạm mở", "Open violations"),
    "aqi": ("VN_AQI", "VN_AQI"),
    "latest_values": ("Giá trị mới nhất", "Latest values"),
    "chart_24h": ("24 giờ qua", "Last 24 hours"),
    "chart_30d": ("30 ngày qua (TB 1 giờ và TB ngày)", "Last 30 days (1 h and daily means)"),
    "around_episode": ("Số liệu quanh sự cố", "Values around the episode"),
    "time": ("Thời gian", "Time"),
    "actor": ("Người thực hiện", "Actor"),
    "action": ("Hành động", "Action"),
    "target": ("Đối tượng", "Target"),
    "create_user": ("Tạo người dùng", "Create user"),
    "create": ("Tạo", "Create"),
    "disabled": ("Đã khóa", "Disabled"),
    "no_data": ("Chưa có số liệu", "No data"),
    "forbidden": ("Không có quyền", "Forbidden"),
    "not_found": ("Không tìm thấy", "Not found"),
    "report_links": ("Các báo cáo xuất ra", "Exports"),
    "report_evidence": ("Hồ sơ vi phạm", "Violation evidence package"),
    "report_kind": ("Loại báo cáo", "Report"),
    "report_compliance": ("Tuân thủ của nguồn thải / trạm", "Source compliance"),
    "report_air-quality": ("Chất lượng không khí (VN_AQI)", "Station air quality (VN_AQI)"),
    "report_province": ("Tổng hợp toàn tỉnh", "Province summary"),
    "report_export": ("Xuất dữ liệu", "Data export"),
    "period": ("Kỳ báo cáo", "Period"),
    "format": ("Định dạng", "Format"),
    "language": ("Ngôn ngữ", "Language"),
    "download": ("Tải xuống", "Download"),
    "report_note": (
        "Kỳ theo giờ địa phương; mỗi báo cáo nêu phương pháp và căn cứ pháp lý.",
        "Periods are in local time; every report states its method and legal basis.",
    ),
    "live": ("Trực tiếp", "Live"),
    "reconnecting": ("Đang kết nối lại…", "Reconnecting…"),
    "kind_ambient_air": ("Không khí xung quanh", "Ambient air"),
    "kind_surface_water": ("Nước mặt", "Surface water"),
    "water_class": ("Loại nước (QCVN 08:2023)", "Water class (QCVN 08:2023)"),
    "wqi": ("VN_WQI", "VN_WQI"),
    "target_class": ("mục tiêu", "target"),
    "water_alerts": ("Cảnh báo chất lượng nước mặt", "Surface water quality alerts"),
    "water_alert": ("Chất lượng nước kém hơn mục tiêu", "Water worse than its target class"),
    "water_alert_note": (
        "Cảnh báo của Sở về chất lượng nguồn nước, không phải vi phạm của nguồn thải"
        " (QCVN 08:2023 phân loại nước mặt).",
        "A department alert on the water body, not a source violation"
        " (QCVN 08:2023 classifies surface water).",
    ),
    "wqi_below_minimum": (
        "chưa đủ 3/5 nhóm thông số theo QĐ 1460: chỉ để tham khảo",
        "fewer than 3 of 5 parameter groups (Decision 1460): for information",
    ),
    "kind_wastewater": ("Nước thải", "Wastewater"),
    "kind_stack": ("Khí thải", "Stack"),
    # charts (console/chart_data.py, static/charts.js) and the board's tools (static/board.js)
    "chart_loading": ("Đang tải biểu đồ…", "Loading the chart…"),
    "chart_hint": (
        "Rê chuột để xem giá trị; kéo để phóng to, nhấp đúp để trở lại. Đường làm trơn chỉ để"
        " hiển thị: tuân thủ được đánh giá trên giá trị trung bình theo quy chuẩn.",
        "Hover for values; drag to zoom, double-click to reset. The smoothed line is for display"
        " only: compliance is judged on the regulatory means.",
    ),
    "no_limit": ("không có", "none"),
    "no_limit_note": (
        "Nguồn này không bị giới hạn thông số này theo sổ đăng ký",
        "The registry holds this source to no limit on this parameter",
    ),
    "search": ("Tìm", "Search"),
    "search_placeholder": ("mã, tên hoặc huyện", "id, name or district"),
    "rows_shown": ("nguồn được hiển thị", "sources shown"),
    # manual validation (issue 21): console/manual_validation.py, _manual_validation.html
    "mv_title": ("Đánh giá số liệu thủ công", "Manual validation"),
    "mv_intro": (
        "Loại bỏ số liệu của một khoảng thời gian (bảo trì, hiệu chuẩn, lỗi thiết bị) hoặc khôi"
        " phục; trung bình, VN_AQI, vi phạm và báo cáo được tính lại qua hệ thống xử lý. Chỉ"
        " sửa được khoảng bắt đầu trong {h} giờ gần nhất; mọi thay đổi đều ghi nhật ký.",
        "Invalidate a period of data (maintenance, calibration, analyser fault) or restore it;"
        " averages, VN_AQI, violations and reports follow through the pipeline. Only periods"
        " starting within the last {h} hours can be changed; every change is audited.",
    ),
    "mv_all_parameters": ("Tất cả thông số", "All parameters"),
    "mv_start": ("Từ (giờ địa phương)", "From (local time)"),
    "mv_end": ("Đến (không kể, giờ địa phương)", "To (exclusive, local time)"),
    "mv_reason": ("Lý do", "Reason"),
    "mv_note": ("Ghi chú", "Note"),
    "mv_note_placeholder": ("bắt buộc với lý do Khác", "required for reason Other"),
    "mv_invalidate": ("Loại bỏ số liệu", "Invalidate"),
    "mv_restore": ("Khôi phục", "Restore"),
    "mv_restores": ("khôi phục #", "restores #"),
    "mv_period": ("Khoảng thời gian", "Period"),
    "mv_by": ("Người quyết định", "By"),
    "mv_at": ("Lúc", "At"),
    "mv_status": ("Trạng thái", "Status"),
    "mv_none": ("Chưa có quyết định nào.", "No decision yet."),
    "mv_final": ("đã chốt (quá giới hạn muộn)", "final (beyond the late horizon)"),
    "mv_action_invalidate": ("Loại bỏ", "Invalidated"),
    "mv_action_restore": ("Khôi phục", "Restored"),
    "mv_status_pending": ("Đang chờ xử lý", "Pending"),
    "mv_status_applied": ("Đã áp dụng", "Applied"),
    "mv_reason_maintenance": ("Bảo trì", "Maintenance"),
    "mv_reason_calibration": ("Hiệu chuẩn", "Calibration"),
    "mv_reason_analyser_fault": ("Lỗi thiết bị phân tích", "Analyser fault"),
    "mv_reason_other": ("Khác", "Other"),
}


def parse_lang(value: str | None) -> Lang | None:
    try:
        return Lang(value) if value else None
    except ValueError:
        return None


def translate(key: str, lang: Lang) -> str:
    """The message in ``lang``; an unknown key shows itself, so a gap is visible, not fatal."""
    pair = MESSAGES.get(key)
    if pair is None:
        return key
    return pair[0] if lang is Lang.VI else pair[1]
