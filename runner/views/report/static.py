"""The contact sheet's fixed style and script, inlined into every page.

They are constants, never formatted with manifest or gateway text: nothing a user or the gateway
writes can end up inside ``<style>`` or ``<script>``. The page's Content-Security-Policy allows
exactly this script (by hash) and no other, so even a missed escape could not run code.
"""

from __future__ import annotations

import base64
import hashlib

CSS = """
:root{--bg:#14161a;--panel:#1d2026;--line:#2c313a;--text:#e6e8eb;--dim:#9aa3ad;
--ok:#3fb37f;--bad:#e5534b;--warn:#d4a72c;--run:#4c8dd6;--ref:#2b4a6f;--refi:#4a3b6b}
*{box-sizing:border-box}
[hidden]{display:none!important}
body{margin:0;background:var(--bg);color:var(--text);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{position:sticky;top:0;z-index:2;background:rgba(20,22,26,.96);
border-bottom:1px solid var(--line);padding:12px 20px}
h1{font-size:20px;margin:0 0 2px}
.meta{color:var(--dim);font-size:12px;word-break:break-all}
.totals{display:flex;flex-wrap:wrap;gap:6px 18px;margin:10px 0 6px}
.totals div{display:flex;flex-direction:column}
.totals b{font-size:18px}
.totals span{color:var(--dim);font-size:11px;text-transform:uppercase;letter-spacing:.04em}
.filters{display:flex;flex-wrap:wrap;gap:6px;align-items:center;font-size:12px}
.filters .group{color:var(--dim);margin:0 4px 0 10px}
.filters .group:first-child{margin-left:0}
.filters label{border:1px solid var(--line);border-radius:12px;padding:2px 9px;cursor:pointer;
user-select:none;background:var(--panel)}
.filters input{margin:0 4px 0 0;vertical-align:-1px}
main{padding:8px 20px 40px}
section.shot{border-bottom:1px solid var(--line);padding:14px 0}
.shot h2{font-size:16px;margin:0 0 4px;font-family:ui-monospace,Menlo,Consolas,monospace}
.chips{display:flex;flex-wrap:wrap;gap:4px;margin:2px 0 6px}
.chip{font-size:11px;border-radius:9px;padding:1px 7px;background:var(--panel);
border:1px solid var(--line);color:var(--dim)}
.chip.tag{color:var(--text);border-color:#49515d}
.prompt{white-space:pre-wrap;margin:4px 0;max-width:110ch}
.prompt .seg{color:var(--dim);font-size:11px;margin-right:6px}
mark.ref{background:var(--ref);color:#dbe9ff;border-radius:3px;padding:0 2px}
mark.ref.element{background:var(--refi);color:#efe3ff}
mark.ref.other{background:#4a4231;color:#ffeec2}
.inputs{display:flex;flex-wrap:wrap;gap:8px;margin:6px 0 10px}
.input{display:flex;flex-direction:column;align-items:center;width:84px;font-size:10px;
color:var(--dim);text-align:center;word-break:break-all}
.input .thumb{width:72px;height:72px;border-radius:4px;background-color:var(--panel);
background-position:center;background-size:cover;background-repeat:no-repeat;
border:1px solid var(--line);display:flex;align-items:center;justify-content:center}
.input .label{color:var(--text);font-weight:600}
.input a{color:#8ab4f8}
.takes{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:12px}
.tile{background:var(--panel);border:1px solid var(--line);border-left:4px solid var(--dim);
border-radius:6px;overflow:hidden;display:flex;flex-direction:column}
.tile.s-done{border-left-color:var(--ok)}
.tile.s-failed{border-left-color:var(--bad)}
.tile.s-ambiguous,.tile.s-held{border-left-color:var(--warn)}
.tile.s-submitted,.tile.s-submitting,.tile.s-completed,.tile.s-downloading{
border-left-color:var(--run)}
.tile.s-new{border-left-color:var(--line)}
.frame{background:#000;display:flex;align-items:center;justify-content:center;max-height:360px}
.frame video{width:100%;max-height:360px;display:block;background:#000}
.frame .none{color:var(--dim);padding:36px 8px;text-align:center}
.r16x9{aspect-ratio:16/9}.r9x16{aspect-ratio:9/16}.r1x1{aspect-ratio:1/1}
.facts{display:grid;grid-template-columns:auto 1fr;gap:1px 10px;padding:8px 10px;font-size:12px;
margin:0}
.facts dt{color:var(--dim)}
.facts dd{margin:0;overflow-wrap:anywhere}
.status{font-weight:600}
.take-no{font-size:12px;margin:8px 10px 0;color:var(--dim);font-weight:600}
.badge{font-size:10px;border-radius:8px;padding:0 6px;margin-left:6px;border:1px solid var(--ok);
color:var(--ok);font-weight:600}
.badge.picked{background:var(--ok);color:#111}
.tile.picked{outline:2px solid var(--ok)}
.chain{font-size:12px;color:var(--dim);margin:2px 0 6px}
.chain a{color:var(--text)}
.s-done .status{color:var(--ok)}.s-failed .status{color:var(--bad)}
.s-ambiguous .status,.s-held .status{color:var(--warn)}
dd.warn{color:var(--warn)}
.error{color:#ffb4ad;white-space:pre-wrap}
.facts dd.note{color:#ffe7a3;white-space:pre-wrap}
.empty{color:var(--dim);padding:30px 0}
"""

JS = """
(function () {
  var boxes = Array.prototype.slice.call(document.querySelectorAll(".filters input"));
  var shown = document.getElementById("shown");
  function apply() {
    var statusOn = {}, tags = [];
    boxes.forEach(function (box) {
      if (box.getAttribute("data-kind") === "status") { statusOn[box.value] = box.checked; }
      else if (box.checked) { tags.push(box.value); }
    });
    var count = 0;
    document.querySelectorAll("section.shot").forEach(function (shot) {
      var shotTags = JSON.parse(shot.getAttribute("data-tags") || "[]");
      var tagOk = tags.length === 0 || tags.some(function (t) { return shotTags.indexOf(t) >= 0; });
      var any = false;
      shot.querySelectorAll(".tile").forEach(function (tile) {
        var ok = tagOk && statusOn[tile.getAttribute("data-status")] !== false;
        tile.hidden = !ok;
        if (ok) { any = true; count += 1; }
      });
      shot.hidden = !any;
    });
    if (shown) { shown.textContent = String(count); }
  }
  boxes.forEach(function (box) { box.addEventListener("change", apply); });
  apply();
})();
"""


def script_hash() -> str:
    """The CSP source expression that allows :data:`JS` and nothing else."""
    digest = hashlib.sha256(JS.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"
