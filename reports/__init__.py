"""Regulator reports: compliance, air quality, province summary, data export, evidence packages.

Builders (``compliance``, ``air_quality``, ``province``, ``export``) read PostgreSQL and return a
:class:`reports.model.Report`; renderers (``render_csv``, ``render_xlsx``, ``render_pdf``) write it.
``reports.cli.run_report`` and ``reports.api.build_router`` are the entry points.
"""
