// The live board: one server-sent-events stream per open tab (the console fans every change of
// the bus out to every desk), cards for alerts, rows for every open item, answer buttons.
"use strict";

const items = new Map(); // id -> {card, row} as last sent by the console
let snapshotLoaded = false;
let audio = null;
window.rbCues = 0;

// -- sound --------------------------------------------------------------------------------------

function ensureAudio() {
  if (!audio) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (Ctx) audio = new Ctx();
  }
  if (audio && audio.state === "suspended") audio.resume().catch(() => {});
  return audio;
}

// Two short tones, made here (no sound file to fetch). Counted, so a test can see the cue fired.
function cue() {
  window.rbCues += 1;
  document.body.dataset.cues = String(window.rbCues);
  const ctx = ensureAudio();
  if (!ctx) return;
  const t = ctx.currentTime;
  for (const [at, freq] of [[0, 880], [0.35, 660]]) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "square";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, t + at);
    gain.gain.exponentialRampToValueAtTime(0.25, t + at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + at + 0.3);
    osc.connect(gain).connect(ctx.destination);
    osc.start(t + at);
    osc.stop(t + at + 0.32);
  }
}

// -- formatting ---------------------------------------------------------------------------------

function timeText(t) { return t ? t.text : "—"; }

function sexText(sex) { return sex ? I18N.t(sex) : I18N.t("unknown"); }

function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const pad = (n) => String(n).padStart(2, "0");
  return (hh ? hh + ":" : "") + pad(mm) + ":" + pad(ss);
}

function tickCountdowns() {
  const now = Date.now();
  for (const el of document.querySelectorAll("[data-deadline-ms]")) {
    const left = Number(el.dataset.deadlineMs) - now;
    el.textContent = left >= 0 ? `${I18N.t("countdownLeft")} ${clock(left)}` : `${I18N.t("overdue")} ${clock(-left)}`;
    el.classList.toggle("overdue", left < 0);
  }
}

function statusBadge(status) {
  return h("span", {class: `badge status-${status}`}, I18N.t("status_" + status));
}

function drillBadge(item) {
  return item.exercise ? h("span", {class: "badge drill"}, I18N.t("drill")) : null;
}

function who(answer) {
  const agency = I18N.name("agencies", answer.agency);
  return answer.officer ? `${agency} · ${answer.officer}` : agency;
}

// A refused answer names the bus's reason code (answers.refused, or the intake's error code),
// with its meaning where the console knows it.
function refusalText(code) {
  if (!code) return I18N.t("refusedAnswer");
  const meaning = I18N.t("refused_" + code);
  return `${I18N.t("refusedAnswer")}: ${meaning === "refused_" + code ? "" : meaning + " "}(${code})`;
}

function pendingNotes(item) {
  return (item.pending || []).map((p) => h("p", {class: `pending pending-${p.status}`, role: "status",
                                                 "data-refusal": p.status === "refused" ? (p.error || "") : null},
    `${I18N.t("act_" + p.answer)}: ${p.status === "refused" ? refusalText(p.error) : I18N.t(p.status)}`));
}

function answerButtons(item) {
  const waiting = new Set((item.pending || []).filter((p) => p.status !== "refused").map((p) => p.answer));
  return h("div", {class: "answers-buttons"}, (item.allowed || []).map((answer) =>
    h("button", {type: "button", class: answer === "rejected" ? "danger" : "primary",
      dataset: {answer, id: item.id}, disabled: waiting.has(answer) || null,
      "aria-label": `${I18N.t("act_" + answer)} ${item.ref}`,
      onclick: () => startAnswer(item, answer)}, I18N.t("act_" + answer))));
}

// -- cards --------------------------------------------------------------------------------------

function escalationText(card) {
  if (card.level > 0) return I18N.t("escalatedTo", {n: card.level, who: I18N.name("agencies", card.target_agency) +
    (card.target_jurisdiction !== card.jurisdiction ? " · " + I18N.name("jurisdictions", card.target_jurisdiction) : "")});
  if (card.step > 0) return I18N.t("attempt", {n: card.step + 1});
  return null;
}

function renderCard(card) {
  const child = card.child || {};
  const head = h("header", {class: "card-head"},
    h("div", {class: "badges"}, drillBadge(card), statusBadge(card.status),
      card.case_status === "closed" ? h("span", {class: "badge status-closed"}, I18N.t("caseClosed")) : null),
    h("h3", {}, `${I18N.name("kinds", "child_missing_reported")} · ${I18N.name("jurisdictions", card.jurisdiction)}`),
    h("p", {class: "refs"}, `${I18N.t("ref")} ${card.ref}`, card.case_ref ? ` · ${I18N.t("case")} ${card.case_ref}` : ""),
    escalationText(card) ? h("p", {class: "escalation"}, escalationText(card)) : null);
  const deadline = h("p", {class: "deadline"},
    h("span", {}, `${I18N.t("ackBy")} ${timeText(card.countdown || card.ack_deadline)}`),
    card.countdown ? h("strong", {class: "countdown", dataset: {deadlineMs: String(card.countdown.ms)}}, "") :
      (card.acked_at ? h("span", {class: "acked"}, ` · ${I18N.t("status_acknowledged")} ${card.acked_at.text}`) : null));
  const facts = h("dl", {class: "facts"},
    h("dt", {}, I18N.t("age")), h("dd", {}, child.age !== null && child.age !== undefined ? `${child.age}${I18N.t("years")}` : I18N.t("unknown")),
    h("dt", {}, I18N.t("sex")), h("dd", {}, sexText(child.sex)),
    child.name ? [h("dt", {}, "姓名"), h("dd", {}, child.name)] : null,
    h("dt", {}, I18N.t("lastSeen")), h("dd", {}, timeText(child.last_seen_at)),
    h("dt", {}, I18N.t("place")), h("dd", {}, child.place || "—"),
    child.features ? [h("dt", {}, "特征"), h("dd", {}, child.features)] : null,
    h("dt", {}, I18N.t("description")), h("dd", {class: "description"}, child.description || "—"));
  const map = (typeof child.lat === "number" && typeof child.lon === "number")
    ? h("figure", {class: "map-box"}, lastSeenMap(child.lat, child.lon, card.broadcast, {map: I18N.t("map")}),
      h("figcaption", {}, card.broadcast ? `${I18N.t("radius")} ${card.broadcast.current_km} km` : I18N.t("map")))
    : h("p", {class: "no-coords"}, I18N.t("noCoords"));
  const clues = h("section", {class: "clues"}, h("h4", {}, I18N.t("clues")),
    card.clues.length ? h("ul", {}, card.clues.map((c) => h("li", {},
      `${c.ref} · ${I18N.name("kinds", c.kind)} · ${I18N.name("jurisdictions", c.jurisdiction)} · ${I18N.reason(c.reason)}`))) :
      h("p", {class: "muted"}, I18N.t("noClues")));
  const duties = h("section", {class: "duties"}, h("h4", {}, I18N.t("duties")),
    h("ul", {}, card.duties.map((d) => h("li", {},
      h("span", {class: "duty-agency"}, `${I18N.name("agencies", d.agency)} (${I18N.t(d.role)})`), " ",
      // A case's later events (a broadcast release, a clue) bring duties of their own: say whose.
      d.event_kind !== "child_missing_reported" ? h("span", {class: "duty-kind muted"}, `${I18N.name("kinds", d.event_kind)} `) : null,
      statusBadge(d.status), " ",
      h("span", {class: "muted"}, d.answers.length ? d.answers.map((a) => `${I18N.t(a.what)} ${who(a)} ${timeText(a.at)}`).join("；")
        : I18N.t("noAnswer"))))));
  const answered = h("section", {class: "answered"}, h("h4", {}, I18N.t("answers")),
    card.answers.length ? h("ul", {}, card.answers.map((a) => h("li", {}, `${I18N.t(a.what)} · ${who(a)} · ${timeText(a.at)}`)))
      : h("p", {class: "muted"}, I18N.t("noAnswer")));
  const further = card.further_reports.length ? h("p", {class: "further"},
    `${I18N.t("further")}: ${card.further_reports.map((f) => f.ref).join(", ")}`) : null;
  const duty = h("p", {class: "duty"}, `${I18N.t("action")}: ${I18N.action(card)}`,
    card.citation ? h("span", {class: "muted"}, ` · ${I18N.t("plan")} ${card.citation.title || ""} ${card.citation.clause}`) : null);
  return h("article", {class: `card${card.exercise ? " drill" : ""} status-${card.status}`, dataset: {id: card.id},
    "aria-label": `${card.ref}`},
    head, deadline, h("div", {class: "card-body"}, h("div", {}, facts, duty), map), further, clues, duties, answered,
    pendingNotes(card), answerButtons(card), closeButton(card));
}

// -- closing a case (police only: the console says who may, the bus decides) ------------------------

// How long a sent resolution may wait for cases.changes before the desk is told it was not recorded
// (the bus may have refused it: a dead letter) and offered the button again.
const CLOSE_WAIT_MS = 30000;
const closing = new Map(); // case id -> when this tab sent its resolution, until the bus records it
const notRecorded = new Set(); // case ids whose resolution the bus did not record within CLOSE_WAIT_MS

function closeButton(card) {
  if (!card.may_close) return null;
  if (closing.has(card.case_id)) return h("p", {class: "pending", role: "status"}, I18N.t("closeSent"));
  const warning = notRecorded.has(card.case_id)
    ? h("p", {class: "error", role: "alert"}, I18N.t("closeNotRecorded")) : null;
  return h("div", {class: "close-case"}, warning, h("button", {type: "button", class: "secondary",
    dataset: {closeCase: card.case_id}, "aria-label": `${I18N.t("closeCase")} ${card.case_ref}`,
    onclick: () => startClose(card)}, I18N.t("closeCase")));
}

function expireClosings() {
  const now = Date.now();
  let expired = false;
  for (const [caseId, sentAt] of closing) {
    if (now - sentAt < CLOSE_WAIT_MS) continue;
    closing.delete(caseId);
    notRecorded.add(caseId);
    expired = true;
  }
  if (expired) redrawAll();
}

let closingCard = null;

function startClose(card) {
  closingCard = card;
  document.getElementById("close-title").textContent = `${I18N.t("closeCaseTitle")} · ${card.case_ref}`;
  document.getElementById("close-outcome").replaceChildren(...["found_alive", "found_deceased", "closed_other"].map(
    (o) => h("option", {value: o}, I18N.t("outcome_" + o))));
  document.getElementById("close-note").value = "";
  document.getElementById("close-error").hidden = true;
  document.getElementById("close-dialog").showModal();
}

async function submitClose(event) {
  event.preventDefault();
  const note = document.getElementById("close-note").value.trim();
  const body = {outcome: document.getElementById("close-outcome").value};
  if (note) body.note = note;
  const r = await api(`/api/cases/${closingCard.case_id}/resolve`, {method: "POST", body});
  if (r.status === 401) { location.assign("/login?next=/board"); return; }
  if (r.status !== 202) {
    const error = document.getElementById("close-error");
    error.textContent = (r.body && r.body.error && r.body.error.message) || `HTTP ${r.status}`;
    error.hidden = false;
    return;
  }
  closing.set(closingCard.case_id, Date.now());
  notRecorded.delete(closingCard.case_id);
  document.getElementById("close-dialog").close();
  redrawAll();
}

function upsertCard(card, previous) {
  const cards = document.getElementById("cards");
  const old = cards.querySelector(`article[data-id="${card.id}"]`);
  const el = renderCard(card);
  if (old) old.replaceWith(el); else cards.prepend(el);
  const isNew = !previous || !previous.card;
  const stepped = previous && previous.card && card.step > previous.card.step;
  if (snapshotLoaded && card.status === "sent" && (isNew || stepped)) cue();
}

function removeCard(id) {
  const old = document.querySelector(`#cards article[data-id="${id}"]`);
  if (old) old.remove();
}

// -- worklist -----------------------------------------------------------------------------------

function renderRow(row) {
  return h("tr", {dataset: {id: row.id, case: row.case_ref || "", jurisdiction: row.jurisdiction, urgency: row.urgency,
      overdue: String(row.overdue)}, class: `${row.overdue ? "overdue" : ""}${row.exercise ? " drill" : ""}`},
    h("td", {}, h("span", {class: "ref"}, row.ref), h("br"), h("small", {class: "uuid"}, row.id), row.case_ref ? [h("br"), h("small", {}, `${I18N.t("case")} ${row.case_ref}`)] : null),
    h("td", {}, drillBadge(row), I18N.name("kinds", row.event_kind)),
    h("td", {}, I18N.name("jurisdictions", row.jurisdiction)),
    h("td", {}, I18N.t(row.role)),
    h("td", {}, I18N.name("urgency", row.urgency)),
    h("td", {class: "action"}, I18N.action(row), row.citation ? h("small", {class: "muted"}, ` (${row.citation.title || ""} ${row.citation.clause})`) : null),
    h("td", {}, timeText(row.ack_by)),
    h("td", {}, timeText(row.due_by)),
    h("td", {}, statusBadge(row.status), row.overdue ? h("span", {class: "badge overdue"}, I18N.t("overdue")) : null,
      pendingNotes(row), answerButtons(row)));
}

function upsertRow(row) {
  const rows = document.getElementById("rows");
  const old = rows.querySelector(`tr[data-id="${row.id}"]`);
  const el = renderRow(row);
  if (old) old.replaceWith(el); else rows.prepend(el);
}

function removeRow(id) {
  const old = document.querySelector(`#rows tr[data-id="${id}"]`);
  if (old) old.remove();
}

function applyFilters() {
  const ref = document.getElementById("f-case").value.trim().toUpperCase();
  const j = document.getElementById("f-jurisdiction").value;
  const u = document.getElementById("f-urgency").value;
  const overdue = document.getElementById("f-overdue").checked;
  let shown = 0;
  for (const tr of document.querySelectorAll("#rows tr")) {
    const ok = (!ref || tr.dataset.case.replace("-", "").includes(ref.replace("-", "")) || tr.dataset.case.includes(ref))
      && (!j || tr.dataset.jurisdiction === j) && (!u || tr.dataset.urgency === u)
      && (!overdue || tr.dataset.overdue === "true");
    tr.hidden = !ok;
    if (ok) shown += 1;
  }
  document.getElementById("no-rows").hidden = shown > 0;
}

function fillFilters() {
  const jSel = document.getElementById("f-jurisdiction");
  const uSel = document.getElementById("f-urgency");
  const j = jSel.value, u = uSel.value;
  jSel.replaceChildren(h("option", {value: ""}, I18N.t("all")),
    ...Object.keys(I18N.names.jurisdictions).map((c) => h("option", {value: c}, I18N.name("jurisdictions", c))));
  uSel.replaceChildren(h("option", {value: ""}, I18N.t("all")),
    ...Object.keys(I18N.names.urgency).map((c) => h("option", {value: c}, I18N.name("urgency", c))));
  jSel.value = j; uSel.value = u;
}

// -- applying views -----------------------------------------------------------------------------

function apply(view) {
  const previous = items.get(view.id);
  if (view.card) upsertCard(view.card, previous); else removeCard(view.id);
  if (view.row) upsertRow(view.row); else removeRow(view.id);
  if (view.card || view.row) items.set(view.id, view); else items.delete(view.id);
}

function setReachable(reachable) {
  const banner = document.getElementById("banner");
  banner.hidden = reachable !== false;
  banner.textContent = I18N.t("busDown");
}

function redrawAll() {
  I18N.apply();
  document.getElementById("lang").textContent = I18N.t("lang");
  document.getElementById("cards").replaceChildren();
  document.getElementById("rows").replaceChildren();
  fillFilters();
  const views = [...items.values()];
  const loaded = snapshotLoaded;
  snapshotLoaded = false; // a redraw is not news: no sound
  for (const v of views) apply(v);
  snapshotLoaded = loaded;
  applyFilters();
  tickCountdowns();
}

function connect() {
  const live = document.getElementById("live");
  live.textContent = I18N.t("connecting");
  const source = new EventSource("/api/board/stream");
  source.addEventListener("snapshot", (e) => {
    const data = JSON.parse(e.data);
    items.clear();
    snapshotLoaded = false;
    document.getElementById("cards").replaceChildren();
    document.getElementById("rows").replaceChildren();
    for (const v of data.items) apply(v);
    snapshotLoaded = true;
    setReachable(data.bus.reachable);
    live.textContent = "● " + I18N.t("live");
    live.classList.add("on");
    document.body.dataset.ready = "true";
    applyFilters();
    tickCountdowns();
  });
  source.addEventListener("views", (e) => {
    const data = JSON.parse(e.data);
    for (const v of data.views) apply(v);
    setReachable(data.reachable);
    applyFilters();
    tickCountdowns();
  });
  source.addEventListener("status", (e) => setReachable(JSON.parse(e.data).reachable));
  source.addEventListener("expired", () => {
    source.close();
    location.assign("/login?next=/board");
  });
  source.onerror = () => {
    live.textContent = I18N.t("connecting");
    live.classList.remove("on");
    // The browser reconnects by itself; the session may have ended meanwhile (a restarted console
    // keeps officers' sessions, not reporters').
    api("/api/me").then((r) => { if (r.status === 401) location.assign("/login?next=/board"); }).catch(() => {});
  };
}

// -- answering ----------------------------------------------------------------------------------

let answering = null;

async function sendAnswer(item, answer, text) {
  const body = {id: item.id, answer};
  if (answer === "rejected") body.reason = text;
  if (answer === "done") body.note = text;
  const r = await api("/api/answers", {method: "POST", body});
  if (r.status === 401) { location.assign("/login?next=/board"); return null; }
  return r;
}

async function startAnswer(item, answer) {
  ensureAudio();
  if (answer === "rejected" || answer === "done") {
    answering = {item, answer};
    document.getElementById("answer-title").textContent = `${I18N.t("act_" + answer)} · ${item.ref}`;
    document.getElementById("answer-label").textContent = I18N.t(answer === "rejected" ? "reason" : "note");
    document.getElementById("answer-text").value = "";
    document.getElementById("answer-error").hidden = true;
    document.getElementById("answer-dialog").showModal();
    return;
  }
  const r = await sendAnswer(item, answer);
  if (r && r.status !== 202) alert((r.body && r.body.error && r.body.error.message) || `HTTP ${r.status}`);
}

async function submitDialog(event) {
  event.preventDefault();
  const text = document.getElementById("answer-text").value.trim();
  const error = document.getElementById("answer-error");
  if (!text) {
    error.textContent = I18N.t(answering.answer === "rejected" ? "reasonRequired" : "noteRequired");
    error.hidden = false;
    return;
  }
  const r = await sendAnswer(answering.item, answering.answer, text);
  if (r && r.status !== 202) {
    error.textContent = (r.body && r.body.error && r.body.error.message) || `HTTP ${r.status}`;
    error.hidden = false;
    return;
  }
  document.getElementById("answer-dialog").close();
}

// -- start --------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", async () => {
  I18N.apply();
  const me = await api("/api/me");
  if (me.status !== 200) { location.assign("/login?next=/board"); return; }
  window.RB_ME = me.body;
  await I18N.loadOrCached();
  document.getElementById("agency").textContent = I18N.name("agencies", me.body.agency);
  document.getElementById("officer").textContent = me.body.display;
  document.getElementById("lang").textContent = I18N.t("lang");
  document.getElementById("lang").addEventListener("click", () => { I18N.toggle(); redrawAll(); });
  document.getElementById("sound").addEventListener("click", (e) => {
    ensureAudio();
    e.target.textContent = I18N.t("soundIsOn");
  });
  document.getElementById("signout").addEventListener("click", async () => {
    await api("/api/sign-out", {method: "POST", body: {}});
    location.assign("/login");
  });
  for (const id of ["f-case", "f-jurisdiction", "f-urgency", "f-overdue"]) {
    document.getElementById(id).addEventListener("input", applyFilters);
  }
  document.getElementById("filters").addEventListener("submit", (e) => e.preventDefault());
  document.getElementById("answer-form").addEventListener("submit", submitDialog);
  document.getElementById("answer-cancel").addEventListener("click", () => document.getElementById("answer-dialog").close());
  document.getElementById("close-form").addEventListener("submit", submitClose);
  document.getElementById("close-cancel").addEventListener("click", () => document.getElementById("close-dialog").close());
  fillFilters();
  connect();
  setInterval(() => { expireClosings(); tickCountdowns(); }, 1000);
});
