"""The queue page's retention section: what each final state keeps, and a form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .http import CSRF_FIELD
from .pages import View, esc

__all__ = ["retention_section"]

_SOURCE = {"queue": "this queue", "default": "workers (built-in default shown)"}


def retention_section(view: View, name: str, retention: Mapping[str, Any]) -> str:
    """A table of state, kept for, set by; unless read-only, a form to change it."""
    rows = "".join(
        f"<tr data-retention=\"{esc(state)}\"><td>{esc(state)}</td>"
        f"<td>{esc(value['keep'])}</td><td class=\"muted\">{esc(_SOURCE[value['source']])}"
        f"</td></tr>" for state, value in retention["retention"].items())
    table = (f"<table class=\"grid\" id=\"queue-retention\"><thead><tr><th>state</th>"
             f"<th>kept for</th><th>set by</th></tr></thead><tbody>{rows}</tbody></table>"
             f"<p class=\"muted\">A state not set by this queue follows the workers' "
             f"<code>--retention</code>, which the dashboard cannot see; the built-in "
             f"default is shown.</p>")
    if not view.actions:
        return f"<h2>Retention</h2>{table}"
    action = f"/queues/{name}/retention"
    fields = "".join(
        f"<label>{esc(state)} <input type=\"text\" name=\"{esc(state)}\" size=\"8\" "
        f"maxlength=\"20\" placeholder=\"{esc(value['keep'])}\"></label> "
        for state, value in retention["retention"].items())
    csrf = f"<input type=\"hidden\" name=\"{CSRF_FIELD}\" value=\"{esc(view.csrf)}\">"
    form = (f"<form method=\"post\" action=\"{esc(action)}\" class=\"inline\" "
            f"id=\"retention-form\">{csrf}{fields}<button type=\"submit\">Set retention"
            f"</button></form> <span class=\"muted\">e.g. 12h, 90d, off; default removes "
            f"the override; blank leaves a state as it is.</span>")
    reset = (f"<form method=\"post\" action=\"{esc(action)}\" class=\"inline\" "
             f"id=\"retention-reset\">{csrf}<input type=\"hidden\" name=\"reset\" "
             f"value=\"1\"><button type=\"submit\">Reset to the workers' retention"
             f"</button></form>")
    return f"<h2>Retention</h2>{table}<div class=\"actions\">{form}{reset}</div>"
