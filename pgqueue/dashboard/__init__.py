"""The web dashboard and HTTP API: ``pgqueue dashboard``.

Standard library only (``http.server``) plus psycopg_pool, which pgqueue already
depends on: no web framework, no CDN; the assets ship in ``static/``.
"""

from __future__ import annotations

from .app import Dashboard, make_server

__all__ = ["Dashboard", "make_server"]
