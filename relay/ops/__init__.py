"""Operator endpoints: health, metrics, events and replay, releases, dashboard."""
