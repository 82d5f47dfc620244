"use strict";

function showTab(which) {
  for (const name of ["officer", "token"]) {
    document.getElementById("tab-" + name).setAttribute("aria-selected", String(name === which));
    document.getElementById("form-" + name).hidden = name !== which;
  }
}

async function signIn(event) {
  event.preventDefault();
  const data = Object.fromEntries(new FormData(event.target).entries());
  const r = await api("/api/sign-in", {method: "POST", body: data});
  const error = document.getElementById("login-error");
  if (r.status !== 200) {
    error.textContent = I18N.t("signInFailed");
    error.hidden = false;
    return;
  }
  const next = new URLSearchParams(location.search).get("next");
  location.assign(next && next.startsWith("/") && !next.startsWith("//") ? next : "/board");
}

document.addEventListener("DOMContentLoaded", () => {
  I18N.apply();
  const lang = document.getElementById("lang");
  lang.textContent = I18N.t("lang");
  lang.addEventListener("click", () => { I18N.toggle(); I18N.apply(); lang.textContent = I18N.t("lang"); });
  document.getElementById("tab-officer").addEventListener("click", () => showTab("officer"));
  document.getElementById("tab-token").addEventListener("click", () => showTab("token"));
  if (new URLSearchParams(location.search).get("next") === "/report") showTab("token");
  document.getElementById("form-officer").addEventListener("submit", signIn);
  document.getElementById("form-token").addEventListener("submit", signIn);
});
