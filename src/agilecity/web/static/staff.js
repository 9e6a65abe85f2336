// The staff console: login, the services' staff tables, gateway counters, the audit log.
import { element, getJson, show, t, table } from "./common.js";

const login = document.getElementById("login");
if (login) {
  login.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { username: login.username.value, password: login.password.value };
    const response = await fetch("/auth/login", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (response.ok) window.location.reload();
    else {
      const error = document.getElementById("login-error");
      error.hidden = false;
      login.password.value = "";
      login.password.focus();
    }
  });
}

document.getElementById("logout")?.addEventListener("click", async () => {
  await fetch("/auth/logout", { method: "POST" });
  window.location.reload();
});

function fill(section, node) {
  section.querySelector(".hint")?.remove();
  section.querySelector("table, p.empty")?.remove();
  section.append(node);
}

async function loadTables() {
  for (const section of document.querySelectorAll(".staff-table")) {
    const rows = await getJson(section.dataset.url);
    if (rows === null) fill(section, element("p", { class: "empty error" }, t("staff.error")));
    else if (!rows.length) fill(section, element("p", { class: "empty" }, t("staff.empty")));
    else fill(section, table(rows, section.dataset.columns.split(","), section.dataset.key));
  }
}

async function loadGateway() {
  const section = document.getElementById("gateway");
  if (!section) return;
  const health = await getJson("/health");
  if (!health?.gateway) {
    fill(section, element("p", { class: "empty" }, t("staff.gateway_off")));
    return;
  }
  const rows = Object.entries(health.gateway).map(([counter, count]) => ({ counter, count: show(count) }));
  fill(section, table(rows, ["counter", "count"], "staff"));
}

async function loadAudit() {
  const section = document.getElementById("audit");
  if (!section) return;
  const entries = await getJson("/audit?limit=50");
  if (entries === null) return fill(section, element("p", { class: "empty error" }, t("staff.error")));
  if (!entries.length) return fill(section, element("p", { class: "empty" }, t("staff.empty")));
  fill(section, table(entries, ["time", "actor", "method", "path", "status"], "staff.audit"));
}

if (!login) {
  loadTables();
  loadGateway();
  loadAudit();
  setInterval(() => { loadTables(); loadGateway(); }, 30000);
}
