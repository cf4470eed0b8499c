// jobspool dashboard: live refresh without page reloads, in plain JavaScript.
//
// Every element with data-live="/partials/..." is refreshed by fetching that
// server-rendered (and server-escaped) fragment every data-interval ms and
// swapping it in when it changed. The job log (#log) is tailed by byte
// offset from the JSON API and appended as text nodes, never as HTML.
// Nothing here builds markup from data; the CSP forbids inline script.
"use strict";

(function () {
  const state = document.getElementById("live-state");

  function setState(text, bad) {
    if (!state) return;
    state.textContent = text;
    state.classList.toggle("bad", Boolean(bad));
  }

  function fetchOk(url, accept) {
    return fetch(url, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: accept, "X-Requested-With": "fetch" },
    }).then(function (res) {
      if (res.status === 401) {
        window.location.reload();
        throw new Error("logged out");
      }
      if (!res.ok) throw new Error("HTTP " + res.status);
      return res;
    });
  }

  // ------------------------------------------------------------ live regions

  function openDetails(region) {
    const open = new Set();
    region.querySelectorAll("details[id]").forEach(function (d) {
      if (d.open) open.add(d.id);
    });
    return open;
  }

  function refreshRegion(region) {
    const url = region.dataset.live;
    return fetchOk(url, "text/html")
      .then(function (res) { return res.text(); })
      .then(function (html) {
        if (region.dataset.live !== url) return; // the filter changed meanwhile
        if (html !== region.dataset.lastHtml) {
          const keepOpen = openDetails(region);
          region.innerHTML = html;
          region.querySelectorAll("details[id]").forEach(function (d) {
            if (keepOpen.has(d.id)) d.open = true;
          });
          region.dataset.lastHtml = html;
          region.dispatchEvent(new CustomEvent("live:updated", { bubbles: true }));
        }
        setState("live");
      })
      .catch(function () { setState("offline", true); });
  }

  function schedule(region) {
    const every = parseInt(region.dataset.interval || "3000", 10);
    function tick() {
      const next = function () { window.setTimeout(tick, every); };
      if (document.hidden) { next(); return; }
      refreshRegion(region).then(next, next);
    }
    window.setTimeout(tick, every);
  }

  document.querySelectorAll("[data-live]").forEach(function (region) {
    region.dataset.lastHtml = region.innerHTML;
    schedule(region);
  });

  // ------------------------------------------------------------ log tail

  const MAX_LOG_CHARS = 2000000;
  const log = document.getElementById("log");
  if (log && log.dataset.logSrc) {
    let offset = parseInt(log.dataset.offset || "0", 10);
    let active = log.dataset.follow === "1";

    function atBottom() {
      return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    }

    function pollLog() {
      const stick = atBottom();
      const url = log.dataset.logSrc + "?offset=" + encodeURIComponent(String(offset));
      return fetchOk(url, "application/json")
        .then(function (res) { return res.json(); })
        .then(function (data) {
          if (data.reset) log.textContent = "";
          if (data.text) {
            log.appendChild(document.createTextNode(data.text));
            const empty = document.getElementById("log-empty");
            if (empty) empty.remove();
            if (log.textContent.length > MAX_LOG_CHARS) {
              log.textContent = log.textContent.slice(-MAX_LOG_CHARS / 2);
            }
            if (stick) log.scrollTop = log.scrollHeight;
          }
          offset = data.next_offset;
          log.dataset.offset = String(offset);
          active = Boolean(data.active);
          log.dataset.follow = active ? "1" : "0";
          const waiting = document.getElementById("log-empty");
          if (waiting && !active && !log.textContent && waiting.dataset.done) {
            waiting.textContent = waiting.dataset.done;
          }
          // A cut read has more waiting: fetch it at once.
          return data.cut && data.text;
        })
        .catch(function () { return false; });
    }

    function logTick() {
      if (document.hidden) { window.setTimeout(logTick, 1000); return; }
      pollLog().then(function (more) {
        window.setTimeout(logTick, more ? 0 : active ? 700 : 4000);
      });
    }
    window.setTimeout(logTick, 700);
  }

  // ------------------------------------------------------------ filters

  const filters = document.getElementById("filters");
  const list = document.getElementById("job-list");
  if (filters && list && window.URLSearchParams) {
    filters.addEventListener("submit", function (event) {
      event.preventDefault();
      const params = new URLSearchParams();
      new FormData(filters).forEach(function (value, key) {
        const text = String(value).trim();
        if (text && !(key === "sort" && text === "newest") && !(key === "per_page" && text === "50")) {
          params.set(key, text);
        }
      });
      const query = params.toString();
      list.dataset.live = "/partials/jobs" + (query ? "?" + query : "");
      window.history.replaceState(null, "", "/jobs" + (query ? "?" + query : ""));
      refreshRegion(list);
    });
    filters.querySelectorAll("select").forEach(function (select) {
      select.addEventListener("change", function () { filters.requestSubmit(); });
    });
  }

  // ------------------------------------------------------------ confirmations

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    }
  });

  // ------------------------------------------------------------ submit form

  const jobSelect = document.getElementById("job");
  const methodSelect = document.getElementById("method");
  const signature = document.getElementById("signature");
  if (jobSelect && methodSelect) {
    function showSignature() {
      const chosen = methodSelect.selectedOptions[0];
      if (signature) {
        const sig = chosen && chosen.dataset.signature;
        signature.textContent = sig ? chosen.textContent + sig : "";
      }
    }
    function filterMethods() {
      const job = jobSelect.value;
      let firstMatch = null;
      Array.from(methodSelect.options).forEach(function (option) {
        if (!option.value) return;
        const mine = option.dataset.job === job;
        option.hidden = !mine;
        option.disabled = !mine;
        if (mine && !firstMatch) firstMatch = option;
      });
      const current = methodSelect.selectedOptions[0];
      if (!current || current.disabled) {
        methodSelect.value = firstMatch ? firstMatch.value : "";
        if (firstMatch) firstMatch.selected = true;
      }
      showSignature();
    }
    jobSelect.addEventListener("change", filterMethods);
    methodSelect.addEventListener("change", showSignature);
    filterMethods();
  }
})();
