"""Alert console: web pages, JSON API and live updates for the environment department."""
