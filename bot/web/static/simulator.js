// The village simulator (bot/web/simulator.py): draws each phone's chat from the emulator's messages,
// live over one WebSocket, and sends what a phone does (text, 🆘 and other keyboard buttons, inline buttons,
// a location, a voice note). Every text goes in with textContent: names and texts come from villagers.
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("sim-config").textContent);
  var T = config.texts;
  var views = {}; // chat id -> {root, list, keyboard, member, chat, messages}
  var socket = null;
  var statusEl = document.getElementById("sim-status");

  function tr(key, params) {
    var text = T[key] || key;
    Object.keys(params || {}).forEach(function (name) {
      text = text.split("{" + name + "}").join(String(params[name]));
    });
    return text;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function safeUrl(url) {
    return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null;
  }

  // -- the views: one per phone and one for the group chat --------------------------------------------
  Object.keys(config.chats).forEach(function (chatId) {
    var shown = config.chats[chatId];
    var group = shown.indexOf("group:") === 0;
    var root = document.querySelector(group ? '[data-chat="' + shown + '"]' : '[data-member="' + shown + '"]');
    if (!root) return;
    var view = {
      root: root,
      list: root.querySelector(".messages"),
      keyboard: root.querySelector(".keyboard"),
      unread: root.querySelector(".phone-unread"),
      group: group,
      chat: Number(chatId),
      member: group ? null : shown,
      messages: new Map(),
      keyboardFrom: 0,
      count: 0,
    };
    views[chatId] = view;
    wireCompose(view);
    if (!group) wireTools(view);
    root.addEventListener("pointerdown", function () { seen(view); });
  });

  function actingMember(view) {
    if (!view.group) return view.member;
    var select = view.root.querySelector("select[name=member]");
    return select ? select.value : null;
  }

  function send(view, action) {
    action.member = action.member || actingMember(view);
    action.chat = view.group ? view.chat : null;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      toast(view, T["sim.offline"]);
      return;
    }
    socket.send(JSON.stringify(action));
  }

  function wireCompose(view) {
    var form = view.root.querySelector("form.compose");
    if (!form) return;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var input = form.querySelector("input[name=text]");
      var text = input.value.trim();
      if (!text) return;
      send(view, { op: "text", text: text });
      input.value = "";
    });
  }

  function wireTools(view) {
    var panel = view.root.querySelector(".map-panel");
    var map = view.root.querySelector("img.map");
    view.root.querySelector(".tool-location").addEventListener("click", function () {
      panel.hidden = !panel.hidden;
    });
    view.root.querySelector(".tool-voice").addEventListener("click", function () {
      send(view, { op: "voice" });
    });
    view.root.querySelector(".map-close").addEventListener("click", function () { panel.hidden = true; });
    view.root.querySelectorAll("button.place").forEach(function (button) {
      button.addEventListener("click", function () {
        send(view, { op: "location", lat: Number(button.dataset.lat), lon: Number(button.dataset.lon) });
        panel.hidden = true;
      });
    });
    map.addEventListener("click", function (event) {
      var box = map.getBoundingClientRect();
      var m = config.map;
      var x = (event.clientX - box.left) / box.width;
      var y = (event.clientY - box.top) / box.height;
      var lat = m.north - (m.north - m.south) * y;
      var lon = m.west + (m.east - m.west) * x;
      send(view, { op: "location", lat: Number(lat.toFixed(6)), lon: Number(lon.toFixed(6)) });
      panel.hidden = true;
    });
  }

  // -- drawing one message ---------------------------------------------------------------------------
  var WRAPS = { bold: "strong", italic: "em", underline: "u", strikethrough: "s", code: "code", pre: "code" };

  // Links Telegram would detect in a plain text (the desk's login link, for one).
  function linkify(text) {
    var fragment = document.createDocumentFragment();
    var pattern = /https?:\/\/[^\s<>"'）)]+/g;
    var last = 0, match;
    while ((match = pattern.exec(text)) !== null) {
      fragment.appendChild(document.createTextNode(text.slice(last, match.index)));
      var link = el("a", null, match[0]);
      link.href = match[0];
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      fragment.appendChild(link);
      last = match.index + match[0].length;
    }
    fragment.appendChild(document.createTextNode(text.slice(last)));
    return fragment;
  }

  function richText(text, entities) {
    // Entities count UTF-16 code units, as JavaScript strings do.
    var fragment = document.createDocumentFragment();
    var cuts = [0, text.length];
    entities.forEach(function (e) { cuts.push(e.offset, e.offset + e.length); });
    cuts = cuts.filter(function (c, i, all) { return c >= 0 && c <= text.length && all.indexOf(c) === i; });
    cuts.sort(function (a, b) { return a - b; });
    for (var i = 0; i + 1 < cuts.length; i++) {
      var start = cuts[i], end = cuts[i + 1];
      var segment = text.slice(start, end);
      var linked = entities.some(function (e) {
        return (e.type === "url" || e.type === "text_link") && e.offset <= start && e.offset + e.length >= end;
      });
      var node = linked ? document.createTextNode(segment) : linkify(segment);
      entities.forEach(function (e) {
        if (e.offset > start || e.offset + e.length < end) return;
        var wrap = null;
        if (WRAPS[e.type]) wrap = el(WRAPS[e.type]);
        else if (e.type === "spoiler") wrap = el("span", "spoiler");
        else if (e.type === "url" || e.type === "text_link") {
          var href = safeUrl(e.type === "url" ? text.slice(e.offset, e.offset + e.length) : e.url);
          if (href) {
            wrap = el("a");
            wrap.href = href;
            wrap.target = "_blank";
            wrap.rel = "noopener noreferrer";
          }
        }
        if (wrap) {
          wrap.appendChild(node);
          node = wrap;
        }
      });
      fragment.appendChild(node);
    }
    return fragment;
  }

  var clockFormat = null;
  try {
    clockFormat = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", timeZone: config.timezone });
  } catch (e) {
    clockFormat = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit" });
  }

  function clock(date) {
    return date ? clockFormat.format(new Date(date * 1000)) : "";
  }

  function drawMessage(view, m) {
    var fromBot = m.from === null;
    var mine = !view.group && m.from !== null;
    var item = el("li", "msg " + (fromBot ? "in bot" : mine ? "out" : "in user"));
    item.dataset.messageId = m.id;
    if (m.text.indexOf("🆘") === 0 && fromBot) item.classList.add("alert");
    if (view.group) item.appendChild(el("div", "sender", fromBot ? T["sim.bot"] : m.sender));
    var body = el("div", "text");
    if (m.deleted) {
      body.textContent = T["sim.deleted"];
      item.classList.add("deleted");
    } else {
      if (m.location) {
        var key = m.location.live ? "sim.live_location_note" : "sim.location_note";
        body.appendChild(el("div", "location", tr(key, { lat: m.location.lat, lon: m.location.lon })));
      }
      if (m.voice !== null) body.appendChild(el("div", "voice", tr("sim.voice_note", { seconds: m.voice })));
      if (m.text) body.appendChild(richText(m.text, m.entities || []));
    }
    item.appendChild(body);
    var meta = el("div", "meta", clock(m.date) + (m.edited ? " · " + T["sim.edited"] : ""));
    item.appendChild(meta);
    if (!m.deleted && m.buttons.length) {
      var board = el("div", "inline");
      m.buttons.forEach(function (row) {
        var line = el("div", "inline-row");
        row.forEach(function (b) {
          var button = el("button", "inline-button", b.text);
          button.type = "button";
          button.addEventListener("click", function () {
            var url = safeUrl(b.url);
            if (url) window.open(url, "_blank", "noopener");
            else if (b.data) send(view, { op: "press", message: m.id, data: b.data });
          });
          line.appendChild(button);
        });
        board.appendChild(line);
      });
      item.appendChild(board);
    }
    return item;
  }

  function drawKeyboard(view, rows) {
    if (!view.keyboard) return;
    view.keyboard.textContent = "";
    (rows || []).forEach(function (row) {
      var line = el("div", "kb-row");
      row.forEach(function (label) {
        var button = el("button", "kb-button", label);
        button.type = "button";
        button.addEventListener("click", function () { send(view, { op: "text", text: label }); });
        line.appendChild(button);
      });
      view.keyboard.appendChild(line);
    });
  }

  function apply(m, live) {
    var view = views[String(m.chat)];
    if (!view || m.service) return;
    var known = view.messages.get(m.id);
    if (known && known.seq >= m.seq) return;
    var item = drawMessage(view, m);
    if (known) {
      known.item.replaceWith(item); // an edit, in place
      if (live) flash(item);
    } else {
      var after = null;
      view.messages.forEach(function (other, id) {
        if (id > m.id && (!after || id < Number(after.dataset.messageId))) after = other.item;
      });
      view.list.insertBefore(item, after);
    }
    view.messages.set(m.id, { seq: m.seq, item: item });
    if (m.from === null && (m.keyboard || m.remove_keyboard) && m.id >= view.keyboardFrom) {
      view.keyboardFrom = m.id;
      drawKeyboard(view, m.remove_keyboard ? null : m.keyboard);
    }
    if (live && !known && m.from === null) light(view);
    view.list.scrollTop = view.list.scrollHeight;
  }

  function flash(item) {
    item.classList.remove("changed");
    void item.offsetWidth; // restart the animation
    item.classList.add("changed");
  }

  function light(view) {
    view.root.classList.add("lit");
    view.count += 1;
    if (view.unread) {
      view.unread.textContent = String(view.count);
      view.unread.hidden = false;
    }
  }

  function seen(view) {
    view.root.classList.remove("lit");
    view.count = 0;
    if (view.unread) view.unread.hidden = true;
  }

  function toast(view, text) {
    var note = el("div", "toast", text);
    (view ? view.root : document.body).appendChild(note);
    setTimeout(function () { note.remove(); }, 4000);
  }

  function viewOf(member, chat) {
    if (chat !== undefined && chat !== null && views[String(chat)]) return views[String(chat)];
    var found = null;
    Object.keys(views).forEach(function (id) { if (views[id].member === member) found = views[id]; });
    return found;
  }

  // -- the socket ------------------------------------------------------------------------------------
  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/sim/ws?group=" + encodeURIComponent(config.group));
    socket.addEventListener("open", function () {
      statusEl.textContent = T["sim.live"];
      statusEl.classList.add("live");
    });
    socket.addEventListener("message", function (event) {
      var data = JSON.parse(event.data);
      if (data.type === "messages") data.messages.forEach(function (m) { apply(m, data.live); });
      else if (data.type === "toast" || data.type === "refused") toast(viewOf(data.member, data.chat), data.text);
    });
    socket.addEventListener("close", function () {
      statusEl.textContent = T["sim.offline"];
      statusEl.classList.remove("live");
      setTimeout(connect, 1000);
    });
  }

  // The language switch keeps the group shown.
  document.querySelectorAll("nav.lang a").forEach(function (link) {
    var lang = new URL(link.href, location.href).searchParams.get("lang");
    link.href = "?lang=" + encodeURIComponent(lang) + "&group=" + encodeURIComponent(config.group);
  });

  var desk = document.querySelector("button.sim-desk");
  if (desk) {
    desk.addEventListener("click", function () {
      var view = viewOf(desk.dataset.desk);
      if (!view) return;
      send(view, { op: "text", text: "/desk" });
      toast(view, T["sim.desk_hint"]);
      view.root.scrollIntoView({ behavior: "smooth", block: "center" });
    });
  }

  connect();
})();
