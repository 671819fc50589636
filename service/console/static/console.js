// The console's little script: in-page confirmations, builds followed live, and the
// scenario editor's filter checked as it is typed. The pages work without it, but for
// the confirmations, whose forms it reveals.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

function confirmations() {
  for (const button of document.querySelectorAll("[data-confirm]")) {
    button.addEventListener("click", () => {
      const panel = document.getElementById(button.dataset.confirm);
      panel.hidden = false;
      button.setAttribute("aria-expanded", "true");
      panel.querySelector('button[type="submit"]').focus();
    });
  }
  for (const button of document.querySelectorAll("[data-cancel]")) {
    button.addEventListener("click", () => {
      const panel = document.getElementById(button.dataset.cancel);
      panel.hidden = true;
      const opener = document.querySelector(`[data-confirm="${button.dataset.cancel}"]`);
      opener.setAttribute("aria-expanded", "false");
      opener.focus();
    });
  }
}

// Each build still queued or running is asked for every second until it ends.
function liveBuilds() {
  const base = document.querySelector('link[rel="stylesheet"]').href.replace(/\/static\/.*$/, "");
  const live = document.getElementById("build-live");
  for (const row of document.querySelectorAll("tr[data-build]")) {
    if (row.dataset.state !== "queued" && row.dataset.state !== "running") continue;
    const follow = async () => {
      let build;
      try {
        const answer = await fetch(`${base}/builds/${encodeURIComponent(row.dataset.build)}/state`, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
        });
        if (!answer.ok) throw new Error(`status ${answer.status}`);
        build = await answer.json();
      } catch (error) {
        if (live) live.textContent = `Could not read the build's state (${error.message}); retrying.`;
        setTimeout(follow, 3000);
        return;
      }
      show(row, build);
      if (live) live.textContent = `Build ${build.build_id}: ${build.state}, ${build.stage}, ${Math.round(build.progress * 100)}%`;
      if (build.state === "queued" || build.state === "running") setTimeout(follow, 1000);
    };
    follow();
  }
}

function show(row, build) {
  row.dataset.state = build.state;
  row.querySelector(".state").textContent = build.state;
  row.querySelector(".stage").textContent = build.stage;
  const percent = Math.round(build.progress * 100);
  row.querySelector("progress").value = build.progress;
  row.querySelector(".percent").textContent = `${percent}%`;
  row.querySelector(".version").textContent = build.version ?? "";
  let error = build.error ?? "";
  if (!error && build.gate && !build.gate.passed) error = `kept back: ${build.gate.reason}`;
  row.querySelector(".error").textContent = error;
}

function filterChecks() {
  for (const input of document.querySelectorAll("[data-check-filter]")) {
    const out = document.getElementById(input.getAttribute("aria-describedby"));
    let timer;
    let asked = 0;
    const check = async () => {
      const mine = ++asked;
      if (!input.value.trim()) {
        out.textContent = "";
        input.removeAttribute("aria-invalid");
        return;
      }
      const answer = await fetch(input.dataset.checkFilter, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": csrf() },
        body: new URLSearchParams({ filter: input.value }),
        credentials: "same-origin",
      });
      if (mine !== asked) return; // a later keystroke asked again
      const found = answer.ok ? await answer.json() : { ok: false, message: `not checked (status ${answer.status})` };
      out.textContent = found.ok ? `✓ ${found.message}` : `✗ ${found.message}`;
      out.className = found.ok ? "check ok" : "check error";
      input.setAttribute("aria-invalid", found.ok ? "false" : "true");
    };
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(check, 250);
    });
    if (input.value) check();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  confirmations();
  liveBuilds();
  filterChecks();
});
