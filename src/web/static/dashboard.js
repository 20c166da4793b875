// rushes dashboard: live updates from /api/events (SSE). The page works without this script;
// with it, rows and the feed panel update in place and buttons act without a reload.
(function () {
  "use strict";

  const live = document.getElementById("live");
  const toast = document.getElementById("toast");
  const tbody = document.querySelector("table.deliveries tbody");
  const filtered = document.body.dataset.filtered === "true";

  function say(text) {
    if (!toast) return;
    toast.textContent = text;
    toast.classList.add("show");
    clearTimeout(say.timer);
    say.timer = setTimeout(() => toast.classList.remove("show"), 3500);
  }

  function human(bytes) {
    if (bytes == null) return "";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let n = bytes, i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
  }

  function duration(seconds) {
    if (seconds == null || !isFinite(seconds)) return "";
    seconds = Math.round(seconds);
    if (seconds < 60) return seconds + " s";
    const m = Math.floor(seconds / 60), s = seconds % 60;
    if (m < 60) return m + " min " + s + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  // Times are rendered in UTC by the server; show them in the viewer's zone (UTC kept as tooltip).
  function localize(root) {
    root.querySelectorAll("time[datetime]").forEach((t) => {
      if (t.dataset.local) return;
      const d = new Date(t.dateTime);
      if (isNaN(d)) return;
      t.title = t.textContent;
      // The zone is named ("UTC", "CET", "GMT+1"): a time without it is ambiguous.
      const options = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", timeZoneName: "short" };
      if (t.dataset.seconds) options.second = "2-digit";
      t.textContent = d.toLocaleString(undefined, options);
      t.dataset.local = "1";
    });
  }

  async function replaceRow(id) {
    const response = await fetch("/ui/deliveries/" + id + "/row", { headers: { Accept: "text/html" } });
    if (!response.ok) return;
    const html = await response.text();
    const holder = document.createElement("tbody");
    holder.innerHTML = html.trim();
    const row = holder.firstElementChild;
    if (!row) return;
    localize(row);
    const existing = document.getElementById("delivery-" + id);
    if (existing) {
      existing.replaceWith(row);
    } else if (tbody && !filtered) {
      const empty = tbody.querySelector(".empty-row");
      if (empty) empty.remove();
      // Newest first, as the server orders them: before the first row that sorts lower.
      const key = row.dataset.sort || "";
      const next = Array.from(tbody.querySelectorAll("tr[data-sort]")).find((r) => r.dataset.sort < key);
      tbody.insertBefore(row, next || null);
    }
    scheduleCounts();
  }

  // Per-state counts, refreshed at most every half second while rows change.
  function scheduleCounts() {
    if (scheduleCounts.pending) return;
    scheduleCounts.pending = setTimeout(async () => {
      scheduleCounts.pending = null;
      const counts = document.getElementById("counts");
      if (!counts) return;
      const response = await fetch("/ui/counts", { headers: { Accept: "text/html" } });
      if (response.ok) counts.outerHTML = await response.text();
    }, 500);
  }

  // A batch of new deliveries too large to list: the table is read again, at most once at a time
  // (a batch arriving meanwhile asks for one more read after it).
  async function reloadTable() {
    if (!tbody || filtered) return;
    if (reloadTable.running) { reloadTable.again = true; return; }
    reloadTable.running = true;
    try {
      do {
        reloadTable.again = false;
        const response = await fetch(location.pathname + location.search, { headers: { Accept: "text/html" } });
        if (!response.ok) break;
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.querySelector("table.deliveries tbody");
        if (fresh) {
          tbody.replaceChildren(...Array.from(fresh.childNodes).map((n) => document.adoptNode(n)));
          localize(tbody);
        }
        scheduleCounts();
      } while (reloadTable.again);
    } finally {
      reloadTable.running = false;
    }
  }

  function added(event) {
    if (Array.isArray(event.ids)) event.ids.forEach((id) => replaceRow(id));
    else reloadTable();
  }

  async function refreshFeedPanel() {
    const panel = document.getElementById("feed-panel");
    if (!panel) return;
    const response = await fetch("/ui/feed", { headers: { Accept: "text/html" } });
    if (response.ok) {
      panel.outerHTML = await response.text();
      localize(document.getElementById("feed-panel") || document);
    }
  }

  async function refreshFrameioPanel() {
    const panel = document.getElementById("frameio-panel");
    if (!panel) return;
    const response = await fetch("/ui/frameio", { headers: { Accept: "text/html" } });
    if (response.ok) {
      panel.outerHTML = await response.text();
      localize(document.getElementById("frameio-panel") || document);
    }
  }

  function progress(event) {
    const box = document.querySelector('[data-progress="' + event.id + '"]');
    if (!box) { replaceRow(event.id); return; }
    const total = event.total || null;
    const done = event.bytes || 0;
    const pct = total ? Math.min(100, Math.floor((done * 100) / total)) : null;
    const fill = box.querySelector(".fill");
    if (fill && pct != null) fill.style.width = pct + "%";
    box.dataset.pct = pct == null ? "" : String(pct);
    const set = (cls, text) => { const el = box.querySelector(cls); if (el) el.textContent = text; };
    set(".pct", pct == null ? human(done) : pct + " %");
    set(".bytes", total ? human(done) + " / " + human(total) : human(done));
    set(".speed", event.speed_bps ? human(event.speed_bps) + "/s" : "");
    set(".segments", event.segments > 1 ? event.segments + " connections" : "");
    set(".eta", event.eta_s != null ? "ETA " + duration(event.eta_s) : "");
  }

  function handle(event) {
    if (!event || !event.type) return;
    if (event.type === "progress") progress(event);
    else if (event.type === "delivery_changed") replaceRow(event.id);
    else if (event.type === "deliveries_added") added(event);
    else if (event.type === "feed_updated") refreshFeedPanel();
    else if (event.type === "upload_changed") refreshFrameioPanel();
  }

  function connect() {
    const source = new EventSource("/api/events");
    source.onopen = () => { live && live.classList.add("on"); live && (live.lastElementChild.textContent = "Live"); };
    source.onerror = () => { live && live.classList.remove("on"); live && (live.lastElementChild.textContent = "Reconnecting…"); };
    const onData = (e) => { try { handle(JSON.parse(e.data)); } catch (_) { /* ignore a malformed event */ } };
    source.onmessage = onData;
    for (const name of ["progress", "delivery_changed", "deliveries_added", "feed_updated", "upload_changed"]) source.addEventListener(name, onData);
    // EventSource reconnects by itself after an error.
  }

  // Buttons post to the JSON API; the row then updates from the event stream (and right away here).
  document.addEventListener("submit", async (e) => {
    const form = e.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.action) return;
    e.preventDefault();
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    try {
      const init = { method: "POST", headers: { Accept: "application/json" } };
      if (form.dataset.action === "password") {
        // The password goes in the body once, then leaves the page.
        const field = form.querySelector("input[name=password]");
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify({ password: field ? field.value : "" });
        if (field) field.value = "";
      }
      if (form.dataset.json) {
        // Decision buttons and verdict corrections: the form's fields as a JSON body.
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(Object.fromEntries(new FormData(form).entries()));
      }
      const response = await fetch(form.action, init);
      const body = await response.json().catch(() => ({}));
      if (!response.ok) say(body.error || "Failed (" + response.status + ")");
      else if (form.dataset.action === "password") say("Password given: queued again");
      else if (form.dataset.action === "refresh") { say("Feed fetched"); refreshFeedPanel(); }
      else if (form.dataset.action === "review") { say("Review state: " + body.state.replace("_", " ")); refreshFrameioPanel(); }
      else if (form.dataset.action === "label") { say("Verdict corrected: " + body.expected.replace("_", " ")); refreshFrameioPanel(); }
      else if (form.dataset.action === "replay") { say("Event " + form.dataset.event + " replayed: " + body.outcome); refreshFrameioPanel(); }
      if (form.dataset.id) await replaceRow(form.dataset.id);
    } catch (err) {
      say("Network error: " + err.message);
    } finally {
      if (button && document.contains(button)) button.disabled = false;
    }
  });

  document.addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-copy]");
    if (!button) return;
    e.preventDefault();
    try { await navigator.clipboard.writeText(button.dataset.copy); say("SHA-256 copied"); }
    catch (_) { window.prompt("SHA-256", button.dataset.copy); }
  });

  localize(document);
  connect();
  // Tunnel state and received webhook calls change without an event: look every few seconds.
  setInterval(() => { if (!document.hidden) refreshFrameioPanel(); }, 5000);
})();
