// sts-broker pages: progressive enhancement only; every page works without this file.
"use strict";

// Copy buttons: shown only when the clipboard API exists; the text stays selectable anyway.
function setupCopy() {
  if (!navigator.clipboard) return;
  for (const button of document.querySelectorAll("[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    if (!source) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(source.textContent);
        button.textContent = "Copied";
      } catch (err) {
        button.textContent = "Select and copy";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  }
}

// Live countdown to the credentials' expiry; at zero, say so and offer new ones.
function setupCountdown() {
  const time = document.querySelector("time[data-countdown]");
  const text = document.querySelector("[data-countdown-text]");
  if (!time || !text) return;
  const ends = Date.parse(time.getAttribute("datetime"));
  const expired = document.querySelector("[data-expired]");
  const tick = () => {
    const left = Math.floor((ends - Date.now()) / 1000);
    if (left <= 0) {
      text.textContent = "(expired)";
      if (expired) expired.hidden = false;
      return false;
    }
    const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    const pad = (n) => String(n).padStart(2, "0");
    text.textContent = `(in ${h ? h + ":" : ""}${pad(m)}:${pad(s)})`;
    text.classList.toggle("soon", left < 300);
    return true;
  };
  if (tick()) {
    const timer = setInterval(() => { if (!tick()) clearInterval(timer); }, 1000);
  }
}

// Role filter: shown only with JS; without it every role is listed.
function setupFilter() {
  const input = document.querySelector("input[data-filter]");
  if (!input) return;
  input.closest(".filter").hidden = false;
  const none = document.querySelector(".filter-empty");
  input.addEventListener("input", () => {
    const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const group of document.querySelectorAll("[data-group]")) {
      let inGroup = 0;
      for (const role of group.querySelectorAll("[data-role]")) {
        const hay = role.dataset.search.toLowerCase();
        const match = words.every((w) => hay.includes(w));
        role.hidden = !match;
        inGroup += match ? 1 : 0;
      }
      group.hidden = inGroup === 0;
      shown += inGroup;
    }
    if (none) none.hidden = shown > 0;
  });
}

// Shell tabs: the choice is remembered (the tabs themselves are radio buttons and CSS).
function setupShellTabs() {
  const tabs = document.querySelectorAll("input[name=shell]");
  if (!tabs.length) return;
  const key = "sts-broker-shell";
  let saved = null;
  try { saved = localStorage.getItem(key); } catch (err) { return; }
  for (const tab of tabs) {
    if (tab.value === saved) tab.checked = true;
    tab.addEventListener("change", () => {
      try { localStorage.setItem(key, tab.value); } catch (err) { /* private mode */ }
    });
  }
}

setupCopy();
setupCountdown();
setupFilter();
setupShellTabs();
