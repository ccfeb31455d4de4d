"""``quantrac worker``: migrate, create topics, run the Faust worker until SIGTERM/Ctrl-C."""

from __future__ import annotations

import logging

import faust

from stations.registry import load_registry
from storage.migrate import migrate
from storage.sources import sync_sources
from streams.app import create_app
from streams.settings import Settings
from streams.topics import ensure_topics

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> None:
    assert settings.kafka_url and settings.database_url
    migrate(settings.database_url)
    sync_sources(settings.database_url, load_registry(settings.registry_path))
    ensure_topics(settings)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level, redirect_stdouts=False)
    worker.execute_from_commandline()  # installs SIGINT/SIGTERM handlers; exits the process
