/* Rollcall console: small progressive enhancements. No inline script (CSP script-src 'self'). */
"use strict";

function csrfToken() {
  const el = document.querySelector('input[name="csrf"]');
  return el ? el.value : "";
}

function show(out, text, ok) {
  if (!out) return;
  out.textContent = text;
  out.className = ok ? "ok" : "error";
}

async function postForm(url, body) {
  const res = await fetch(url, {method: "POST", body: body, credentials: "same-origin",
    headers: {"X-CSRF-Token": csrfToken(), "Accept": "application/json"}});
  let data = {};
  try { data = await res.json(); } catch (e) { data = {message: "HTTP " + res.status}; }
  if (!res.ok && !data.message) data.message = data.error || ("HTTP " + res.status);
  return data;
}

function wireButtons() {
  document.querySelectorAll("form[data-confirm]").forEach(form => {
    form.addEventListener("submit", ev => { if (!confirm(form.dataset.confirm)) ev.preventDefault(); });
  });
  document.querySelectorAll("button[data-post]").forEach(btn => {
    btn.addEventListener("click", async () => {
      const body = new FormData();
      const form = btn.closest("form");
      (btn.dataset.formFields || "").split(",").filter(Boolean).forEach(name => {
        const field = form && form.elements[name];
        if (!field) return;
        if (field.type === "checkbox") { if (field.checked) body.append(name, field.value); }
        else body.append(name, field.value);
      });
      const out = document.getElementById(btn.dataset.out);
      show(out, "…", true);
      const data = await postForm(btn.dataset.post, body);
      show(out, data.message || (data.ok ? "OK" : "failed"), !!data.ok);
    });
  });
  document.querySelectorAll("button[data-snapshot]").forEach(btn => {
    btn.addEventListener("click", () => {
      const img = document.getElementById(btn.dataset.snapshot);
      img.classList.remove("hidden");
      img.src = "/live/snapshot.jpg?annotated=0&t=" + Date.now();
    });
  });
}

function poll(url, everyMs, apply, refused) {
  async function tick() {
    try {
      const res = await fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}});
      if (res.ok) apply(await res.json());
      else if (refused && (res.status === 401 || res.status === 403)) refused(res.status);
    } catch (e) { /* console or firmware restarting: try again */ }
    setTimeout(tick, everyMs);
  }
  tick();
}

// Head-pose challenge: one big icon (an arrow turned to the side to move to, an eye for
// "blink"), one short word and a dot per step (done / current / to do).
const CHALLENGE_ICONS = {
  turn_left: ["arrow", -90, "Left"], turn_right: ["arrow", 90, "Right"], look_up: ["arrow", 0, "Up"],
  look_down: ["arrow", 180, "Down"], blink: ["blink", 0, "Blink"], hold_still: ["hold", 0, "Still"],
  try_again: ["again", 0, "Again"],
};

function showChallenge(c) {
  const box = document.getElementById("kiosk-challenge");
  if (!box) return;
  if (!c || !CHALLENGE_ICONS[c.code]) { box.classList.add("hidden"); return; }
  const [icon, turn, word] = CHALLENGE_ICONS[c.code];
  box.classList.remove("hidden");
  box.dataset.code = c.code;
  const svg = document.getElementById("kiosk-icon");
  svg.querySelectorAll("[data-icon]").forEach(g => { g.style.display = g.dataset.icon === icon ? "" : "none"; });
  svg.style.transform = "rotate(" + turn + "deg)";
  document.getElementById("kiosk-word").textContent = word;
  const steps = document.getElementById("kiosk-steps");
  steps.textContent = "";
  (c.steps || []).forEach((code, i) => {
    const li = document.createElement("li");
    li.className = i < c.step ? "done" : (i === c.step && c.code === code ? "current" : "todo");
    li.title = code.replace("_", " ");
    steps.appendChild(li);
  });
}

function wireKiosk() {
  const body = document.body;
  if (!body.dataset.kiosk) return;
  const card = document.getElementById("kiosk");
  const photo = document.getElementById("kiosk-photo");
  const status = document.getElementById("kiosk-status");
  poll(body.dataset.kiosk, 500, k => {
    card.dataset.state = k.state || "idle";
    document.getElementById("kiosk-name").textContent = k.name || "";
    document.getElementById("kiosk-seat").textContent = k.seat ? ("Seat " + k.seat) : "";
    document.getElementById("kiosk-prompt").textContent = k.prompt || "";
    status.textContent = k.status || "";
    status.className = "kiosk-status pill " + (k.status || "hidden");
    showChallenge(k.challenge);
    if (k.person_id && k.photo_id) {
      photo.src = "/people/" + encodeURIComponent(k.person_id) + "/photos/" + encodeURIComponent(k.photo_id) + ".jpg";
      photo.classList.remove("hidden");
    } else {
      photo.classList.add("hidden");
    }
  }, () => {
    card.dataset.state = "offline";
    document.getElementById("kiosk-name").textContent = "";
    document.getElementById("kiosk-seat").textContent = "";
    status.className = "kiosk-status hidden";
    document.getElementById("kiosk-prompt").textContent =
      "This screen's kiosk link is no longer valid: ask an admin for the new link (Settings → Kiosk).";
  });
}

function wireGrid() {
  const table = document.getElementById("grid");
  if (!table || !table.dataset.grid) return;
  // A row the user is editing (status chosen but not yet saved, or focus anywhere in its
  // form) keeps the user's choice: the refresh updates its pill, never its dropdown.
  table.querySelectorAll("select[name=status]").forEach(select => {
    const mark = () => { select.closest("tr").dataset.editing = "1"; };
    select.addEventListener("change", mark);
    select.addEventListener("input", mark);
  });
  const editing = tr => tr.dataset.editing === "1" || tr.contains(document.activeElement);
  poll(table.dataset.grid, 2000, g => {
    (g.rows || []).forEach(r => {
      const tr = table.querySelector('tr[data-person="' + CSS.escape(r.person_id) + '"]');
      if (!tr) return;
      const pill = tr.querySelector("[data-status]");
      pill.textContent = r.status;
      pill.className = "pill " + r.status;
      tr.querySelector("[data-at]").textContent = r.at_text || "";
      const select = tr.querySelector("select[name=status]");
      if (select && !editing(tr)) select.value = r.status;
    });
    Object.entries(g.counts || {}).forEach(([k, v]) => {
      const el = document.querySelector('[data-count="' + k + '"]');
      if (el) el.textContent = v;
    });
    const state = document.getElementById("session-state");
    if (state && g.session) { state.textContent = g.session.state; state.className = "pill " + g.session.state; }
  });
}

function wireCamera() {
  const start = document.getElementById("cam-start");
  if (!start) return;
  const video = document.getElementById("cam");
  const shot = document.getElementById("cam-shot");
  const list = document.getElementById("cam-results");
  start.addEventListener("click", async () => {
    try {
      video.srcObject = await navigator.mediaDevices.getUserMedia({video: {width: 1280, height: 720}});
      shot.disabled = false;
    } catch (e) {
      list.innerHTML = "";
      const li = document.createElement("li");
      li.className = "error";
      li.textContent = "camera not available: " + e.message;
      list.appendChild(li);
    }
  });
  shot.addEventListener("click", () => {
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth; canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob(async blob => {
      const body = new FormData();
      body.append("photos", blob, "camera.jpg");
      const data = await postForm(shot.dataset.url, body);
      (data.results || [{ok: false, message: data.message || data.error}]).forEach(r => {
        const li = document.createElement("li");
        li.className = r.ok ? "ok" : "error";
        li.textContent = (r.ok ? "accepted — " : "rejected — ") + r.message;
        list.prepend(li);
      });
    }, "image/jpeg", 0.92);
  });
}

function wireCapture() {
  /* "Enrol from camera": follow the device's capture, add each kept frame with a keep box. */
  const card = document.getElementById("capture");
  if (!card) return;
  const frames = document.getElementById("capture-frames");
  poll(card.dataset.capture, 700, c => {
    if (!c || c.person_id !== card.dataset.person) return;
    document.getElementById("capture-state").textContent = c.state;
    document.getElementById("capture-kept").textContent = c.kept;
    document.getElementById("capture-prompt").textContent = c.prompt || "";
    document.getElementById("capture-message").textContent = c.message || "";
    (c.frames || []).forEach(f => {
      if (frames.querySelector('input[value="' + f.index + '"]')) return;
      const label = document.createElement("label");
      label.className = "thumb";
      const img = document.createElement("img");
      img.src = "/capture/frames/" + f.index + ".jpg";
      img.alt = "camera frame " + (f.index + 1);
      const box = document.createElement("input");
      box.type = "checkbox"; box.name = "keep"; box.value = String(f.index); box.checked = true;
      label.append(img, box, " keep");
      frames.appendChild(label);
    });
  });
}

function bulkRow(r) {
  /* One report row, the same markup as views/bulk_report.tpl. */
  const tr = document.createElement("tr");
  tr.dataset.status = r.status;
  const cell = (text, cls) => {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  };
  cell(String(r.line));
  const who = cell(r.name + " ");
  const small = document.createElement("small");
  small.textContent = "(" + r.person_id + ")";
  who.appendChild(small);
  cell(r.label, r.status === "ok" || r.status === "already" ? "ok" : "error");
  const details = cell(r.message);
  if ((r.photos || []).length > 1) {
    const ul = document.createElement("ul");
    ul.className = "photo-results";
    r.photos.forEach(ph => {
      const li = document.createElement("li");
      li.textContent = ph.file + ": " + (ph.ok ? "ok" : ph.message);
      ul.appendChild(li);
    });
    details.appendChild(ul);
  }
  return tr;
}

function wireBulkJob() {
  /* A running bulk enrolment: progress, counts and rows as they come; the final report is
     the server's page (reloaded once when the job ends: a GET, it re-runs nothing). */
  const card = document.getElementById("bulk-job");
  if (!card || !card.dataset.poll) return;
  const body = document.querySelector("#bulk-report tbody");
  const note = document.getElementById("bulk-note");
  async function tick() {
    try {
      const res = await fetch(card.dataset.poll + "?since=" + body.rows.length,
        {credentials: "same-origin", headers: {"Accept": "application/json"}});
      if (res.status === 401 || res.status === 403 || res.status === 404) {
        const data = await res.json().catch(() => ({}));
        note.textContent = (data.error || ("HTTP " + res.status)) + " (reload the page to try again)";
        note.className = "flash error";
        return;
      }
      if (res.ok) {
        const job = await res.json();
        if (job.since === body.rows.length) job.reports.forEach(r => body.appendChild(bulkRow(r)));
        document.getElementById("bulk-done").textContent = job.done;
        document.getElementById("bulk-total").textContent = job.total;
        document.getElementById("bulk-progress").value = job.done;
        document.getElementById("bulk-counts").textContent = Object.keys(job.counts).sort()
          .map(label => job.counts[label] + " " + label).join(", ");
        const state = document.getElementById("bulk-state");
        state.textContent = job.state;
        state.className = "pill " + job.state;
        card.dataset.state = job.state;
        if (job.state !== "running") { window.location.reload(); return; }
      }
    } catch (e) { /* console restarting: try again */ }
    setTimeout(tick, 700);
  }
  setTimeout(tick, 700);
}

document.addEventListener("DOMContentLoaded", () => {
  wireButtons(); wireKiosk(); wireGrid(); wireCamera(); wireCapture(); wireBulkJob();
});
