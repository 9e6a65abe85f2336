// The reports back office: the queue with filters, and for one report its status with a
// note, assignment, moderation, photos (publish, "after" photo) and merging duplicates.
import { element, getJson, show, showDate, t } from "./common.js";

const filters = document.getElementById("filters");
const detail = document.getElementById("detail");
let current = null;

function say(text) {
  document.getElementById("detail-message").textContent = text;
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (!response.ok) {
    let message = t("report.error");
    try { message = (await response.json()).detail ?? message; } catch { /* keep */ }
    say(message);
    return null;
  }
  return response.json();
}

async function loadQueue() {
  const query = new URLSearchParams();
  for (const field of filters.elements) if (field.value) query.set(field.name, field.value);
  const rows = await getJson(`/reports?${query}`);
  const box = document.getElementById("queue");
  if (rows === null) return box.replaceChildren(element("p", { class: "error" }, t("staff.error")));
  if (!rows.length) return box.replaceChildren(element("p", {}, t("staff.empty")));
  const table = element("table");
  const head = element("tr");
  for (const column of ["id", "category", "status", "district", "requested", "action"]) {
    head.append(element("th", { scope: "col" }, t(`report.col.${column}`)));
  }
  table.append(element("thead"));
  table.firstChild.append(head);
  const body = element("tbody");
  for (const row of rows) {
    const line = element("tr", { class: "queue-row", "data-id": row.id });
    line.append(element("td", {}, row.id), element("td", {}, row.service_name),
      element("td", { "data-status": row.status }, t(`report.status.${row.status}`)),
      element("td", {}, row.district || "—"), element("td", {}, showDate(row.created_at)));
    const cell = element("td");
    const button = element("button", { type: "button" }, t("report.open"));
    button.addEventListener("click", () => openReport(row.id));
    cell.append(button);
    line.append(cell);
    body.append(line);
  }
  table.append(body);
  box.replaceChildren(table);
}

async function openReport(id) {
  const report = await getJson(`/reports/${encodeURIComponent(id)}`);
  if (!report) return;
  current = report;
  detail.hidden = false;
  document.getElementById("detail-title").textContent = t("report.detail_title", { id, name: report.service_name });
  const facts = document.getElementById("detail-facts");
  facts.replaceChildren();
  const contact = report.contact ?? {};
  const items = [
    ["status", t(`report.status.${report.status}`)], ["requested", showDate(report.created_at)],
    ["district", report.district || "—"], ["team", report.team], ["assignee", report.assignee || "—"],
    ["description", report.description || "—"], ["followers", show(report.followers)],
    ["contact", [contact.first_name, contact.last_name, contact.email, contact.phone].filter(Boolean).join(" · ") || "—"],
  ];
  for (const [key, value] of items) facts.append(element("dt", {}, t(`report.col.${key}`)), element("dd", { "data-fact": key }, value));
  document.getElementById("team").value = report.team;
  document.getElementById("assignee").value = report.assignee;
  document.getElementById("public-description").value = report.description;
  document.getElementById("publish").checked = report.description_public;
  const photos = document.getElementById("photos");
  photos.replaceChildren();
  for (const photo of report.photos) {
    const line = element("li");
    line.append(element("img", { src: `/reports/${encodeURIComponent(id)}/photos/${photo.id}`, alt: t(`report.photo_${photo.kind}`) }));
    const button = element("button", { type: "button" }, photo.public ? t("report.photo_withdraw") : t("report.photo_publish"));
    button.addEventListener("click", async () => {
      if (await post(`/reports/${encodeURIComponent(id)}/photos/${photo.id}/publication`, { publish: !photo.public, boxes: [] })) openReport(id);
    });
    line.append(button);
    photos.append(line);
  }
  const duplicates = document.getElementById("duplicates");
  duplicates.replaceChildren();
  const candidates = (await getJson(`/reports/${encodeURIComponent(id)}/duplicates`)) ?? [];
  if (!candidates.length) duplicates.append(element("li", {}, t("report.no_duplicates")));
  for (const candidate of candidates) {
    const line = element("li", {}, t("report.duplicate_item", { id: candidate.service_request_id, m: Math.round(candidate.distance_m) }));
    const button = element("button", { type: "button" }, t("report.merge"));
    button.addEventListener("click", async () => {
      if (await post(`/reports/${encodeURIComponent(id)}/merge`, { into: candidate.service_request_id })) {
        say(t("report.merged"));
        loadQueue();
        openReport(id);
      }
    });
    line.append(" ", button);
    duplicates.append(line);
  }
}

document.getElementById("status-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!current) return;
  const body = { status: document.getElementById("new-status").value, note: document.getElementById("note").value };
  if (await post(`/reports/${encodeURIComponent(current.id)}/status`, body)) {
    say(t("report.saved"));
    document.getElementById("note").value = "";
    loadQueue();
    openReport(current.id);
  }
});

document.getElementById("assign-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { team: document.getElementById("team").value, assignee: document.getElementById("assignee").value };
  if (current && await post(`/reports/${encodeURIComponent(current.id)}/assignment`, body)) {
    say(t("report.saved"));
    openReport(current.id);
  }
});

document.getElementById("moderation-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { publish: document.getElementById("publish").checked, description: document.getElementById("public-description").value };
  if (current && await post(`/reports/${encodeURIComponent(current.id)}/moderation`, body)) {
    say(t("report.saved"));
    openReport(current.id);
  }
});

document.getElementById("after-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = document.getElementById("after").files[0];
  if (!current || !file) return;
  const data = new FormData();
  data.append("photo", file);
  data.append("kind", "after");
  const response = await fetch(`/reports/${encodeURIComponent(current.id)}/photos`, { method: "POST", body: data });
  say(response.ok ? t("report.saved") : t("report.error"));
  openReport(current.id);
});

filters.addEventListener("change", loadQueue);
loadQueue();
