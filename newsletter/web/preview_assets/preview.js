// Live preview: poll /api/version, and when it moves re-render the iframe and the tabs.
(function () {
  "use strict";
  var version = -1;
  var asEmail = "";
  var $ = function (id) { return document.getElementById(id); };

  function query(extra) {
    var q = asEmail ? "?as=" + encodeURIComponent(asEmail) : "?";
    return q + (q.length > 1 ? "&" : "") + extra;
  }

  function fitFrame() {
    var frame = $("frame");
    try {
      var doc = frame.contentDocument;
      if (doc && doc.documentElement) {
        frame.style.height = Math.max(400, doc.documentElement.scrollHeight) + "px";
      }
    } catch (e) { /* cross-origin: keep the default height */ }
  }

  function setText(id, value) { $(id).textContent = value || ""; }

  function show(state) {
    var err = $("error");
    if (state.error) {
      err.hidden = false;
      err.textContent = state.error;
      $("status").textContent = "render failed";
    } else {
      err.hidden = true;
      err.textContent = "";
      setText("subject", state.subject);
      setText("preheader", state.preheader);
      setText("text", state.text);
      setText("source", state.source);
      var table = $("headers");
      table.textContent = "";
      (state.headers || []).forEach(function (pair) {
        var tr = document.createElement("tr");
        pair.forEach(function (cell) {
          var td = document.createElement("td");
          td.textContent = cell;
          tr.appendChild(td);
        });
        table.appendChild(tr);
      });
      var list = $("lint");
      list.textContent = "";
      var findings = state.findings || [];
      findings.forEach(function (f) {
        var li = document.createElement("li");
        li.className = f.severity;
        li.textContent = f.source + ": " + f.severity + ": " + f.message + " [" + f.code + "]";
        list.appendChild(li);
      });
      (state.warnings || []).forEach(function (w) {
        var li = document.createElement("li");
        li.className = "warning";
        li.textContent = w;
        list.appendChild(li);
      });
      if (!findings.length && !(state.warnings || []).length) {
        var ok = document.createElement("li");
        ok.textContent = "No findings.";
        list.appendChild(ok);
      }
      setText("lint-count", "(" + findings.length + ")");
      $("status").textContent = "updated " + new Date().toLocaleTimeString() +
        " · " + Math.round(state.html_bytes / 1024) + " KB";
    }
    document.body.setAttribute("data-version", String(state.version));
  }

  function refresh(v) {
    version = v;
    fetch("/api/state" + query("v=" + v), { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (state) {
        show(state);
        $("frame").src = "/email.html" + query("v=" + v);
      });
  }

  function poll() {
    fetch("/api/version", { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (d) { if (d.version !== version) { refresh(d.version); } })
      .catch(function () { $("status").textContent = "preview server not reachable"; })
      .then(function () { fitFrame(); setTimeout(poll, 500); });
  }

  function setWidth(mode) {
    var box = $("frame-box");
    box.className = "frame-box " + mode;
    ["desktop", "mobile"].forEach(function (id) {
      $(id).classList.toggle("active", id === mode);
      $(id).setAttribute("aria-pressed", id === mode ? "true" : "false");
    });
    setTimeout(fitFrame, 50);
  }

  $("desktop").addEventListener("click", function () { setWidth("desktop"); });
  $("mobile").addEventListener("click", function () { setWidth("mobile"); });
  $("frame").addEventListener("load", fitFrame);

  Array.prototype.forEach.call(document.querySelectorAll(".tabs button"), function (btn) {
    btn.addEventListener("click", function () {
      var name = btn.getAttribute("data-tab");
      Array.prototype.forEach.call(document.querySelectorAll(".tabs button"), function (b) {
        b.classList.toggle("active", b === btn);
      });
      Array.prototype.forEach.call(document.querySelectorAll(".panel"), function (p) {
        p.classList.toggle("active", p.id === "tab-" + name);
      });
    });
  });

  $("as").addEventListener("change", function () {
    asEmail = $("as").value.trim();
    refresh(version);
  });

  fetch("/api/subscribers").then(function (r) { return r.json(); }).then(function (list) {
    var dl = $("subscribers");
    list.forEach(function (email) {
      var opt = document.createElement("option");
      opt.value = email;
      dl.appendChild(opt);
    });
  });

  poll();
})();
