// The reporter's form. A report is kept on the device (localStorage) the moment it is submitted,
// with its event_id, and sent to the bus when there is a connection: once, since the intake
// answers the same event_id again with its first answer and publishes nothing new. Then the
// receipt: who was told, under which plan and article, by when; or why it was refused.
"use strict";

const OUTBOX = "rb.reports.outbox";
const SENT = "rb.reports.sent";
let flushing = false;
let retryTimer = null;

function load(key) { try { return JSON.parse(localStorage.getItem(key) || "[]"); } catch (e) { return []; } }
function save(key, value) { localStorage.setItem(key, JSON.stringify(value)); }

// RFC 4122 version 4 from crypto.getRandomValues (crypto.randomUUID needs a secure context, and
// a LAN page may be served over plain HTTP).
function uuid4() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function offsetOf(jurisdiction) {
  const j = I18N.names && I18N.names.jurisdictions[jurisdiction];
  return (j && j.offset) || "+08:00";
}

// Now, written in the jurisdiction's own offset (2026-11-20T08:20:00+08:00).
function nowIn(offset) {
  const sign = offset[0] === "-" ? -1 : 1;
  const minutes = sign * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(4, 6)));
  const local = new Date(Date.now() + minutes * 60000);
  return local.toISOString().slice(0, 19) + offset;
}

function setNotice(text, kind) {
  const el = document.getElementById("network");
  el.hidden = !text;
  el.textContent = text || "";
  el.className = `notice ${kind || "offline"}`;
}

function renderQueue() {
  const list = document.getElementById("queued");
  const queued = load(OUTBOX);
  document.body.dataset.queued = String(queued.length);
  list.replaceChildren(...(queued.length ? queued.map((r) => h("li", {dataset: {eventId: r.event_id}},
    `${I18N.name("kinds", r.kind)} · ${r.created}`, r.error ? h("span", {class: "error"}, ` ${r.error}`) : null))
    : [h("li", {class: "muted"}, I18N.t("none"))]));
}

function buildEvent(form) {
  const f = Object.fromEntries(new FormData(form).entries());
  const offset = offsetOf(f.jurisdiction);
  const person = {};
  if (f.age !== "") person.age = Number(f.age);
  if (f.sex) person.sex = f.sex;
  const event = {
    event_id: uuid4(), kind: f.kind, jurisdiction: f.jurisdiction,
    occurred_at: (f.occurred_at.length === 16 ? f.occurred_at + ":00" : f.occurred_at) + offset,
    reported_at: nowIn(offset),
    reporter: {agency: window.RB_ME ? window.RB_ME.agency : null, role: f.role},
    description: f.description || "", exercise: form.exercise.checked,
  };
  if (Object.keys(person).length) event.person = person;
  if (f.place) event.location = {place: f.place};
  return event;
}

async function submit(event) {
  event.preventDefault();
  const form = event.target;
  if (!form.occurred_at.value) { form.occurred_at.focus(); return; }
  const report = buildEvent(form);
  const queued = load(OUTBOX);
  queued.push({event_id: report.event_id, kind: report.kind, body: JSON.stringify(report),
    created: report.reported_at.slice(0, 16).replace("T", " ")});
  save(OUTBOX, queued); // on the device before any attempt to send
  form.reset();
  defaultTime();
  renderQueue();
  await flush();
}

function fieldLabel(field) {
  const key = "field_" + String(field || "").replace(/\./g, "_").replace(/_+$/, "");
  const t = I18N.t(key);
  return t === key ? field : t;
}

function refusalText(error) {
  const code = (error && error.code) || "refused";
  const head = I18N.t("reason_" + code) !== "reason_" + code ? I18N.t("reason_" + code) : (error && error.message) || code;
  const fields = ((error && error.fields) || []).map((f) => `${fieldLabel(f.field)}：${f.reason}`);
  return [head, ...fields].join("；");
}

async function flush() {
  if (flushing) return;
  flushing = true;
  try {
    if (!navigator.onLine) { setNotice(I18N.t("savedOffline")); return; }
    // A fresh CSRF token (the session may have been renewed while the device was offline).
    const me = await api("/api/me").catch(() => null);
    if (!me) { setNotice(I18N.t("savedOffline")); return schedule(); }
    if (me.status !== 200) {
      document.getElementById("signin").hidden = false;
      setNotice(I18N.t("signInToReport"), "bad");
      return;
    }
    window.RB_ME = me.body;
    let queued = load(OUTBOX);
    for (const item of [...queued]) {
      setNotice(I18N.t("sendingReport"), "ok");
      let r;
      try {
        r = await api("/api/reports", {method: "POST", body: item.body});
      } catch (e) {
        setNotice(I18N.t("savedOffline"));
        return schedule();
      }
      queued = load(OUTBOX);
      if (r.status === 202) {
        save(OUTBOX, queued.filter((q) => q.event_id !== item.event_id));
        const sent = load(SENT);
        sent.unshift({event_id: item.event_id, kind: item.kind});
        save(SENT, sent.slice(0, 20));
        document.body.dataset.sent = String(Number(document.body.dataset.sent) + 1);
        setNotice(I18N.t("accepted202"), "ok");
        watchReceipt(item.event_id);
      } else if (r.status === 401) {
        document.getElementById("signin").hidden = false;
        setNotice(I18N.t("signInToReport"), "bad");
        return;
      } else if (r.status >= 400 && r.status < 500 && r.status !== 408 && r.status !== 429) {
        // Refused for good: kept, with what to fix; it is not sent again as it is.
        save(OUTBOX, queued.filter((q) => q.event_id !== item.event_id));
        showRefusal(item, r.body && r.body.error);
      } else {
        setNotice(I18N.t("retryLater"));
        return schedule();
      }
      renderQueue();
    }
  } finally {
    flushing = false;
    renderQueue();
  }
}

function schedule() {
  if (retryTimer) clearTimeout(retryTimer);
  retryTimer = setTimeout(() => { retryTimer = null; flush(); }, 5000);
}

function receiptBox(eventId) {
  let box = document.querySelector(`.receipt[data-event-id="${eventId}"]`);
  if (!box) {
    box = h("article", {class: "receipt", dataset: {eventId}});
    document.getElementById("receipts").prepend(box);
  }
  return box;
}

function showRefusal(item, error) {
  const box = receiptBox(item.event_id);
  box.dataset.status = "refused";
  box.replaceChildren(h("h3", {}, `${I18N.t("receipt")} · ${I18N.name("kinds", item.kind)}`),
    h("p", {class: "notice bad"}, `${I18N.t("refused")}：${refusalText(error)}`),
    h("p", {}, I18N.t("howToFix")));
}

function renderReceipt(view) {
  const box = receiptBox(view.event_id);
  box.dataset.status = view.status;
  const title = h("h3", {}, `${I18N.t("receipt")} ${view.ref || view.event_id}`, view.exercise ? h("span", {class: "badge drill"}, I18N.t("drill")) : null);
  if (view.status === "refused" && view.refusal) {
    box.replaceChildren(title, h("p", {class: "notice bad"}, `${I18N.t("refused")}：${refusalText({code: view.refusal.reason, fields: view.refusal.fields})}`),
      h("p", {}, I18N.t("howToFix")));
    return;
  }
  if (view.status !== "routed") {
    box.replaceChildren(title, h("p", {class: "muted"}, I18N.t("receiptPending")));
    return;
  }
  box.replaceChildren(title,
    h("p", {}, `${I18N.t("toldWho")}：`),
    view.routed_to.length ? h("ul", {}, view.routed_to.map((r) => h("li", {dataset: {agency: r.agency}},
      h("strong", {}, I18N.name("agencies", r.agency)), `（${I18N.t(r.role)}）`,
      ` · ${I18N.t("underPlan")}《${r.plan || ""}》${r.clause}`,
      r.ack_by ? ` · ${I18N.t("ackBy")} ${r.ack_by.text}` : "",
      r.due_by ? ` · ${I18N.t("dueBy")} ${r.due_by.text}` : "",
      r.urgency ? ` · ${I18N.name("urgency", r.urgency)}` : ""))) : h("p", {}, I18N.t("routedNowhere")));
}

async function watchReceipt(eventId, tries) {
  const n = tries || 0;
  const r = await api(`/api/reports/${eventId}`).catch(() => null);
  if (r && r.status === 200) {
    renderReceipt(r.body);
    if (r.body.status === "routed" || r.body.status === "refused") return;
  } else {
    receiptBox(eventId);
  }
  if (n < 120) setTimeout(() => watchReceipt(eventId, n + 1), 1000);
}

function defaultTime() {
  const j = document.getElementById("jurisdiction").value;
  document.getElementById("occurred_at").value = nowIn(offsetOf(j)).slice(0, 16);
}

function fillForm() {
  const names = I18N.names;
  const sel = (id, codes, group) => {
    const el = document.getElementById(id);
    const value = el.value;
    el.replaceChildren(...codes.map((c) => h("option", {value: c}, I18N.name(group, c))));
    if (value) el.value = value;
  };
  sel("kind", names.form.kinds, "kinds");
  sel("jurisdiction", names.form.jurisdictions, "jurisdictions");
  sel("role", names.form.roles, "roles");
}

function redraw() {
  I18N.apply();
  document.getElementById("lang").textContent = I18N.t("lang");
  fillForm();
  renderQueue();
}

document.addEventListener("DOMContentLoaded", async () => {
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => {});
  await I18N.loadOrCached();
  redraw();
  defaultTime();
  document.getElementById("lang").addEventListener("click", () => { I18N.toggle(); redraw(); });
  document.getElementById("report-form").addEventListener("submit", submit);
  window.addEventListener("online", () => flush());
  window.addEventListener("offline", () => setNotice(I18N.t("savedOffline")));
  const me = await api("/api/me").catch(() => null);
  if (me && me.status === 200) {
    window.RB_ME = me.body;
    try { localStorage.setItem("rb.me", JSON.stringify({agency: me.body.agency})); } catch (e) { /* full */ }
    if (!me.body.can_report) document.getElementById("signin").hidden = false;
  } else if (me) {
    document.getElementById("signin").hidden = false;
  } else {
    window.RB_ME = JSON.parse(localStorage.getItem("rb.me") || "null");
    setNotice(I18N.t("savedOffline"));
  }
  for (const s of load(SENT).slice(0, 5)) watchReceipt(s.event_id, 100);
  if (load(OUTBOX).length) flush();
  setInterval(() => { if (load(OUTBOX).length && navigator.onLine) flush(); }, 10000);
  window.rbReporter = {flush, outbox: () => load(OUTBOX)};
});
