"""Integrations with the frameworks applications are built on: Django, Alembic.

Each module here imports its framework at module level, so only an application
that uses it imports it; nothing in pgqueue's core imports this package.
"""
