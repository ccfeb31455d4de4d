"""Mirror the station registry into the ``sources`` table (the console and reports read it)."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from stations.registry import Registry

_UPSERT = """
INSERT INTO sources (id, name, kind, district, lat, lon, facility_id, facility, permit,
                     interval_s, spec, updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, kind = EXCLUDED.kind, district = EXCLUDED.district,
    lat = EXCLUDED.lat, lon = EXCLUDED.lon, facility_id = EXCLUDED.facility_id,
    facility = EXCLUDED.facility, permit = EXCLUDED.permit, interval_s = EXCLUDED.interval_s,
    spec = EXCLUDED.spec, updated_at = now()
WHERE (sources.name, sources.kind, sources.district, sources.lat, sources.lon,
       sources.facility_id, sources.facility, sources.permit, sources.interval_s, sources.spec)
   IS DISTINCT FROM
      (EXCLUDED.name, EXCLUDED.kind, EXCLUDED.district, EXCLUDED.lat, EXCLUDED.lon,
       EXCLUDED.facility_id, EXCLUDED.facility, EXCLUDED.permit, EXCLUDED.interval_s,
       EXCLUDED.spec)
"""


def sync_sources(conninfo: str, registry: Registry) -> int:
    """Upsert every registered source; return how many rows changed. Sources removed from the
    registry stay in the table: their history must remain reportable."""
    rows = []
    for s in registry.sources:
        facility = registry.facility(s.facility) if s.facility else None
        rows.append(
            (
                s.id,
                s.name,
                s.kind.value,
                s.district.value,
                s.lat,
                s.lon,
                facility.id if facility else None,
                facility.name if facility else None,
                facility.permit.text if facility else None,
                s.interval_s,
                Jsonb(s.model_dump(mode="json")),
            )
        )
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        changed = 0
        for row in rows:
            cur.execute(_UPSERT, row)
            changed += max(cur.rowcount, 0)
    return changed
