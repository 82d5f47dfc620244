// Words of the console in Chinese (the default) and English. Names of agencies, jurisdictions,
// urgency levels and situations come from the bus's catalog (/api/catalog), in both languages.
"use strict";

const WORDS = {
  "zh-CN": {
    title: "反拐值班台", board: "实时警情", worklist: "待办工单", report: "上报线索", signOut: "退出",
    signIn: "登录", officer: "警员账号", password: "密码", token: "机构令牌", yourName: "您的姓名",
    byOfficer: "警员登录", byToken: "机构令牌登录", signInFailed: "账号、密码或令牌不正确",
    lang: "English", drill: "演练", real: "实战", ackBy: "确认时限", countdownLeft: "剩余",
    overdue: "已超时", age: "年龄", years: "岁", sex: "性别", female: "女", male: "男", unknown: "不详",
    description: "描述", lastSeen: "最后出现", place: "地点", time: "时间", map: "最后出现位置",
    noCoords: "无坐标：只显示地名", radius: "广播半径", clues: "关联线索", noClues: "暂无关联线索",
    duties: "本案各项职责", answeredBy: "答复", noAnswer: "尚未答复", further: "同案后续报告",
    acknowledged: "确认收到", accepted: "接受", rejected: "拒绝", done: "办结",
    act_acknowledged: "确认收到", act_accepted: "接受任务", act_rejected: "拒绝", act_done: "办结",
    reasonRequired: "拒绝须填写理由", noteRequired: "办结须填写处理情况", reason: "理由", note: "处理情况",
    confirm: "提交", cancel: "取消",
    status_sent: "待确认", status_acknowledged: "已确认", status_accepted: "已接受", status_rejected: "已拒绝",
    status_done: "已办结", status_grouped: "已并案", status_closed: "已结案",
    sending: "已提交，等待总线记录", queued: "总线暂不可达：答复已排队，恢复后自动发送",
    refused_not_entitled: "本机构不是该警情或转介的接收或升级对象", refused_already_final: "该事项已办结、拒绝、结案或并案",
    refused_no_effect: "该答复不改变当前状态", refused_unknown_id: "总线上没有该警情或转介",
    refused_no_agency: "答复未注明机构", refused_invalid_answer: "答复格式不符",
    refused_internal_error: "告警服务内部错误，请重新答复",
    refusedAnswer: "答复被拒绝", busDown: "与总线的连接中断：新答复将排队，恢复后自动发送",
    connecting: "正在连接总线…", live: "实时", lead: "负责", cooperating: "配合", resend: "重发",
    escalate: "升级", raised: "发起", referred: "转介", closed: "结案", ungrouped: "解除并案", released: "释放",
    grouped: "并案", reassign: "重新指派", level: "级", attempt: "第{n}次发送", escalatedTo: "已升级至第{n}级：{who}",
    case: "案件", ref: "编号", jurisdiction: "辖区", urgency: "紧急程度", all: "全部", onlyOverdue: "只看超时",
    kind: "事项", role: "职责", dueBy: "办结时限", noItems: "暂无待办", action: "任务", plan: "依据",
    filterCase: "按案件编号筛选", soundOn: "开启提示音", soundIsOn: "提示音已开启", history: "经过",
    closeCase: "结案", closeCaseTitle: "结案（儿童已找到或案件终结）", outcome: "结果",
    outcome_found_alive: "已找到，平安", outcome_found_deceased: "已找到，遇害", outcome_closed_other: "其他原因结案",
    closeNote: "说明（可选）", closeSent: "结案已提交，等待总线记录",
    closeNotRecorded: "总线未记录此次结案（可能被拒绝）：请核实后重试",
    answers: "答复记录", caseClosed: "案件已结", sessionExpired: "登录已过期，请重新登录",
    // reporter's side
    reportTitle: "线索上报", reportIntro: "发现疑似拐卖、来历不明的妇女儿童，请尽快上报。没有网络时，报告保存在本机，联网后自动发送。",
    situation: "情况", occurredAt: "发生时间", personAge: "当事人年龄", personSex: "当事人性别",
    reporterRole: "您的身份", describe: "情况描述", exercise: "这是演练", send: "提交报告",
    savedOffline: "没有网络：报告已保存在本机，联网后自动发送", sendingReport: "正在发送…",
    accepted202: "已送达总线，正在分派…", receipt: "回执", toldWho: "已通知", underPlan: "依据",
    byWhen: "确认时限 / 办结时限", refused: "未能受理", howToFix: "请修改后重新提交", retryLater: "暂时无法发送，稍后自动重试",
    signInToReport: "请先用本机构的令牌登录后再上报", queuedReports: "待发送的报告", none: "无",
    reason_invalid_event: "报告内容有误", reason_invalid_json: "报告格式有误", reason_agency_mismatch: "报告单位与登录机构不一致",
    reason_kind_not_permitted: "本机构不能上报此类事项", reason_event_id_conflict: "报告编号已被使用，请重新填写",
    reason_unauthenticated: "登录已失效，请重新登录", reason_too_large: "报告过长",
    field_person_age: "年龄", field_occurred_at: "发生时间", field_description: "情况描述", field_kind: "情况",
    field_jurisdiction: "辖区", field_reporter_role: "您的身份", field_location_place: "地点",
    routedNowhere: "无需分派（已记录）", receiptPending: "等待分派结果…",
  },
  en: {
    title: "Anti-trafficking duty console", board: "Live board", worklist: "Worklist", report: "Report", signOut: "Sign out",
    signIn: "Sign in", officer: "Officer id", password: "Password", token: "Agency token", yourName: "Your name",
    byOfficer: "Officer", byToken: "Agency token", signInFailed: "Wrong officer id, password or token",
    lang: "中文", drill: "DRILL", real: "real", ackBy: "Acknowledge by", countdownLeft: "left",
    overdue: "overdue", age: "Age", years: "", sex: "Sex", female: "female", male: "male", unknown: "unknown",
    description: "Description", lastSeen: "Last seen", place: "Place", time: "Time", map: "Last-seen point",
    noCoords: "No coordinates: place name only", radius: "Broadcast radius", clues: "Linked clues", noClues: "No linked clues",
    duties: "Duties of the case", answeredBy: "Answers", noAnswer: "not answered", further: "Further reports of the case",
    acknowledged: "acknowledged", accepted: "accepted", rejected: "rejected", done: "done",
    act_acknowledged: "Acknowledge", act_accepted: "Accept", act_rejected: "Reject", act_done: "Done",
    reasonRequired: "A rejection needs a reason", noteRequired: "'Done' needs a note", reason: "Reason", note: "Note",
    confirm: "Submit", cancel: "Cancel",
    status_sent: "waiting", status_acknowledged: "acknowledged", status_accepted: "accepted", status_rejected: "rejected",
    status_done: "done", status_grouped: "grouped", status_closed: "closed",
    sending: "Sent, waiting for the bus to record it", queued: "Bus unreachable: answer queued, sent when it returns",
    refused_not_entitled: "your agency was not addressed or escalated to", refused_already_final: "it is already done, rejected, closed or grouped",
    refused_no_effect: "the answer changes nothing now", refused_unknown_id: "the bus does not know it",
    refused_no_agency: "the answer named no agency", refused_invalid_answer: "not a valid answer",
    refused_internal_error: "an error in the alerts service: answer again",
    refusedAnswer: "Answer refused", busDown: "Connection to the bus lost: answers are queued and sent when it returns",
    connecting: "Connecting to the bus…", live: "live", lead: "lead", cooperating: "cooperating", resend: "re-sent",
    escalate: "escalated", raised: "raised", referred: "referred", closed: "closed", ungrouped: "ungrouped", released: "released",
    grouped: "grouped", reassign: "re-assigned", level: "level", attempt: "attempt {n}", escalatedTo: "escalated to level {n}: {who}",
    case: "Case", ref: "Ref", jurisdiction: "Jurisdiction", urgency: "Urgency", all: "all", onlyOverdue: "Overdue only",
    kind: "Situation", role: "Role", dueBy: "Due by", noItems: "Nothing open", action: "Duty", plan: "Under",
    filterCase: "Filter by case reference", soundOn: "Turn sound on", soundIsOn: "Sound on", history: "History",
    closeCase: "Close case", closeCaseTitle: "Close the case (child found, or case ended)", outcome: "Outcome",
    outcome_found_alive: "Found alive", outcome_found_deceased: "Found deceased", outcome_closed_other: "Closed for another reason",
    closeNote: "Note (optional)", closeSent: "Resolution sent; waiting for the bus to record it",
    closeNotRecorded: "The bus did not record this resolution (it may have been refused): check and try again",
    answers: "Answers", caseClosed: "Case closed", sessionExpired: "Session expired: sign in again",
    reportTitle: "Report a concern", reportIntro: "Report suspected trafficking or women and children of unknown origin. Offline, the report is kept on this device and sent when the connection returns.",
    situation: "Situation", occurredAt: "When", personAge: "Age", personSex: "Sex",
    reporterRole: "You are", describe: "What happened", exercise: "This is a drill", send: "Send report",
    savedOffline: "Offline: the report is kept on this device and sent when the connection returns", sendingReport: "Sending…",
    accepted202: "The bus has it; routing…", receipt: "Receipt", toldWho: "Told", underPlan: "Under",
    byWhen: "Acknowledge by / due by", refused: "Not accepted", howToFix: "Fix and send again", retryLater: "Cannot send now; retrying by itself",
    signInToReport: "Sign in with your agency token to report", queuedReports: "Reports waiting to be sent", none: "none",
    reason_invalid_event: "The report is invalid", reason_invalid_json: "The report is malformed", reason_agency_mismatch: "Reporting agency differs from yours",
    reason_kind_not_permitted: "Your agency may not report this", reason_event_id_conflict: "Report id already used: fill it in again",
    reason_unauthenticated: "Signed out: sign in again", reason_too_large: "The report is too long",
    field_person_age: "Age", field_occurred_at: "When", field_description: "What happened", field_kind: "Situation",
    field_jurisdiction: "Jurisdiction", field_reporter_role: "You are", field_location_place: "Place",
    routedNowhere: "No duty assigned (recorded)", receiptPending: "Waiting for routing…",
  },
};

const I18N = {
  lang: localStorage.getItem("rb.lang") || "zh-CN",
  names: null,
  t(key, vars) {
    const table = WORDS[this.lang] || WORDS["zh-CN"];
    let s = table[key] !== undefined ? table[key] : (WORDS["zh-CN"][key] !== undefined ? WORDS["zh-CN"][key] : key);
    for (const [k, v] of Object.entries(vars || {})) s = s.replace("{" + k + "}", v);
    return s;
  },
  // A catalog name: `group` is agencies, jurisdictions, urgency, kinds or roles.
  name(group, code) {
    if (!code) return "";
    const entry = this.names && this.names[group] && this.names[group][code];
    if (!entry) return code;
    return this.lang === "en" ? entry.en : entry.zh;
  },
  // An action in the reader's language: the clause's own Chinese words when the rule has them.
  action(item) {
    if (this.lang !== "en" && item.action_zh) return item.action_zh;
    return item.action || "";
  },
  async load() {
    const r = await fetch("/api/catalog", {credentials: "same-origin"});
    this.names = await r.json();
    try { localStorage.setItem("rb.catalog", JSON.stringify(this.names)); } catch (e) { /* full */ }
    return this.names;
  },
  async loadOrCached() {
    try { return await this.load(); } catch (e) {
      this.names = JSON.parse(localStorage.getItem("rb.catalog") || "null");
      return this.names;
    }
  },
  // A clue's match reason as the alerts service words it ("same jurisdiction; age 7 ~ 6; ..."),
  // in the reader's language.
  reason(text) {
    if (this.lang === "en" || !text) return text || "";
    const rules = [
      [/^names the case$/, () => "指明本案"],
      [/^same jurisdiction$/, () => "同一辖区"],
      [/^neighbouring jurisdiction (\S+)$/, (m) => "相邻辖区 " + this.name("jurisdictions", m[1])],
      [/^([\d.]+) h after last seen$/, (m) => "最后出现后 " + m[1] + " 小时"],
      [/^age (\S+) ~ (\S+)$/, (m) => "年龄 " + m[1] + " ≈ " + m[2]],
      [/^sex (\S+)$/, (m) => "性别 " + this.t(m[1])],
      [/^place (.+)$/, (m) => "地点 " + m[1]],
    ];
    return text.split("; ").map((part) => {
      for (const [re, f] of rules) { const m = part.match(re); if (m) return f(m); }
      return part;
    }).join("；");
  },
  toggle() {
    this.lang = this.lang === "en" ? "zh-CN" : "en";
    localStorage.setItem("rb.lang", this.lang);
    document.documentElement.lang = this.lang;
  },
  // Static words of a page: elements with data-t="key".
  apply(root) {
    document.documentElement.lang = this.lang;
    for (const el of (root || document).querySelectorAll("[data-t]")) el.textContent = this.t(el.dataset.t);
    for (const el of (root || document).querySelectorAll("[data-t-placeholder]")) el.placeholder = this.t(el.dataset.tPlaceholder);
  },
};

// Build DOM without innerHTML: every text a sender wrote goes in as text, never as markup.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(path, options) {
  const me = window.RB_ME;
  const init = Object.assign({credentials: "same-origin", headers: {}}, options || {});
  if (init.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    if (me && me.csrf) init.headers["X-CSRF-Token"] = me.csrf;
    if (typeof init.body !== "string") init.body = JSON.stringify(init.body);
  }
  const r = await fetch(path, init);
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  return {status: r.status, body};
}
