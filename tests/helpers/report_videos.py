"""The videos the report's browser tests watch.

Moved from ``tests.views.report.test_browser`` so that no test module imports another."""

from __future__ import annotations

# Runs before the page's own scripts: records CSP violations and keeps the original title.
WATCH = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__violations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


# Waits for every video to have its metadata (or to fail), bounded by the page's own timer.
VIDEOS = """
Promise.all(Array.from(document.querySelectorAll('video')).map(function (v) {
  return new Promise(function (resolve) {
    function done() {
      resolve({key: v.closest('.tile').getAttribute('data-key'), readyState: v.readyState,
               error: v.error ? v.error.code : null, duration: v.duration});
    }
    if (v.readyState >= 1 || v.error) { return done(); }
    v.addEventListener('loadedmetadata', done);
    v.addEventListener('error', done);
    v.load();
    setTimeout(done, 15000);
  });
}))
"""
