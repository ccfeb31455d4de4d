"""Notifications: violations routed by rules (YAML data) to e-mail, signed webhooks or a file.

``rules`` is the pure routing, grouping and escalation logic; ``messages`` builds what is sent;
``channels`` sends it; ``store`` is the outbox and delivery log in PostgreSQL; ``service`` is
the ``quantrac notify`` process.
"""
