"""The review page's fixed style and script, served as files by the review server.

Constants, never formatted with manifest, store or gateway text; the page's
Content-Security-Policy allows scripts from the server itself only (``script-src 'self'``), so
no inline script, and no text of a prompt, can run. The report's style comes first: the tiles
are the report's, and so are the filters (the report's script, served as a second file).
"""

from __future__ import annotations

from importlib import resources

from runner.views.report.static import CSS as REPORT_CSS
from runner.views.report.static import JS as REPORT_JS

CSS = REPORT_CSS + """
.keys{color:var(--dim);font-size:11px;margin-top:6px}
kbd{border:1px solid var(--line);border-radius:3px;padding:0 3px;font-size:10px}
#message{min-height:18px;font-size:12px;margin-top:4px}
#message.saved{color:var(--ok)}#message.queued{color:var(--warn)}#message.error{color:var(--bad)}
.banner{margin:6px 0;padding:4px 8px;border-radius:4px;font-size:12px}
.banner.run,.banner.queued{background:#3a321a;color:#ffe7a3}
.banner.failed{background:#3d1f1d;color:#ffb4ad}
.review{padding:0 10px 10px;display:flex;flex-wrap:wrap;gap:6px;align-items:center}
.review button{background:var(--panel);color:var(--text);border:1px solid #49515d;
border-radius:4px;padding:3px 10px;cursor:pointer;font:inherit;font-size:12px}
.review button.pick{border-color:var(--ok);color:var(--ok)}
.review button:hover{background:#2a2f37}
.review textarea{width:100%;background:#111317;color:var(--text);border:1px solid var(--line);
border-radius:4px;font:inherit;font-size:12px;padding:4px;resize:vertical}
.review textarea.queued{border-color:var(--warn)}
.mark{font-size:11px;color:var(--dim)}
.mark.picked-mark{color:var(--ok);font-weight:600}.mark.queued{color:var(--warn)}
.next{font-size:12px;color:var(--warn);width:100%}
.tile.current{outline:2px solid var(--run)}
"""

# The report's filters serve the review page as they are (``/static/report.js``).
FILTERS_JS = REPORT_JS

# The script is a file of its own (runner/views/review/review.js, package data): JavaScript that
# editors and linters can read, not a Python string.
JS = (resources.files("runner.views.review") / "review.js").read_text(encoding="utf-8")
