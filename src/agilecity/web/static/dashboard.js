// The public dashboard: indicator tiles, the map and its layers, the entity panel with its
// history charts, and live updates from /web/events. Reads only the platform's public APIs.
import { config, element, getJson, show, showDate, t, townMap } from "./common.js";

const NGSI = "/ngsi-ld/v1";
const PAGE = 1000;
const entities = new Map(); // id -> { entity, layer, marker }
const layerGroups = new Map(); // layer key -> Leaflet layer group
let map = null;
let openId = null;
let charts = [];

// -- colours and legend --------------------------------------------------------------------

function colourOf(layer, value) {
  if (layer.colours.length) {
    const hit = layer.colours.find(([v]) => v === value);
    return hit ? hit[1] : layer.colour;
  }
  if (layer.bands.length && typeof value === "number") {
    let colour = layer.bands[0][1];
    for (const [lower, c] of layer.bands) if (value >= lower) colour = c;
    return colour;
  }
  return layer.colour;
}

function legendItems(layer) {
  if (layer.colours.length) return layer.colours.map(([v, c]) => [t(`value.${v}`), c]);
  if (layer.bands.length) {
    return layer.bands.map(([lower, c], i) =>
      [i === 0 ? `< ${show(layer.bands[1]?.[0] ?? lower, layer.unit)}` : `≥ ${show(lower, layer.unit)}`, c]);
  }
  return [[t(layer.key), layer.colour]];
}

function renderLegend() {
  const root = document.getElementById("legend");
  for (const layer of config.layers) {
    const id = `layer-${layer.entity_type.replaceAll(".", "-")}`;
    const box = element("div", { class: "legend-layer" });
    const input = element("input", { type: "checkbox", id, "data-layer": layer.entity_type });
    input.checked = layer.shown;
    input.addEventListener("change", () => toggleLayer(layer, input.checked));
    const label = element("label", { for: id }, t(layer.key));
    const count = element("span", { class: "count", id: `${id}-count` });
    label.append(count);
    box.append(input, label);
    const swatches = element("ul", { class: "swatches" });
    for (const [text, colour] of legendItems(layer)) {
      const item = element("li");
      const swatch = element("span", { class: "swatch", "aria-hidden": "true" });
      swatch.style.background = colour;
      item.append(swatch, document.createTextNode(text));
      swatches.append(item);
    }
    box.append(swatches);
    root.append(box);
  }
}

function toggleLayer(layer, on) {
  const group = layerGroups.get(layer.entity_type);
  if (!map || !group) return;
  if (on) group.addTo(map);
  else group.remove();
}

// -- map --------------------------------------------------------------------------------------

const BASEMAP_STYLE = {
  districts: { color: "#8c959f", weight: 1.5, fill: false, dashArray: "4 4" },
  green_spaces: { color: "#5a9e5f", weight: 1, fillColor: "#b7dfb9", fillOpacity: 0.7 },
  buildings: { color: "#c9c2b8", weight: 0.5, fillColor: "#e4ded6", fillOpacity: 1 },
  streets: { color: "#9aa3ad", weight: 2 },
};

async function drawBasemap() {
  const response = await fetch(config.basemap);
  if (!response.ok) return;
  const collection = await response.json();
  const renderer = L.canvas({ padding: 0.2 });
  L.geoJSON(collection, {
    renderer,
    interactive: false,
    style: (f) => {
      const style = BASEMAP_STYLE[f.properties.layer] ?? {};
      if (f.properties.layer === "streets" && ["primary", "secondary"].includes(f.properties.kind)) {
        return { ...style, weight: 4, color: "#7d8791" };
      }
      return style;
    },
  }).addTo(map);
}

async function fetchLayer(layer) {
  if (layer.url) {
    const collection = await getJson(layer.url);
    return collection ? collection.features : [];
  }
  const found = [];
  for (let offset = 0; ; offset += PAGE) {
    const params = new URLSearchParams({ type: layer.entity_type, limit: PAGE, offset, options: "keyValues" });
    if (layer.q) params.set("q", layer.q);
    const page = await getJson(`${NGSI}/entities?${params}`);
    if (!page) break;
    found.push(...page);
    if (page.length < PAGE) break;
  }
  return found;
}

function drawEntity(layer, group, entity) {
  const geometry = entity.location;
  if (!geometry || !geometry.type) return;
  const value = layer.attribute ? entity[layer.attribute] : undefined;
  const colour = colourOf(layer, value);
  let shape;
  if (geometry.type === "Point") {
    const [lon, lat] = geometry.coordinates;
    shape = L.circleMarker([lat, lon], {
      radius: 6, color: "#1f2328", weight: 1, fillColor: colour, fillOpacity: 0.95,
      className: `marker layer-${layer.entity_type}`,
    });
  } else {
    shape = L.geoJSON(geometry, { style: { color: colour, weight: 2, fillOpacity: 0.3, className: `marker layer-${layer.entity_type}` } });
  }
  shape.bindTooltip(entity.name ?? entity.id);
  shape.on("click", () => openEntity(entity.id));
  shape.addTo(group);
  entities.set(entity.id, { entity, layer, marker: shape });
  mark(entity.id);
}

// Expose the id and the coloured value on the SVG element (tests and screen readers' tools).
function mark(id) {
  const item = entities.get(id);
  const nodes = item.marker.getElement ? [item.marker.getElement()] : [];
  if (!item.marker.getElement && item.marker.eachLayer) item.marker.eachLayer((l) => nodes.push(l.getElement?.()));
  for (const node of nodes) {
    if (!node) continue;
    node.dataset.id = id;
    node.dataset.value = String(item.layer.attribute ? item.entity[item.layer.attribute] ?? "" : "");
  }
}

function drawGridFeature(layer, group, feature) {
  const value = feature.properties?.[layer.attribute];
  L.geoJSON(feature, {
    style: { stroke: false, fillColor: colourOf(layer, value), fillOpacity: 0.45, className: `marker layer-${layer.entity_type}` },
    interactive: false,
  }).addTo(group);
}

async function drawLayers() {
  const picker = document.getElementById("picker");
  let shown = 0;
  for (const layer of config.layers) {
    const group = L.layerGroup();
    layerGroups.set(layer.entity_type, group);
    if (layer.shown) group.addTo(map);
    const items = await fetchLayer(layer);
    const options = element("optgroup", { label: t(layer.key) });
    for (const item of items) {
      if (layer.url) drawGridFeature(layer, group, item);
      else {
        drawEntity(layer, group, item);
        options.append(element("option", { value: item.id }, item.name ?? item.id));
      }
    }
    if (options.children.length) picker.append(options);
    const count = document.getElementById(`layer-${layer.entity_type.replaceAll(".", "-")}-count`);
    if (count) count.textContent = ` (${items.length})`;
    shown += items.length;
  }
  document.getElementById("map-count").textContent = t("map.loaded", { n: shown });
  document.body.dataset.mapReady = "true";
}

function startMap() {
  if (!window.L) return;
  map = townMap("map", { preferCanvas: false, keyboard: true });
  drawBasemap().then(drawLayers);
}

// -- entity panel -----------------------------------------------------------------------------

const HIDDEN = new Set(["id", "type", "location", "@context"]);

function valueOf(attr) {
  if (attr && typeof attr === "object" && "value" in attr) return attr.value;
  if (attr && typeof attr === "object" && "object" in attr) return attr.object;
  return attr;
}

async function openEntity(id) {
  const item = entities.get(id);
  if (!item) return;
  openId = id;
  document.getElementById("picker").value = id;
  const entity = await getJson(`${NGSI}/entities/${encodeURIComponent(id)}`);
  if (!entity || openId !== id) return;
  item.normalized = entity;
  document.getElementById("entity-hint").hidden = true;
  document.getElementById("entity-body").hidden = false;
  document.getElementById("entity-name").textContent = valueOf(entity.name) ?? id;
  renderValues(entity, item.layer);
  const history = document.getElementById("history");
  history.hidden = !item.layer.chart.length;
  if (item.layer.chart.length) await drawHistory(item);
}

function renderValues(entity, layer) {
  const body = document.getElementById("entity-values");
  body.replaceChildren();
  for (const [name, attr] of Object.entries(entity)) {
    if (HIDDEN.has(name)) continue;
    const row = element("tr", { "data-attr": name });
    const unit = layer.chart.includes(name) ? layer.unit : "";
    const cell = element("td", {}, show(valueOf(attr), unit));
    if (attr?.observedAt) cell.append(element("small", {}, ` — ${t("entity.observed")} ${showDate(attr.observedAt)}`));
    row.append(element("th", { scope: "row" }, config.messages[`attr.${name}`] ?? name), cell);
    body.append(row);
  }
}

function period() {
  return document.querySelector('input[name="period"]:checked').value;
}

const SPANS = { P1D: 86400e3, P7D: 7 * 86400e3, P30D: 30 * 86400e3 };
const STEPS = { P7D: "PT1H", P30D: "P1D" };

function seriesOf(attr, method) {
  const list = Array.isArray(attr) ? attr : attr ? [attr] : [];
  const points = [];
  for (const instance of list) {
    for (const row of instance[method] ?? instance.values ?? []) {
      if (typeof row[0] === "number") points.push([Date.parse(row[1]) / 1000, row[0]]);
    }
  }
  return points.sort((a, b) => a[0] - b[0]);
}

async function drawHistory(item) {
  const entity = item.normalized;
  const stamps = item.layer.chart.map((a) => entity[a]?.observedAt).filter(Boolean).map(Date.parse);
  const end = stamps.length ? Math.max(...stamps) : Date.now();
  const span = period();
  const params = new URLSearchParams({
    attrs: item.layer.chart.join(","), timerel: "between",
    timeAt: new Date(end - SPANS[span]).toISOString(), endTimeAt: new Date(end + 1000).toISOString(),
  });
  const method = STEPS[span] ? "avg" : "values";
  if (STEPS[span]) {
    params.set("options", "aggregatedValues");
    params.set("aggrMethods", "avg");
    params.set("aggrPeriodDuration", STEPS[span]);
  } else {
    params.set("options", "temporalValues");
    params.set("lastN", "2000");
  }
  const history = await getJson(`${NGSI}/temporal/entities/${encodeURIComponent(item.entity.id)}?${params}`);
  if (openId !== item.entity.id) return;
  const box = document.getElementById("chart");
  for (const chart of charts) chart.plot?.destroy();
  charts = [];
  box.replaceChildren();
  const summary = [];
  for (const attr of item.layer.chart) {
    const points = seriesOf(history?.[attr], method);
    if (!points.length) continue;
    const values = points.map((p) => p[1]);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const label = config.messages[`attr.${attr}`] ?? attr;
    summary.push(t("entity.chart_summary", {
      attr: label, min: show(Math.min(...values)), mean: show(mean), max: show(Math.max(...values)), n: values.length,
    }));
    const holder = element("figure", { class: "plot", "data-attr": attr, "data-points": String(points.length) });
    holder.append(element("figcaption", {}, `${label}${item.layer.unit && item.layer.chart[0] === attr ? ` (${item.layer.unit})` : ""}`));
    box.append(holder);
    const data = [points.map((p) => p[0]), values];
    const chart = { attr, data, plot: null };
    if (window.uPlot) {
      chart.plot = new uPlot({
        width: Math.max(240, box.clientWidth - 8), height: 160, legend: { show: false },
        series: [{}, { label, stroke: "#1f5fa8", width: 1.5, points: { show: false } }],
        axes: [{}, { size: 48 }],
      }, data, holder);
    }
    charts.push(chart);
  }
  if (!summary.length) summary.push(t("entity.no_history"));
  document.getElementById("chart-summary").textContent = summary.join(" · ");
}

// -- indicator tiles --------------------------------------------------------------------------

async function renderTiles() {
  const root = document.getElementById("panels");
  const answers = new Map();
  const sections = [];
  for (const panel of config.panels) {
    const section = element("section", { class: "panel", "data-service": panel.service });
    section.append(element("h3", {}, t(panel.title)));
    const list = element("dl");
    for (const tile of panel.tiles) {
      if (!answers.has(tile.url)) answers.set(tile.url, getJson(tile.url));
      const answer = await answers.get(tile.url);
      const box = element("div", { class: "tile", "data-field": tile.field });
      box.append(element("dt", {}, t(tile.label)), element("dd", {}, show(answer?.[tile.field], tile.unit)));
      list.append(box);
    }
    section.append(list);
    sections.push(section);
  }
  root.replaceChildren(...sections);
}

let tilesDue = null;
function refreshTilesSoon() {
  if (tilesDue) return;
  tilesDue = setTimeout(() => { tilesDue = null; renderTiles(); }, 5000);
}

// -- live -----------------------------------------------------------------------------------

function onEntityEvent(update) {
  const item = entities.get(update.id);
  if (item) {
    Object.assign(item.entity, update);
    if (item.layer.attribute && item.layer.attribute in update && item.marker.setStyle) {
      item.marker.setStyle({ fillColor: colourOf(item.layer, update[item.layer.attribute]) });
    }
    mark(update.id);
  }
  if (openId === update.id && item?.normalized) {
    for (const [name, value] of Object.entries(update)) {
      if (HIDDEN.has(name)) continue;
      const attr = item.normalized[name];
      if (attr && typeof attr === "object" && "value" in attr) attr.value = value;
      else item.normalized[name] = { type: "Property", value };
    }
    renderValues(item.normalized, item.layer);
    if (period() === "P1D") {
      for (const chart of charts) {
        if (typeof update[chart.attr] === "number") {
          chart.data[0].push(Date.now() / 1000);
          chart.data[1].push(update[chart.attr]);
          chart.plot?.setData(chart.data);
        }
      }
    }
  }
  refreshTilesSoon();
}

function startLive() {
  const status = document.getElementById("live");
  const source = new EventSource("/web/events");
  source.onopen = () => { status.dataset.state = "on"; status.textContent = t("live.on"); };
  source.onerror = () => { status.dataset.state = "off"; status.textContent = t("live.off"); };
  source.addEventListener("entity", (event) => onEntityEvent(JSON.parse(event.data)));
}

// -- start ----------------------------------------------------------------------------------

document.getElementById("picker").addEventListener("change", (e) => e.target.value && openEntity(e.target.value));
document.getElementById("entity-close").addEventListener("click", () => {
  openId = null;
  document.getElementById("entity-body").hidden = true;
  document.getElementById("entity-hint").hidden = false;
  document.getElementById("picker").focus();
});
for (const radio of document.querySelectorAll('input[name="period"]')) {
  radio.addEventListener("change", () => openId && drawHistory(entities.get(openId)));
}
renderLegend();
renderTiles();
setInterval(renderTiles, 60000);
startMap();
startLive();
