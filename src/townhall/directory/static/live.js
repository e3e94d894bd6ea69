/* Live office status over Server-Sent Events. The page is complete without this script: it
   only replaces the numbers and status lines the server rendered, as `office.*` and
   `public.status` events arrive. Elements are found by data attributes:
   data-office-status="<office>", data-wait="<office>:<service>", data-queue="<office>:<service>"
   (cells with data-field), data-office-waiting / data-office-served="<office>". */
(function () {
  "use strict";
  var script = document.getElementById("live-script");
  if (!script || !window.EventSource) { return; }
  var channel = script.getAttribute("data-channel");
  var source = new EventSource("/events/stream?channel=" + encodeURIComponent(channel));

  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }

  function apply(live) {
    if (!live || !live.office) { return; }
    var office = live.office;
    (live.queues || []).forEach(function (q) {
      var key = office + ":" + q.service;
      each('[data-wait="' + key + '"]', function (el) {
        el.textContent = q.waiting + " waiting, about " + q.estimated_wait_minutes + " min";
      });
      each('[data-queue="' + key + '"] [data-field]', function (cell) {
        var field = cell.getAttribute("data-field");
        if (field in q) {
          cell.textContent = q[field] + (field === "estimated_wait_minutes" ? " min" : "");
        }
      });
    });
    each('[data-office-waiting="' + office + '"]', function (el) { el.textContent = live.waiting; });
    each('[data-office-served="' + office + '"]', function (el) { el.textContent = live.served_today; });
    if (live.status) {
      each('[data-office-status="' + office + '"]', function (el) {
        el.textContent = live.status_text || live.status.label;
        el.className = "status status-" + live.status.state;
      });
      each('[data-office-message="' + office + '"]', function (el) {
        el.textContent = "";
        if (live.status.message) {
          var box = document.createElement("div");
          box.className = "alert warning";
          box.setAttribute("role", "status");
          var p = document.createElement("p");
          p.textContent = live.status.message;
          box.appendChild(p);
          el.appendChild(box);
        }
      });
    }
    document.documentElement.setAttribute("data-live-updated", live.at || "");
  }

  ["queue.updated", "office.updated", "office.status"].forEach(function (type) {
    source.addEventListener(type, function (event) {
      try { apply(JSON.parse(event.data).data); } catch (err) { /* a malformed event is skipped */ }
    });
  });
  source.addEventListener("open", function () {
    document.documentElement.setAttribute("data-live", "connected");
  });
})();
