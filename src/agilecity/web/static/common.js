// Shared by the pages: the configuration the server embedded, messages, number formats.
export const config = JSON.parse(document.getElementById("config").textContent);

// A message of the page's language, with {name} placeholders filled in.
export function t(key, vars = {}) {
  let text = config.messages[key] ?? key;
  for (const [name, value] of Object.entries(vars)) text = text.replaceAll(`{${name}}`, value);
  return text;
}

const numbers = new Intl.NumberFormat(config.lang, { maximumFractionDigits: 1 });
const dates = new Intl.DateTimeFormat(config.lang, { dateStyle: "short", timeStyle: "short" });

// A value as people read it: numbers in the page's locale, dates, known enum values translated.
export function show(value, unit = "") {
  if (value === null || value === undefined) return t("tiles.none");
  if (typeof value === "number") return numbers.format(value) + (unit ? ` ${unit}` : "");
  if (typeof value === "object" && value["@value"]) return showDate(value["@value"]);
  if (typeof value === "string" && /^\d{4}-\d\d-\d\dT/.test(value)) return showDate(value);
  if (typeof value === "string") return config.messages[`value.${value}`] ?? value;
  if (Array.isArray(value)) return value.map((v) => show(v)).join(", ");
  return JSON.stringify(value);
}

export function showDate(text) {
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? text : dates.format(date);
}

// GET a JSON resource of the platform (the session cookie goes along); null on failure.
export async function getJson(url) {
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) return null;
    return await response.json();
  } catch {
    return null;
  }
}

export function element(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

// A table of rows (objects) with the given columns, headers from messages <key>.<column>.
export function table(rows, columns, key, caption = "") {
  const node = element("table");
  if (caption) node.append(element("caption", {}, caption));
  const head = element("tr");
  for (const column of columns) head.append(element("th", { scope: "col" }, t(`${key}.${column}`)));
  const thead = element("thead");
  thead.append(head);
  node.append(thead);
  const body = element("tbody");
  for (const row of rows) {
    const line = element("tr");
    for (const column of columns) line.append(element("td", {}, show(row[column])));
    body.append(line);
  }
  node.append(body);
  return node;
}

// A Leaflet map on the town: fitted to the basemap's bounds, with the city's tile server if any.
export function townMap(id, options = {}) {
  const map = L.map(id, { zoomSnap: 0.5, ...options });
  if (config.bounds) {
    const [w, s, e, n] = config.bounds;
    map.fitBounds([[s, w], [n, e]]);
  } else {
    map.setView([46.6, 2.4], 6);
  }
  if (config.tileUrl) {
    L.tileLayer(config.tileUrl, { attribution: config.tileAttribution, maxZoom: 19 }).addTo(map);
  }
  map.attributionControl.setPrefix(false);
  return map;
}
