// yihu desk: live updates of the open incidents on /desk (a WebSocket sends the rows when they change).
// Every value is set with textContent: names come from villagers and are never parsed as HTML.
"use strict";
(function () {
  const body = document.getElementById("open-rows");
  if (!body) { return; }
  const badge = document.getElementById("live");
  const none = document.getElementById("none-open");
  const columns = ["category", "group", "age", "responders", "level", "owner"];

  function cell(row, name) {
    const td = document.createElement("td");
    td.textContent = row[name];
    if (name === "category" && row.private) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = row.private;
      td.append(" ", tag);
    }
    return td;
  }

  function show(rows) {
    const fresh = rows.map(function (row) {
      const tr = document.createElement("tr");
      tr.dataset.incident = String(row.number);
      const first = document.createElement("td");
      const link = document.createElement("a");
      link.href = "/desk/incidents/" + encodeURIComponent(String(row.number));
      link.textContent = "#" + row.number;
      first.append(link);
      tr.append(first);
      columns.forEach(function (name) { tr.append(cell(row, name)); });
      return tr;
    });
    body.replaceChildren.apply(body, fresh);
    if (none) { none.hidden = rows.length > 0; }
  }

  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const lang = document.documentElement.lang === "en" ? "en" : "zh";
  const socket = new WebSocket(scheme + location.host + "/desk/live?lang=" + lang);
  socket.addEventListener("open", function () { if (badge) { badge.hidden = false; } });
  socket.addEventListener("message", function (event) {
    const data = JSON.parse(event.data);
    if (Array.isArray(data.open)) { show(data.open); }
  });
  socket.addEventListener("close", function () {
    if (badge) {
      badge.textContent = badge.dataset.lost || "";
      badge.classList.add("lost");
      badge.hidden = false;
    }
  });
})();
