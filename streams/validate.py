"""Judge one raw reading (placeholder until the QA/QC rules land: device status only)."""

from __future__ import annotations

from streams.records import DeviceStatus, QcFlag, QcReading, RawReading

_STATUS_FLAG = {
    DeviceStatus.MEASURING: QcFlag.VALID,
    DeviceStatus.CALIBRATING: QcFlag.CALIBRATING,
    DeviceStatus.ERROR: QcFlag.DEVICE_ERROR,
}


def judge(r: RawReading) -> QcReading:
    flag = _STATUS_FLAG[DeviceStatus(r.status)]
    return QcReading(
        source_id=r.source_id,
        parameter=r.parameter,
        value=r.value,
        unit=r.unit,
        measured_at=r.measured_at,
        status=r.status,
        received_at=r.received_at,
        channel=r.channel,
        origin=r.origin,
        flag=flag.value,
        raw_value=r.value,
        raw_unit=r.unit,
    )
