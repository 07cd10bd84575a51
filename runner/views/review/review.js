(function () {
  "use strict";
  var token = new URLSearchParams(location.search).get("token") || "";
  var main = document.querySelector("main");
  var message = document.getElementById("message");
  var current = null;  // the key of the current tile
  var seen = {};  // tile key -> the HTML it was last drawn from

  function say(text, state) { message.textContent = text || ""; message.className = state || ""; }

  function post(path, body) {
    return fetch(path, {method: "POST", cache: "no-store", credentials: "omit",
                        headers: {"Content-Type": "application/json", "X-Shotrun-Token": token},
                        body: JSON.stringify(body)})
      .then(function (r) { return r.json(); })
      .then(function (answer) { say(answer.message, answer.state); return answer; },
            function () { say("review is not answering: is it still running?", "error"); });
  }

  function tiles() { return Array.prototype.slice.call(document.querySelectorAll("article.tile")); }
  function visible(el) { return !el.closest("[hidden]"); }
  function tileOf(key) {
    return tiles().filter(function (t) { return t.getAttribute("data-key") === key; })[0] || null;
  }

  // The filters are the report's own script (served beside this one): it filters again on
  // every "change" of a filter box, so a redrawn section is filtered by asking it to.
  function applyFilters() {
    var box = document.querySelector(".filters input");
    if (box) { box.dispatchEvent(new Event("change")); }
  }

  function setCurrent(key) {
    tiles().forEach(function (t) { t.classList.toggle("current", t.getAttribute("data-key") === key); });
    current = key;
  }

  function remember(root) {
    root.querySelectorAll("article.tile").forEach(function (t) {
      seen[t.getAttribute("data-key")] = t.outerHTML;
    });
  }

  // A new section replaces the old one, but tiles drawn from the same HTML stay as they are
  // (a video playing goes on playing), and a note being written keeps its text and focus.
  function swap(shotId, html) {
    var old = document.getElementById("shot-" + shotId);
    var holder = document.createElement("template");
    holder.innerHTML = html;
    var fresh = holder.content.firstElementChild;
    var refocus = null;  // a note being written: [its new box, selection start, end]
    if (!fresh) { return; }
    fresh.querySelectorAll("article.tile").forEach(function (tile) {
      var key = tile.getAttribute("data-key");
      var html = tile.outerHTML;
      var before = old ? Array.prototype.filter.call(old.querySelectorAll("article.tile"),
        function (t) { return t.getAttribute("data-key") === key; })[0] : null;
      if (before && seen[key] === html) { tile.replaceWith(before); return; }
      seen[key] = html;
      if (!before) { return; }
      var playing = before.querySelector("video");
      var next = tile.querySelector("video");
      if (playing && next && !playing.paused && playing.getAttribute("src") === next.getAttribute("src")) {
        next.replaceWith(playing);
      }
      var note = before.querySelector("textarea"), fresher = tile.querySelector("textarea");
      if (note && fresher && (note === document.activeElement || note.value !== note.defaultValue)) {
        fresher.value = note.value;
        if (note === document.activeElement) {
          refocus = [fresher, note.selectionStart, note.selectionEnd];
        }
      }
    });
    if (old) { old.replaceWith(fresh); } else { main.appendChild(fresh); }
    if (refocus) { refocus[0].focus(); refocus[0].setSelectionRange(refocus[1], refocus[2]); }
  }

  function update(data) {
    document.getElementById("live").innerHTML = data.live;
    Object.keys(data.sections).forEach(function (id) { swap(id, data.sections[id]); });
    document.body.setAttribute("data-version", String(data.version));
    applyFilters();
    if (current) { setCurrent(current); }
    console.debug("shotrun-review: version " + data.version);
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    var tile = target.closest ? target.closest("article.tile") : null;
    if (tile) { setCurrent(tile.getAttribute("data-key")); }
    if (target.matches("button.pick")) {
      post("/api/pick", {shot: target.getAttribute("data-shot"),
                         take: parseInt(target.getAttribute("data-take"), 10)});
    } else if (target.matches("button.save-note")) {
      saveNote(target.getAttribute("data-key"));
    }
  });

  function saveNote(key) {
    var tile = tileOf(key);
    var box = tile ? tile.querySelector("textarea") : null;
    if (!box) { return; }
    post("/api/note", {key: key, text: box.value}).then(function (answer) {
      if (answer && answer.state !== "error") { box.defaultValue = box.value; }
    });
  }

  function shotsShown() {
    return Array.prototype.filter.call(document.querySelectorAll("section.shot"), visible);
  }

  function move(step) {  // to the first shown tile of the next/previous shown shot
    var shots = shotsShown();
    if (!shots.length) { return; }
    var tile = current ? tileOf(current) : null;
    var at = tile ? shots.indexOf(tile.closest("section.shot")) : -1;
    var shot = shots[Math.max(0, Math.min(shots.length - 1, at + step))];
    var first = Array.prototype.filter.call(shot.querySelectorAll("article.tile"), visible)[0];
    if (first) { setCurrent(first.getAttribute("data-key")); shot.scrollIntoView({block: "start"}); }
  }

  function side(step) {
    var tile = current ? tileOf(current) : null;
    if (!tile) { return move(0); }
    var row = Array.prototype.filter.call(tile.closest("section.shot").querySelectorAll("article.tile"), visible);
    var next = row[row.indexOf(tile) + step];
    if (next) { setCurrent(next.getAttribute("data-key")); }
  }

  document.addEventListener("keydown", function (event) {
    var typing = /^(TEXTAREA|INPUT)$/.test(event.target.tagName);
    if (typing) {
      if (event.key === "Escape") { event.target.blur(); }
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && event.target.matches("textarea")) {
        event.preventDefault();
        saveNote(event.target.getAttribute("data-key"));
        event.target.blur();  // saved: the keys move between takes again
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var tile = current ? tileOf(current) : null;
    if (event.key === "j") { move(1); }
    else if (event.key === "k") { move(-1); }
    else if (event.key === "l") { side(1); }
    else if (event.key === "h") { side(-1); }
    else if (event.key === " ") {
      if (!tile) { move(0); tile = current ? tileOf(current) : null; }
      var video = tile ? tile.querySelector("video") : null;
      if (video) { event.preventDefault(); if (video.paused) { video.play(); } else { video.pause(); } }
    } else if (/^[1-9]$/.test(event.key)) {
      if (!tile) { move(0); tile = current ? tileOf(current) : null; }
      if (!tile) { return; }
      var shot = tile.closest("section.shot");
      var button = shot.querySelector('button.pick[data-take="' + event.key + '"]');
      if (button) { button.click(); }
      else { say("take " + event.key + " of " + shot.id.slice(5) + " cannot be picked (not finished, or picked already)", "error"); }
    } else if (event.key === "n") {
      var box = tile ? tile.querySelector("textarea") : null;
      if (box) { event.preventDefault(); box.focus(); }
    }
  });

  remember(document);
  applyFilters();
  var since = document.body.getAttribute("data-version");
  var source = new EventSource("/events?token=" + encodeURIComponent(token) + "&since=" + since);
  source.addEventListener("update", function (event) { update(JSON.parse(event.data)); });
  source.addEventListener("error", function () {
    say("lost touch with shotrun review; trying again", "error");
  });
  source.addEventListener("open", function () {
    if (message.textContent.indexOf("lost touch") === 0) { say(""); }
  });
})();
