/* Offices on a Leaflet map (vendored, no build step). No tile server is assumed: markers are
   drawn on a plain background, so the map works offline; a page may add tiles with
   data-tiles="https://.../{z}/{x}/{y}.png" and outlines (GeoJSON) with data-outlines="/url". */
(function () {
  "use strict";
  var el = document.querySelector("[data-map]");
  var dataEl = document.getElementById("map-data");
  if (!el || !dataEl || !window.L) { return; }
  var points = JSON.parse(dataEl.textContent || "[]");
  if (!points.length) { el.hidden = true; return; }
  el.classList.add("map-ready");
  var map = L.map(el, { attributionControl: false, zoomSnap: 0.25, scrollWheelZoom: false });
  if (el.dataset.tiles) { L.tileLayer(el.dataset.tiles, { maxZoom: 19 }).addTo(map); }
  if (el.dataset.outlines) {
    fetch(el.dataset.outlines).then(function (r) { return r.json(); }).then(function (geojson) {
      L.geoJSON(geojson, { style: { color: "#6b7785", weight: 1, fill: false } }).addTo(map);
    }).catch(function () { /* outlines are a nicety */ });
  }
  function text(value) {
    var span = document.createElement("span");
    span.textContent = value;
    return span.innerHTML;
  }
  var bounds = [];
  points.forEach(function (p) {
    var marker = L.circleMarker([p.lat, p.lon], {
      radius: 9, color: "#12355b", weight: 2,
      fillColor: p.open ? "#1e6b35" : "#a4161a", fillOpacity: 0.9
    }).addTo(map);
    marker.bindTooltip(p.name);
    marker.bindPopup('<a href="' + encodeURI(p.url) + '">' + text(p.name) + "</a><br>" + text(p.status));
    bounds.push([p.lat, p.lon]);
  });
  if (bounds.length === 1) { map.setView(bounds[0], 15); } else { map.fitBounds(bounds, { padding: [30, 30] }); }

  var nearMe = document.querySelector("[data-near-me]");
  if (nearMe && navigator.geolocation) {
    nearMe.hidden = false;
    nearMe.addEventListener("click", function () {
      navigator.geolocation.getCurrentPosition(function (pos) {
        var url = new URL(window.location.href);
        url.searchParams.set("lat", pos.coords.latitude.toFixed(5));
        url.searchParams.set("lon", pos.coords.longitude.toFixed(5));
        window.location.assign(url.toString());
      });
    });
  }
})();
