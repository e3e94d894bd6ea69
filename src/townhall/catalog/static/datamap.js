/* The dataset page's map: the table's points or shapes (GeoJSON embedded in the page) on the
   vendored Leaflet, with no tile server: a plain background, so it works offline and sends
   nobody's position to a third party. Labels are set as text, never as HTML. */
(function () {
  "use strict";
  var el = document.querySelector("[data-data-map]");
  var dataEl = document.getElementById("data-map-features");
  if (!el || !dataEl || !window.L) { return; }
  var collection = JSON.parse(dataEl.textContent || "{}");
  if (!collection.features || !collection.features.length) { return; }
  el.classList.add("map-ready");
  var map = L.map(el, {
    attributionControl: false, zoomSnap: 0.25, scrollWheelZoom: false, preferCanvas: true
  });
  function labelOf(feature) {
    var text = feature.properties && feature.properties.label;
    var node = document.createElement("span");
    node.textContent = text === null || text === undefined || text === "" ? "(no label)" : String(text);
    return node;
  }
  var layer = L.geoJSON(collection, {
    style: function () { return { color: "#0b5cad", weight: 1.5, fillColor: "#0b5cad", fillOpacity: 0.18 }; },
    pointToLayer: function (_feature, latlng) {
      return L.circleMarker(latlng, {
        radius: 5, color: "#12355b", weight: 1, fillColor: "#0b5cad", fillOpacity: 0.75
      });
    },
    onEachFeature: function (feature, item) {
      item.bindTooltip(labelOf(feature));
    }
  }).addTo(map);
  L.control.scale({ imperial: false }).addTo(map);
  var bounds = layer.getBounds();
  if (bounds.isValid()) {
    if (bounds.getNorthEast().equals(bounds.getSouthWest())) { map.setView(bounds.getCenter(), 15); }
    else { map.fitBounds(bounds, { padding: [20, 20] }); }
  }
  el.setAttribute("data-features", String(collection.features.length));
})();
