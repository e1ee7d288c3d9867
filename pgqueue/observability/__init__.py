"""Subscribers to worker events: logs (and later metrics and traces)."""
