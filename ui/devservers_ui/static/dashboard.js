// The dashboard's only script: live rows, countdowns, the create form's checks, a server's actions and logs.
// Plain JavaScript for current browsers; the HTML comes from the server (pages.py), this only swaps it.
"use strict";

function timeLeft(expiresAt, now) {
  if (!expiresAt) return "never";
  let seconds = Math.floor((Date.parse(expiresAt) - now) / 1000);
  if (seconds <= 0) return "expired";
  const days = Math.floor(seconds / 86400); seconds -= days * 86400;
  const hours = Math.floor(seconds / 3600); seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60); seconds -= minutes * 60;
  const parts = days ? [days + "d"] : [];
  if (days || hours) parts.push(hours + "h");
  if (days) parts.push(minutes + "m"); else parts.push(minutes + "m", seconds + "s");
  return parts.join(" ");
}

function ago(at, now) {
  if (!at) return "\u2014";
  const seconds = Math.max(0, Math.floor((now - Date.parse(at)) / 1000));
  if (seconds < 60) return seconds + "s ago";
  if (seconds < 3600) return Math.floor(seconds / 60) + "m ago";
  if (seconds < 86400) return Math.floor(seconds / 3600) + "h ago";
  return Math.floor(seconds / 86400) + "d ago";
}

function tick() {
  const now = Date.now();
  for (const cell of document.querySelectorAll(".countdown")) {
    const text = timeLeft(cell.dataset.expiresAt, now);
    if (cell.textContent !== text) cell.textContent = text;
  }
  for (const cell of document.querySelectorAll(".ago")) {
    const text = ago(cell.dataset.at, now);
    if (cell.textContent !== text) cell.textContent = text;
  }
}

function fromHtml(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  return template.content.firstElementChild;
}

async function send(path, body) {
  const response = await fetch(path, {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify(body || {}),
  });
  let answer = {};
  try { answer = await response.json(); } catch (e) { answer = {error: response.status + " " + response.statusText}; }
  answer.status = response.status;
  return answer;
}

// -- the list --------------------------------------------------------------------------------------------

function startList() {
  const body = document.querySelector("#servers tbody");
  const namespaceFilter = document.getElementById("namespace-filter");
  const phaseFilter = document.getElementById("phase-filter");
  const state = document.getElementById("live-state");
  const problem = document.getElementById("live-error");
  const empty = document.getElementById("empty");
  const params = new URLSearchParams(location.search);
  if (params.get("namespace")) namespaceFilter.value = params.get("namespace");
  if (params.get("phase")) phaseFilter.value = params.get("phase");

  function ensureNamespaceOption(namespace) {
    if ([...namespaceFilter.options].some(o => o.value === namespace)) return;
    const option = document.createElement("option");
    option.value = option.textContent = namespace;
    namespaceFilter.appendChild(option);
  }

  function applyFilters() {
    const ns = namespaceFilter.value, phase = phaseFilter.value;
    let shown = 0;
    for (const tr of body.rows) {
      const visible = (!ns || tr.dataset.namespace === ns) && (!phase || tr.dataset.phase === phase);
      tr.hidden = !visible;
      if (visible) shown++;
    }
    empty.hidden = shown > 0;
    const query = new URLSearchParams();
    if (ns) query.set("namespace", ns);
    if (phase) query.set("phase", phase);
    history.replaceState(null, "", query.toString() ? "?" + query : location.pathname);
  }

  function place(change) {
    const existing = body.querySelector(`tr[data-key="${CSS.escape(change.key)}"]`);
    if (change.type === "DELETED") { if (existing) existing.remove(); return; }
    ensureNamespaceOption(change.namespace);
    const fresh = fromHtml(change.html);
    if (existing) { existing.replaceWith(fresh); return; }
    const following = [...body.rows].find(tr => tr.dataset.key > change.key);
    body.insertBefore(fresh, following || null);
  }

  namespaceFilter.addEventListener("change", applyFilters);
  phaseFilter.addEventListener("change", applyFilters);
  applyFilters();

  const events = new EventSource("/events");
  events.addEventListener("open", () => { state.textContent = "live"; state.className = "live on"; });
  events.addEventListener("error", () => { state.textContent = "reconnecting…"; state.className = "live off"; });
  events.addEventListener("snapshot", (event) => {
    const rows = JSON.parse(event.data).rows;
    const keys = new Set(rows.map(r => r.key));
    for (const tr of [...body.rows]) if (!keys.has(tr.dataset.key)) tr.remove();
    for (const change of rows) place(change);
    applyFilters();
  });
  events.addEventListener("change", (event) => { place(JSON.parse(event.data)); applyFilters(); });
  events.addEventListener("failure", (event) => {
    problem.textContent = JSON.parse(event.data).message; problem.hidden = false;
  });
  events.addEventListener("recovered", () => { problem.hidden = true; });
}

// -- the create form -------------------------------------------------------------------------------------

function startCreateForm() {
  const form = document.getElementById("create-form");
  const state = document.getElementById("create-state");
  const distributed = document.getElementById("distributed");
  const homeEnabled = document.getElementById("homeEnabled");
  const homeSize = document.getElementById("homeSize");
  let timer = null;

  function values() {
    const v = {};
    for (const element of form.elements) {
      if (!element.name) continue;
      v[element.name] = element.type === "checkbox" ? element.checked : element.value;
    }
    return v;
  }

  function show(errors) {
    for (const box of form.querySelectorAll(".field-error")) {
      const key = box.id.replace(/-error$/, "");
      const message = errors[key];
      box.textContent = message || "";
      box.hidden = !message;
      const input = document.getElementById(key);
      if (input && input !== box) input.setAttribute("aria-invalid", message ? "true" : "false");
    }
  }

  async function check() {
    const answer = await send("/api/validate", values());
    const errors = answer.errors || (answer.error ? {form: answer.error} : {});
    show(errors);
    return errors;
  }

  function sync() {
    document.getElementById("distributed-options").hidden = !distributed.checked;
    homeSize.disabled = !homeEnabled.checked;
  }

  distributed.addEventListener("change", sync);
  homeEnabled.addEventListener("change", sync);
  sync();
  form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(check, 300); });
  form.addEventListener("change", () => { clearTimeout(timer); timer = setTimeout(check, 50); });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearTimeout(timer);
    const button = document.getElementById("create");
    button.disabled = true;
    state.textContent = "Checking…";
    try {
      const errors = await check();
      const first = Object.keys(errors)[0];
      if (first) {
        state.textContent = "Fix the fields marked above; nothing was sent.";
        const input = document.getElementById(first);
        if (input && input.focus) input.focus();
        return;
      }
      state.textContent = "Creating…";
      const answer = await send("/api/servers", values());
      if (answer.url) { location.assign(answer.url); return; }
      show(answer.errors || {form: answer.error});
      state.textContent = answer.error || "Not created: fix the fields marked above.";
    } finally {
      button.disabled = false;
    }
  });
}

// -- a server's page -------------------------------------------------------------------------------------

function startServerPage() {
  const config = JSON.parse(document.body.dataset.config);
  const base = `/servers/${encodeURIComponent(config.namespace)}/${encodeURIComponent(config.name)}`;
  const api = `/api${base}`;
  const state = document.getElementById("action-state");
  const slot = document.getElementById("details-slot");
  const rankSelect = document.getElementById("log-rank");
  let refreshing = null, again = false, logStream = null;

  function syncRanks() {
    const details = document.getElementById("details");
    const ranks = (details.dataset.ranks || "0").split(",");
    const chosen = rankSelect.value;
    if ([...rankSelect.options].map(o => o.value).join(",") === ranks.join(",")) return;
    rankSelect.replaceChildren(...ranks.map(r => { const o = document.createElement("option"); o.value = o.textContent = r; return o; }));
    if (ranks.includes(chosen)) rankSelect.value = chosen;
  }

  async function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = (async () => {
      try {
        const response = await fetch(base + "/details", {credentials: "same-origin"});
        if (response.status === 404) { state.textContent = `${config.name} is gone.`; return; }
        if (!response.ok) return;
        const fresh = fromHtml(await response.text());
        document.getElementById("details").replaceWith(fresh);
        syncRanks();
        tick();
      } finally {
        refreshing = null;
        if (again) { again = false; refresh(); }
      }
    })();
  }

  async function act(action, body, doing) {
    state.textContent = doing;
    const answer = await send(`${api}/${action}`, body);
    if (answer.ok) {
      state.textContent = `${doing.replace(/…$/, "")}: done.`;
      refresh();
    } else {
      state.textContent = answer.error || `Failed (${answer.status}).`;
    }
    return answer;
  }

  document.getElementById("extend").addEventListener("click", () =>
    act("extend", {by: document.getElementById("extend-by").value}, "Extending…"));
  document.getElementById("stop").addEventListener("click", () => act("stop", {}, "Stopping…"));
  document.getElementById("start").addEventListener("click", () => act("start", {}, "Starting…"));
  document.getElementById("change-flavor").addEventListener("click", () =>
    act("flavor", {flavor: document.getElementById("new-flavor").value}, "Changing the flavor…"));
  const dialog = document.getElementById("confirm-delete");
  document.getElementById("delete").addEventListener("click", () => dialog.showModal());
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "delete") { state.textContent = "Not deleted."; return; }
    const answer = await act("delete", {confirm: config.name}, "Deleting…");
    if (answer.ok) state.textContent = `Deleting ${config.name}: its pods and volumes go with it.`;
  });
  const jupyter = document.getElementById("open-jupyter");
  if (jupyter) jupyter.addEventListener("click", async () => {
    jupyter.disabled = true;
    try {
      const answer = await act("jupyter", {}, "Starting JupyterLab…");
      if (!answer.url) return;
      // A link rather than window.open: a tab opened after an await is a popup the browser may block.
      const link = document.createElement("a");
      link.href = answer.url; link.target = "_blank"; link.rel = "noopener"; link.id = "jupyter-link";
      link.textContent = "Open JupyterLab in a new tab";
      state.replaceChildren("JupyterLab is ready: ", link);
      link.focus();
    } finally {
      jupyter.disabled = false;
    }
  });

  const logs = document.getElementById("logs");
  const logState = document.getElementById("log-state");
  document.getElementById("show-logs").addEventListener("click", () => {
    if (logStream) logStream.close();
    logs.textContent = "";
    const follow = document.getElementById("log-follow").checked ? "1" : "0";
    logState.textContent = follow === "1" ? "following…" : "reading…";
    logStream = new EventSource(`${base}/logs?rank=${encodeURIComponent(rankSelect.value)}&follow=${follow}`);
    logStream.addEventListener("line", (event) => {
      const atBottom = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
      logs.append(JSON.parse(event.data).line + "\n");
      if (atBottom) logs.scrollTop = logs.scrollHeight;
    });
    logStream.addEventListener("end", () => { logState.textContent = "end of log"; logStream.close(); });
    logStream.addEventListener("failure", (event) => {
      logState.textContent = JSON.parse(event.data).message; logStream.close();
    });
  });

  syncRanks();
  const events = new EventSource(`/events?key=${encodeURIComponent(config.namespace + "/" + config.name)}`);
  events.addEventListener("change", (event) => {
    const change = JSON.parse(event.data);
    if (change.type === "DELETED") {
      state.textContent = `${config.name} was deleted.`;
      document.getElementById("phase").textContent = "Deleted";
      document.getElementById("details").dataset.phase = "Deleted";
      return;
    }
    const countdown = document.getElementById("countdown");
    countdown.dataset.expiresAt = change.row.expiresAt || "";
    const phase = document.getElementById("phase");
    phase.textContent = change.row.phase;
    phase.className = `phase phase-${change.row.phase.toLowerCase()}`;
    tick();
    refresh();
  });
  events.addEventListener("open", refresh);
  // Pods and Events change without the DevServer changing: look again now and then.
  setInterval(refresh, 5000);
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "list") startList();
  if (page === "new") startCreateForm();
  if (page === "server") startServerPage();
  tick();
  setInterval(tick, 1000);
});
