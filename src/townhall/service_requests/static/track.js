// The tracking page (requests/track.html): live status through Server-Sent Events. The page
// passes its labels and event stream URL in a JSON block (#track-data), so no inline script is needed.
(function () {
  var config = document.getElementById("track-data");
  if (!window.EventSource || !config) return;
  var settings = JSON.parse(config.textContent);
  var labels = settings.labels;
  var source = new EventSource(settings.stream);
  document.getElementById("live-note").hidden = false;
  function onEvent(event) {
    var data = JSON.parse(event.data).data;
    document.getElementById("status-label").textContent = labels[data.sub_status] || data.sub_status;
    document.getElementById("status-notes").textContent = data.status_notes || "";
    if (data.note || event.type === "request.updated") {
      var item = document.createElement("li");
      var when = new Date(data.updated_datetime);
      item.textContent = when.toISOString().slice(0, 16).replace("T", " ") + ": " +
        (labels[data.sub_status] || "") + "." + (data.note ? " " + data.note : "");
      var history = document.getElementById("history");
      history.insertBefore(item, history.firstChild);
    }
    document.getElementById("announcer").textContent =
      "Status: " + (labels[data.sub_status] || data.sub_status) + ". " + (data.note || "");
  }
  source.addEventListener("request.updated", onEvent);
})();
