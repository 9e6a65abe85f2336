// The public report page: place a pin (or use the device's location), pick a category,
// describe, add a photo, send it as an Open311 request; follow a report by its token link;
// see the open reports on the map and "me too" the ones close to the pin.
import { config, element, getJson, showDate, t, townMap } from "./common.js";

const V2 = "/open311/v2";
const form = document.getElementById("report-form");
const lat = document.getElementById("lat");
const lon = document.getElementById("long");
const code = document.getElementById("service_code");
let map = null;
let pin = null;

function fail(message) {
  const node = document.getElementById("report-error");
  node.textContent = message;
  node.hidden = false;
}

async function errorText(response) {
  try {
    const body = await response.json();
    return body[0]?.description ?? t("report.error");
  } catch {
    return t("report.error");
  }
}

function setPosition(latitude, longitude, move = false) {
  lat.value = latitude.toFixed(6);
  lon.value = longitude.toFixed(6);
  if (map) {
    if (pin) pin.setLatLng([latitude, longitude]);
    else pin = L.marker([latitude, longitude], { keyboard: false }).addTo(map);
    if (move) map.setView([latitude, longitude], 17);
  }
  checkNearby();
}

function startMap() {
  if (!window.L) return;
  map = townMap("report-map");
  getJson(config.basemap).then((collection) => {
    if (collection?.features?.length) {
      L.geoJSON(collection, { interactive: false, style: { color: "#999", weight: 1, fillOpacity: 0.05 } }).addTo(map);
    }
  });
  map.on("click", (event) => setPosition(event.latlng.lat, event.latlng.lng));
  document.body.dataset.mapReady = "true";
}

document.getElementById("locate").addEventListener("click", () => {
  if (!navigator.geolocation) return fail(t("report.locate_failed"));
  navigator.geolocation.getCurrentPosition(
    (position) => setPosition(position.coords.latitude, position.coords.longitude, true),
    () => fail(t("report.locate_failed")),
    { enableHighAccuracy: true, timeout: 10000 },
  );
});

for (const input of [lat, lon]) {
  input.addEventListener("change", () => {
    const a = Number(lat.value);
    const b = Number(lon.value);
    if (lat.value && lon.value && Number.isFinite(a) && Number.isFinite(b)) setPosition(a, b, true);
  });
}
code.addEventListener("change", () => checkNearby());

// Open reports of the category near the pin: follow one instead of filing a duplicate.
async function checkNearby() {
  const box = document.getElementById("nearby");
  const list = document.getElementById("nearby-list");
  if (!lat.value || !lon.value) return;
  const query = new URLSearchParams({ service_code: code.value, lat: lat.value, long: lon.value });
  const found = (await getJson(`/open311/nearby?${query}`)) ?? [];
  list.replaceChildren();
  for (const item of found) {
    const line = element("li", {}, t("report.nearby_item", {
      name: item.service_name, date: showDate(item.requested_datetime), m: Math.round(item.distance_m),
    }));
    const button = element("button", { type: "button", "data-id": item.service_request_id }, t("report.follow"));
    button.addEventListener("click", async () => {
      const email = document.getElementById("email").value;
      const response = await fetch(`/open311/requests/${encodeURIComponent(item.service_request_id)}/follow`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ email }),
      });
      if (response.ok) button.replaceWith(element("strong", {}, t("report.followed")));
      else fail(await errorText(response));
    });
    line.append(" ", button);
    list.append(line);
  }
  box.hidden = !found.length;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  document.getElementById("report-error").hidden = true;
  if (!lat.value || !lon.value) return fail(t("report.no_position"));
  const data = new FormData(form);
  const media = document.getElementById("media").files[0];
  if (!media) data.delete("media");
  if (!data.get("email")) data.delete("email");
  const button = document.getElementById("submit");
  button.disabled = true;
  button.textContent = t("report.sending");
  try {
    const response = await fetch(`${V2}/requests.json`, { method: "POST", body: data });
    if (!response.ok) return fail(await errorText(response));
    const [created] = await response.json();
    form.hidden = true;
    document.getElementById("done").hidden = false;
    const id = document.getElementById("done-id");
    id.textContent = t("report.done_id", { id: created.service_request_id });
    id.dataset.id = created.service_request_id;
    document.getElementById("done-link").href = `/report?token=${encodeURIComponent(created.token)}`;
    loadOpen();
  } catch {
    fail(t("report.error"));
  } finally {
    button.disabled = false;
    button.textContent = t("report.submit");
  }
});

// ?token= (the reporter's link) or ?id=: the report's status, and reopening a "fixed" one.
async function track() {
  const params = new URLSearchParams(window.location.search);
  const token = params.get("token");
  let id = params.get("id");
  if (!token && !id) return;
  const box = document.getElementById("track");
  box.hidden = false;
  if (token) {
    const found = await getJson(`${V2}/tokens/${encodeURIComponent(token)}.json`);
    id = found?.[0]?.service_request_id;
  }
  const status = document.getElementById("track-status");
  const request = id ? (await getJson(`${V2}/requests/${encodeURIComponent(id)}.json`))?.[0] : null;
  if (!request) {
    status.textContent = t("report.track_unknown");
    return;
  }
  const entity = await getJson(`/ngsi-ld/v1/entities/${encodeURIComponent(`urn:ngsi-ld:service_requests:${id}`)}?options=keyValues`);
  const workflow = entity?.workflow_status ?? request.status;
  status.dataset.status = workflow;
  status.textContent = t("report.track_line", {
    id, name: request.service_name, status: t(`report.status.${workflow}`),
    date: showDate(request.updated_datetime),
  });
  document.getElementById("track-notes").textContent = request.status_notes
    ? t("report.notes", { note: request.status_notes }) : "";
  const reopen = document.getElementById("reopen");
  reopen.hidden = !(token && workflow === "resolved");
  reopen.onclick = async () => {
    const response = await fetch(`/open311/tokens/${encodeURIComponent(token)}/reopen`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
    });
    if (response.ok) track();
  };
}

let openLayer = null;
async function loadOpen() {
  const requests = (await getJson(`${V2}/requests.json?status=open`)) ?? [];
  const list = document.getElementById("open-list");
  list.replaceChildren();
  if (!requests.length) list.append(element("li", {}, t("report.open_none")));
  if (map) {
    openLayer?.remove();
    openLayer = L.layerGroup().addTo(map);
  }
  for (const request of requests.slice(-200).reverse()) {
    const text = t("report.open_item", { name: request.service_name, date: showDate(request.requested_datetime) });
    const line = element("li", {});
    line.append(element("a", { href: `/report?id=${encodeURIComponent(request.service_request_id)}` }, text));
    list.append(line);
    if (openLayer && request.lat !== null && request.long !== null) {
      L.circleMarker([request.lat, request.long], { radius: 7, color: "#c40", fillOpacity: 0.6 })
        .bindTooltip(text).addTo(openLayer);
    }
  }
}

startMap();
track();
loadOpen();
