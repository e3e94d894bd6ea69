/* The area indicators' map: district outlines (the published boundaries dataset, fetched as
   GeoJSON from this portal) shaded by need score, on the vendored Leaflet with no tile server.
   The table on the page holds the same numbers; without JavaScript the map stays hidden.
   Labels are set as text, never as HTML. */
(function () {
  "use strict";
  var el = document.querySelector("[data-area-map]");
  var dataEl = document.getElementById("area-map-scores");
  if (!el || !dataEl || !window.L || !window.fetch) { return; }
  var scores = JSON.parse(dataEl.textContent || "{}");
  var shades = ["#c6dbef", "#6baed6", "#2171b5", "#08306b"];
  function shade(score) {
    if (score === null || score === undefined) { return "#f1f3f5"; }
    if (score < 0.9) { return shades[0]; }
    if (score < 1.0) { return shades[1]; }
    if (score < 1.15) { return shades[2]; }
    return shades[3];
  }
  fetch(el.getAttribute("data-outlines"), { credentials: "same-origin" })
    .then(function (response) { if (!response.ok) { throw new Error(response.status); } return response.json(); })
    .then(function (geojson) {
      el.hidden = false;
      el.classList.add("map-ready");
      var map = L.map(el, { attributionControl: false, zoomSnap: 0.25, scrollWheelZoom: false });
      var layer = L.geoJSON(geojson, {
        style: function (feature) {
          var p = feature.properties || {};
          var row = scores[p.code || p.district_code] || {};
          return { color: "#12355b", weight: 1, fillColor: shade(row.need_score), fillOpacity: 0.8 };
        },
        onEachFeature: function (feature, item) {
          var p = feature.properties || {};
          var code = p.code || p.district_code;
          var row = scores[code] || {};
          var label = document.createElement("span");
          label.textContent = (p.name ? p.name + " (" + code + ")" : code) + ": need score " +
            (row.need_score === undefined || row.need_score === null ? "unknown" : row.need_score) +
            (row.rank ? ", rank " + row.rank : "");
          item.bindTooltip(label);
        }
      }).addTo(map);
      var bounds = layer.getBounds();
      if (bounds.isValid()) { map.fitBounds(bounds, { padding: [10, 10] }); }
    })
    .catch(function () { el.hidden = true; /* the table says it all */ });
})();
