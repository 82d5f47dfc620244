// The last-seen point with the broadcast circles, drawn as SVG from the coordinates alone: no
// tiles, no internet (command centres may be offline). A local flat projection around the point
// is exact enough for circles of a few hundred km; the scale bar says how far is how much.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function niceKm(km) {
  const steps = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];
  return steps.reduce((best, s) => (s <= km ? s : best), steps[0]);
}

function lastSeenMap(lat, lon, broadcast, labels) {
  const size = 260, c = size / 2, usable = size / 2 - 18;
  const rings = (broadcast && broadcast.rings_km) || [];
  const maxKm = rings.length ? Math.max(...rings) : 5;
  const scale = usable / maxKm; // px per km
  const svg = svgEl("svg", {viewBox: `0 0 ${size} ${size}`, width: size, height: size, role: "img",
    "aria-label": `${labels.map} ${lat.toFixed(4)}, ${lon.toFixed(4)}`, class: "map"});
  svg.append(svgEl("rect", {x: 0, y: 0, width: size, height: size, class: "map-bg"}));
  // A graticule every quarter of the widest circle, so the eye can judge distance.
  for (let i = 1; i <= 3; i++) {
    const d = (usable * i) / 3;
    svg.append(svgEl("line", {x1: c - d, y1: 4, x2: c - d, y2: size - 4, class: "map-grid"}));
    svg.append(svgEl("line", {x1: c + d, y1: 4, x2: c + d, y2: size - 4, class: "map-grid"}));
    svg.append(svgEl("line", {x1: 4, y1: c - d, x2: size - 4, y2: c - d, class: "map-grid"}));
    svg.append(svgEl("line", {x1: 4, y1: c + d, x2: size - 4, y2: c + d, class: "map-grid"}));
  }
  svg.append(svgEl("line", {x1: c, y1: 4, x2: c, y2: size - 4, class: "map-axis"}));
  svg.append(svgEl("line", {x1: 4, y1: c, x2: size - 4, y2: c, class: "map-axis"}));
  const current = broadcast ? broadcast.current_km : null;
  for (const km of rings) {
    const r = km * scale;
    svg.append(svgEl("circle", {cx: c, cy: c, r: r.toFixed(1), class: km === current ? "ring current" : "ring"}));
    svg.append(svgEl("text", {x: (c + r * 0.72).toFixed(1), y: (c - r * 0.72).toFixed(1), class: "ring-label"}, `${km} km`));
  }
  svg.append(svgEl("circle", {cx: c, cy: c, r: 5, class: "point"}));
  // North arrow.
  svg.append(svgEl("path", {d: `M ${size - 20} 26 l 6 -14 l 6 14 l -6 -4 z`, class: "north"}));
  svg.append(svgEl("text", {x: size - 14, y: 38, class: "north-label"}, "N"));
  // Scale bar: a round distance about a quarter of the width.
  const barKm = niceKm(maxKm / 2);
  const barPx = barKm * scale;
  svg.append(svgEl("line", {x1: 10, y1: size - 12, x2: (10 + barPx).toFixed(1), y2: size - 12, class: "scale"}));
  svg.append(svgEl("text", {x: 10, y: size - 17, class: "scale-label"}, `${barKm} km`));
  svg.append(svgEl("text", {x: 8, y: 16, class: "coords"},
    `${Math.abs(lat).toFixed(4)}°${lat >= 0 ? "N" : "S"} ${Math.abs(lon).toFixed(4)}°${lon >= 0 ? "E" : "W"}`));
  return svg;
}
