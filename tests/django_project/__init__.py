"""A small Django project for pgqueue's Django tests: settings, the ``shop`` app.

The database is the one ``PGQUEUE_DJANGO_DSN`` names; :mod:`.harness` sets it
for this process or for a subprocess.
"""
