"""Coverage-guided fuzzing (atheris / libFuzzer) of the gateway's hostile-input paths.

Harnesses (each a module with ``TestOneInput(data: bytes)``, runnable on its own)::

    python -m tests.fuzz.fuzz_file  [libFuzzer flags] [CORPUS_DIR ...]  # Circular 10 files
    python -m tests.fuzz.fuzz_json  [libFuzzer flags] [CORPUS_DIR ...]  # the JSON form
    python -m tests.fuzz.fuzz_http  [libFuzzer flags] [CORPUS_DIR ...]  # POST /ingest[/file/…]

Seed them with ``tests/corpus/circular10`` (read-only: give an empty, writable directory first,
libFuzzer adds what it finds there) and ``-dict=tests/fuzz/circular10.dict``. The input format
shared by the harnesses is described in :mod:`tests.fuzz.common`. ``test_fuzz`` runs each
harness for a bounded time in CI.
"""
