"""The ground floor: what every layer shares and nothing of the project's own.

Records on the topics, settings, metrics, topic names, TLS contexts, and the vocabulary of
parameters, units and rejection reasons. Modules here import only the standard library and
third-party packages, never another quantrac package (tests/unit/test_layers.py enforces the
order: core → thresholds, stations, storage → streams, console, reports → the CLI).
"""
