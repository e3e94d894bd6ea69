// The request form (requests/new.html): "use my location" and reloading the questions of the
// chosen request type. A file, not an inline script, so the CSP needs no 'unsafe-inline'.
(function () {
  var button = document.getElementById("locate");
  if (navigator.geolocation && button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.geolocation.getCurrentPosition(function (pos) {
        document.getElementById("lat").value = pos.coords.latitude.toFixed(6);
        document.getElementById("long").value = pos.coords.longitude.toFixed(6);
      });
    });
  }
  var select = document.getElementById("service_code");
  if (select) {
    select.addEventListener("change", function () {
      // The questions depend on the request type: load them (what was typed is kept by the browser's history).
      if (select.value) window.location.href = "/requests/new?service=" + encodeURIComponent(select.value);
    });
  }
  var error = document.getElementById("form-error");
  if (error) error.focus();
})();
