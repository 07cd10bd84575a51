"""Driving the review page in headless Chromium, over the report tests' DevTools pipe.

Why the DevTools protocol rather than Selenium with ``chromium-driver``: the project already
drives Debian's ``chromium`` over ``--remote-debugging-pipe`` (``tests/helpers/browser.py``),
which needs nothing but the browser (no driver binary to match its version, no port, no
Python package); and the protocol gives what these tests wait on as events: a promise that a
``MutationObserver`` resolves when the page shows a state, a video's ``playing`` event.

The calls block (they read the pipe), so async tests run them in a worker thread while the
review server answers in the event loop.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.helpers.browser import DevTools, open_page

# Collects CSP violations before any script of the page runs.
WATCH = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__violations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""

KEYS = {" ": ("Space", 32), "Enter": ("Enter", 13)}


class ReviewPage:
    """One tab on the review page."""

    def __init__(self, tools: DevTools, url: str, *, width: int = 1280, height: int = 900
                 ) -> None:
        self.tools = tools
        self.session = open_page(tools, url, before_load=WATCH)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def call(self, method: str, params: dict[str, Any] | None = None, *,
             timeout: float = 30) -> dict[str, Any]:
        return self.tools.call(method, params, session=self.session, timeout=timeout)

    def js(self, expression: str, *, timeout: float = 30) -> Any:
        """The JSON value of ``expression`` (a promise is awaited)."""
        reply = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                               "returnByValue": True}, timeout=timeout)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"page script failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def until(self, condition: str, *, timeout: float = 60) -> Any:
        """The value of the JS ``condition`` once it is truthy: checked now and on every change
        of the page's DOM (a ``MutationObserver``), never on a timer."""
        return self.js(f"""new Promise(function (resolve) {{
          function check() {{
            var value = ({condition});
            if (value) {{ resolve(value); return true; }}
            return false;
          }}
          if (check()) {{ return; }}
          var observer = new MutationObserver(function () {{
            if (check()) {{ observer.disconnect(); }}
          }});
          observer.observe(document.documentElement, {{subtree: true, childList: true,
                                                       attributes: true, characterData: true}});
        }})""", timeout=timeout)

    def statuses(self) -> dict[str, str]:
        return dict(self.js("Array.from(document.querySelectorAll('article.tile')).map("
                            "function (t) { return [t.getAttribute('data-key'), "
                            "t.getAttribute('data-status')]; })"))

    def key(self, key: str, *, ctrl: bool = False) -> None:
        """Press and release one key, as a user would (a trusted event)."""
        if key in KEYS:
            code, vk = KEYS[key]
        else:
            code, vk = (f"Key{key.upper()}" if key.isalpha() else f"Digit{key}"), ord(key.upper())
        text = "" if key == "Enter" and ctrl else ("\r" if key == "Enter" else key)
        params: dict[str, Any] = {"key": key, "code": code, "windowsVirtualKeyCode": vk,
                                  "modifiers": 2 if ctrl else 0}
        self.call("Input.dispatchKeyEvent", {"type": "keyDown", "text": text, **params})
        self.call("Input.dispatchKeyEvent", {"type": "keyUp", **params})

    def type_text(self, text: str) -> None:
        self.call("Input.insertText", {"text": text})

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element ``selector`` names."""
        box = self.js(f"""(function () {{
          var el = document.querySelector({json.dumps(selector)});
          el.scrollIntoView({{block: 'center'}});
          var r = el.getBoundingClientRect();
          return [r.left + r.width / 2, r.top + r.height / 2];
        }})()""")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1],
                                                   "button": "left", "clickCount": 1})

    def screenshot(self) -> bytes:
        self.js("window.scrollTo(0, 0)")
        data = self.call("Page.captureScreenshot", {"format": "png"}, timeout=60)["data"]
        return base64.b64decode(data)
