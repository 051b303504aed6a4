// smppgw console: the agent's SMS screen. Plain JavaScript, no framework,
// no build step. Every request is one agent-socket op through POST
// /api/{op}; events come by Server-Sent Events from /api/events, each with
// its sequence number as the SSE id, so a reconnect resumes where it
// stopped. The page also drops any event it has already applied (by seq)
// and any message it already shows (by message id).
//
// Customer text is only ever set with textContent: this file creates no
// markup from strings.
"use strict";

(() => {
  const STRINGS = window.SMPPGW_STRINGS;
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);

  // ===== language =====

  function pickLang() {
    const saved = localStorage.getItem("smppgw.lang");
    if (saved && STRINGS[saved]) return saved;
    const asked = params.get("lang");
    if (asked && STRINGS[asked]) return asked;
    return (navigator.language || "en").toLowerCase().startsWith("ja") ? "ja" : "en";
  }
  let lang = pickLang();

  function t(key, vars) {
    let s = (STRINGS[lang] && STRINGS[lang][key]) || STRINGS.en[key] || key;
    if (vars) {
      for (const [k, v] of Object.entries(vars)) s = s.split("{" + k + "}").join(String(v));
    }
    return s;
  }

  function applyLabels(root) {
    for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  }

  // ===== state =====

  const state = {
    agent: null,
    services: [],
    lastSeq: null, // the last event seq applied (null until the stream said where it starts)
    streamReady: false,
    chats: new Map(), // conversation id (number) or "draft:<service>:<customer>" → chat
    requests: new Map(), // conversation id → {conversation, service, customer, text, at}
    templates: new Map(), // service → [template]
    linksDown: new Set(),
  };

  /** Messages asked for per transcript request (the daemon allows 1 to
   *  5000); `?transcript_page=N` asks for another number (the browser test
   *  pages through a few messages with it). */
  const TRANSCRIPT_PAGE = 200;
  const transcriptPage = (() => {
    const n = Number(params.get("transcript_page"));
    return Number.isInteger(n) && n >= 1 && n <= 5000 ? n : TRANSCRIPT_PAGE;
  })();

  const RANK = { accepted: 0, submitted: 1, unknown: 2, delivered: 3, failed: 3, expired: 3, received: 3 };
  /** Outcomes the agent hears about (a screen reader's announcement). */
  const FAILED = new Set(["failed", "expired", "unknown"]);

  // ===== the socket, through the console =====

  class ApiError extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
    }
  }

  async function api(op, body) {
    let resp;
    try {
      resp = await fetch("/api/" + op, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body || {}),
        credentials: "same-origin",
      });
    } catch (e) {
      throw new ApiError("unavailable", t("unavailable"));
    }
    let j = null;
    try {
      j = await resp.json();
    } catch (e) {
      throw new ApiError("unavailable", t("unavailable") + " (" + resp.status + ")");
    }
    if (!j || !j.ok) {
      const err = (j && j.error) || {};
      throw new ApiError(err.code || "unavailable", err.message || t("unavailable"));
    }
    return j.result;
  }

  function showError(el, e) {
    el.textContent = e ? e.message || String(e) : "";
    el.hidden = !e;
  }

  // ===== event stream =====

  let stream = null;

  function setLink(key) {
    const el = $("link");
    el.dataset.state = key;
    let text = t(key);
    for (const c of state.linksDown) text += " · " + t("linkDown", { carrier: c });
    el.textContent = text;
  }

  function openStream() {
    const url = state.lastSeq == null ? "/api/events" : "/api/events?from=" + state.lastSeq;
    const es = new EventSource(url);
    stream = es;
    es.addEventListener("ready", (e) => {
      const d = JSON.parse(e.data);
      setLink("connected");
      if (state.lastSeq == null || !d.resumed) {
        // A fresh start: events after `from` come on this stream; what came
        // before is read from the conversations (both merge idempotently).
        if (state.lastSeq == null || d.from > state.lastSeq) state.lastSeq = d.from;
        state.streamReady = true;
        if (state.agent) loadAll();
      }
    });
    es.addEventListener("unavailable", () => setLink("daemonDown"));
    es.onmessage = (e) => {
      let ev;
      try {
        ev = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      if (typeof ev.seq !== "number") return;
      if (state.lastSeq != null && ev.seq <= state.lastSeq) return; // seen already
      state.lastSeq = ev.seq;
      try {
        handleEvent(ev);
      } catch (err) {
        console.error("event", ev.event, err);
      }
    };
    es.onerror = () => {
      setLink("reconnecting");
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (an HTTP error): start a new stream from the
        // last seq applied.
        es.close();
        if (stream === es) setTimeout(openStream, 1000);
      }
    };
  }

  function handleEvent(ev) {
    const mine = state.agent != null && ev.owner === state.agent;
    const conv = ev.conversation;
    switch (ev.event) {
      case "message_accepted": {
        if (!mine) return;
        const chat = ensureChat(conv, ev.service, ev.customer);
        upsertMessage(chat, {
          id: ev.message,
          direction: "out",
          text: ev.text,
          at: ev.at,
          status: "accepted",
          parts: ev.parts,
        });
        return;
      }
      case "message_submitted":
        return setStatus(conv, ev.message, "submitted", null, ev.possible_duplicate);
      case "message_delivered":
        return setStatus(conv, ev.message, "delivered", null);
      case "message_failed": {
        const st = ev.state === "expired" ? "expired" : ev.state === "no_receipt" ? "unknown" : "failed";
        const why = [ev.state, ev.error].filter(Boolean).join(" ");
        return setStatus(conv, ev.message, st, why);
      }
      case "message_received": {
        if (!mine) return;
        const known = state.chats.get(conv);
        if (known && known.state === "ended") return;
        const chat = ensureChat(conv, ev.service, ev.customer);
        if (!chat.messages.has(ev.message)) announce(chat, t("customerSays", { text: ev.text || "" }));
        upsertMessage(chat, {
          id: ev.message,
          direction: "in",
          text: ev.text,
          at: ev.at,
          status: "received",
          incomplete: ev.incomplete,
        });
        return;
      }
      case "chat_requested":
        addRequest({ conversation: conv, service: ev.service, customer: ev.customer, text: ev.text, at: ev.at });
        return;
      case "chat_assigned": {
        removeRequest(conv);
        if (ev.to === state.agent) {
          const chat = ensureChat(conv, ev.service, ev.customer);
          loadTranscript(chat);
        } else if (ev.from === state.agent) {
          const chat = state.chats.get(conv);
          if (chat) removeChat(chat);
        }
        return;
      }
      case "chat_ended": {
        removeRequest(conv);
        const chat = state.chats.get(conv);
        if (chat) markEnded(chat);
        return;
      }
      case "link_down":
        if (ev.carrier) state.linksDown.add(ev.carrier);
        setLink($("link").dataset.state || "connected");
        return;
      case "link_up":
        if (ev.carrier) state.linksDown.delete(ev.carrier);
        setLink($("link").dataset.state || "connected");
        return;
      default:
        return; // a kind this page does not know: the protocol is open
    }
  }

  // ===== sign-in and the agent's state =====

  function signIn(name) {
    state.agent = name;
    localStorage.setItem("smppgw.agent", name);
    $("who").textContent = name;
    $("signin").hidden = true;
    $("desk").hidden = false;
    loadServices();
    if (state.streamReady) loadAll();
    applyAgentState();
  }

  function signOut() {
    localStorage.removeItem("smppgw.agent");
    state.agent = null;
    for (const chat of [...state.chats.values()]) removeChat(chat);
    for (const id of [...state.requests.keys()]) removeRequest(id);
    state.templates.clear();
    $("desk").hidden = true;
    $("signin").hidden = false;
    $("agent").focus();
  }

  function applyAgentState() {
    const s = $("state").value;
    localStorage.setItem("smppgw.state", s);
    const onCall = s === "busy" || s === "acw";
    $("contact").hidden = !onCall;
    $("dial").hidden = onCall;
    if (onCall) refreshContact();
  }

  async function loadServices() {
    try {
      const r = await api("services", {});
      state.services = r.services || [];
    } catch (e) {
      showError($("error"), e);
      return;
    }
    const sel = $("service");
    const keep = sel.value || localStorage.getItem("smppgw.service");
    sel.replaceChildren();
    for (const s of state.services.filter((s) => s.sms)) {
      const o = document.createElement("option");
      o.value = s.name;
      o.textContent = s.name;
      sel.append(o);
    }
    if (keep && [...sel.options].some((o) => o.value === keep)) sel.value = keep;
    $("number-hint").textContent = sel.options.length ? "" : t("noSmsServices");
    checkDialNumber();
    refreshContact();
  }

  function service(name) {
    return state.services.find((s) => s.name === name);
  }

  // ===== number checks =====

  function describeCheck(r) {
    if (r.sms) return { ok: true, text: t("numberOk", { e164: r.formatted || r.e164 }) };
    if (r.code === "invalid_number" || r.type === "invalid" || !r.e164) return { ok: false, text: t("numberInvalid") };
    if (r.type === "fixed_line") return { ok: false, text: t("numberNotMobile") };
    return { ok: false, text: t("numberNoSms", { reason: r.reason || r.type }) };
  }

  let dialSeq = 0;
  let dialTimer = null;
  let dialChecked = null; // {service, e164} when the number can receive SMS

  function checkDialNumber() {
    clearTimeout(dialTimer);
    dialChecked = null;
    $("dial-sms").disabled = true;
    const svc = $("service").value;
    const number = $("number").value.trim();
    const hint = $("number-hint");
    hint.dataset.ok = "";
    if (!svc || !number) {
      hint.textContent = svc ? "" : t("noSmsServices");
      return;
    }
    hint.textContent = t("numberChecking");
    const mySeq = ++dialSeq;
    dialTimer = setTimeout(async () => {
      try {
        const r = await api("check_number", { service: svc, number });
        if (mySeq !== dialSeq) return;
        const d = describeCheck(r);
        hint.textContent = d.text;
        hint.dataset.ok = d.ok ? "yes" : "no";
        if (d.ok) {
          dialChecked = { service: svc, e164: r.e164 };
          $("dial-sms").disabled = false;
        }
      } catch (e) {
        if (mySeq !== dialSeq) return;
        hint.textContent = e.message;
        hint.dataset.ok = "no";
      }
    }, 200);
  }

  let contactChecked = null;

  async function refreshContact() {
    const call = (params.get("call") || "").replace(/^ /, "+").trim();
    const svcName = params.get("service") || "";
    $("contact-none").hidden = !!call;
    $("contact-call").hidden = !call;
    $("contact-sms").hidden = true;
    contactChecked = null;
    if (!call) return;
    $("contact-number").textContent = call;
    $("contact-service").textContent = svcName;
    const why = $("contact-why");
    why.textContent = "";
    if (!state.agent || !state.services.length) return;
    const svc = service(svcName);
    if (!svc || !svc.sms) {
      why.textContent = t("serviceNoSms");
      return;
    }
    try {
      const r = await api("check_number", { service: svcName, number: call });
      const d = describeCheck(r);
      if (d.ok) {
        contactChecked = { service: svcName, e164: r.e164 };
        $("contact-number").textContent = r.formatted || r.e164;
        $("contact-sms").hidden = false;
      } else {
        why.textContent = d.text;
      }
    } catch (e) {
      why.textContent = e.message;
    }
  }

  // ===== chat requests =====

  function addRequest(req) {
    if (req.conversation == null || state.requests.has(req.conversation)) return;
    if (state.chats.has(req.conversation)) return;
    const li = document.createElement("li");
    li.className = "request";
    const who = document.createElement("span");
    who.className = "number";
    who.textContent = req.customer || "";
    const svc = document.createElement("span");
    svc.className = "tag";
    svc.textContent = req.service || "";
    const text = document.createElement("q");
    text.className = "req-text";
    text.id = "req-text-" + req.conversation;
    text.textContent = req.text || "";
    const btn = document.createElement("button");
    btn.type = "button";
    btn.dataset.i18n = "accept";
    btn.textContent = t("accept");
    btn.setAttribute("aria-describedby", text.id);
    btn.addEventListener("click", () => accept(req, btn));
    li.append(who, " ", svc, " ", text, " ", btn);
    req.el = li;
    state.requests.set(req.conversation, req);
    $("requests").append(li);
    $("requests-box").hidden = false;
  }

  function removeRequest(conv) {
    const req = state.requests.get(conv);
    if (!req) return;
    req.el.remove();
    state.requests.delete(conv);
    $("requests-box").hidden = state.requests.size === 0;
  }

  async function accept(req, btn) {
    btn.disabled = true;
    try {
      await api("assign", { conversation: req.conversation, to: state.agent });
      removeRequest(req.conversation);
      const chat = ensureChat(req.conversation, req.service, req.customer);
      chat.dom.text.focus();
      await loadTranscript(chat);
    } catch (e) {
      btn.disabled = false;
      showError($("error"), e);
    }
  }

  // ===== chats =====

  function draftKey(service, customer) {
    return "draft:" + service + ":" + customer;
  }

  function findByCustomer(service, customer) {
    for (const c of state.chats.values()) {
      if (c.service === service && c.customer === customer && c.state !== "ended") return c;
    }
    return null;
  }

  function openDraft(service, customer) {
    const existing = findByCustomer(service, customer);
    if (existing) {
      existing.dom.text.focus();
      return existing;
    }
    const chat = newChat(draftKey(service, customer), null, service, customer, "draft");
    chat.dom.text.focus();
    return chat;
  }

  /** The chat of a conversation, adopting a draft of the same customer or
   *  creating it (and loading its history). */
  function ensureChat(conv, service, customer) {
    let chat = state.chats.get(conv);
    if (chat) return chat;
    const draft = state.chats.get(draftKey(service, customer));
    if (draft) {
      state.chats.delete(draft.key);
      draft.key = conv;
      draft.conversation = conv;
      draft.state = "open";
      state.chats.set(conv, draft);
      renderChatHead(draft);
      loadTranscript(draft); // the daemon may have continued an open conversation
      return draft;
    }
    chat = newChat(conv, conv, service, customer, "open");
    loadTranscript(chat);
    return chat;
  }

  function newChat(key, conv, service, customer, st) {
    const frag = $("chat-tpl").content.cloneNode(true);
    const root = frag.querySelector(".chat");
    const q = (sel) => root.querySelector(sel);
    const chat = {
      key,
      conversation: conv,
      service,
      customer,
      state: st,
      messages: new Map(),
      pending: new Map(), // message id → status that came before the message
      older: null, // the `before` of the page of earlier messages, null when none
      pagedBack: false, // an earlier page is shown
      countSeq: 0,
      countTimer: null,
      dom: {
        root,
        number: q(".c-number"),
        service: q(".c-service"),
        state: q(".c-state"),
        earlier: q(".c-earlier"),
        transcript: q(".transcript"),
        announce: q(".c-announce"),
        form: q(".composer"),
        text: q(".c-text"),
        counter: q(".c-counter"),
        predef: q(".c-predef"),
        send: q(".c-send"),
        end: q(".c-end"),
        close: q(".c-close"),
        templates: q(".c-templates"),
        error: q(".c-error"),
      },
    };
    applyLabels(root);
    const d = chat.dom;
    const uid = "c" + Math.random().toString(36).slice(2, 10);
    d.text.id = uid + "-text";
    root.querySelector(".c-label").htmlFor = d.text.id;
    d.counter.id = uid + "-counter";
    d.text.setAttribute("aria-describedby", d.counter.id);
    d.templates.id = uid + "-tpl";
    d.predef.setAttribute("aria-controls", d.templates.id);
    d.form.addEventListener("submit", (e) => {
      e.preventDefault();
      sendFrom(chat);
    });
    d.text.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        sendFrom(chat);
      }
    });
    d.text.addEventListener("input", () => scheduleCount(chat));
    d.predef.addEventListener("click", () => toggleTemplates(chat));
    d.templates.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        closeTemplates(chat);
        d.predef.focus();
      }
    });
    d.earlier.addEventListener("click", () => loadEarlier(chat));
    d.end.addEventListener("click", () => endChat(chat));
    d.close.addEventListener("click", () => removeChat(chat));
    state.chats.set(key, chat);
    $("chats").prepend(root);
    $("no-chats").hidden = true;
    renderChatHead(chat);
    scheduleCount(chat);
    return chat;
  }

  function renderChatHead(chat) {
    const d = chat.dom;
    d.root.setAttribute("aria-label", t("chatWith", { number: chat.customer }));
    d.root.dataset.state = chat.state;
    if (chat.conversation != null) d.root.dataset.conversation = String(chat.conversation);
    d.number.textContent = chat.customer;
    d.service.textContent = chat.service;
    d.state.textContent = chat.state === "ended" ? t("ended") : "";
    const ended = chat.state === "ended";
    d.text.disabled = ended;
    d.send.disabled = ended;
    d.predef.disabled = ended;
    d.end.hidden = ended;
    d.close.hidden = !ended;
  }

  function removeChat(chat) {
    clearTimeout(chat.countTimer);
    chat.dom.root.remove();
    state.chats.delete(chat.key);
    $("no-chats").hidden = state.chats.size > 0;
  }

  function markEnded(chat) {
    chat.state = "ended";
    closeTemplates(chat);
    renderChatHead(chat);
  }

  function fromTranscript(m) {
    return {
      id: m.message,
      direction: m.direction,
      text: m.text,
      at: m.at,
      status: m.status,
      error: m.error,
      parts: m.parts,
      incomplete: m.incomplete,
    };
  }

  function setOlder(chat, older) {
    chat.older = older == null ? null : older;
    chat.dom.earlier.hidden = chat.older == null;
  }

  /** The newest page of the transcript (again, on a reconnect: messages
   *  shown already stay, once). */
  async function loadTranscript(chat) {
    if (chat.conversation == null) return;
    try {
      const r = await api("transcript", { conversation: chat.conversation, limit: transcriptPage });
      const c = r.conversation || {};
      if (c.state === "ended") markEnded(chat);
      const msgs = r.messages || [];
      // Once earlier pages are shown, the button goes on from the oldest of
      // them, unless this page does not join what is shown (more than a page
      // came meanwhile): then it goes on from this page, and the pages it
      // brings again are dropped as shown already.
      const joins = msgs.length === 0 || chat.messages.has(msgs[0].message);
      if (!chat.pagedBack || !joins) setOlder(chat, r.older);
      for (const m of msgs) upsertMessage(chat, fromTranscript(m));
    } catch (e) {
      showError(chat.dom.error, e);
    }
  }

  /** "Show earlier messages": the page before the oldest shown, inserted
   *  above it without moving what the agent is reading. */
  async function loadEarlier(chat) {
    const d = chat.dom;
    if (chat.conversation == null || chat.older == null || d.earlier.disabled) return;
    // Disabled, the button loses the focus: it gets it back after.
    const focused = document.activeElement === d.earlier;
    d.earlier.disabled = true;
    showError(d.error, null);
    try {
      const r = await api("transcript", { conversation: chat.conversation, before: chat.older, limit: transcriptPage });
      // The message at the top stays where it is on the screen.
      const list = d.transcript;
      const first = list.firstElementChild;
      const top = first ? first.getBoundingClientRect().top : 0;
      const msgs = r.messages || [];
      const added = msgs.filter((m) => !chat.messages.has(m.message)).length;
      for (const m of msgs) upsertMessage(chat, fromTranscript(m));
      if (first) list.scrollTop += first.getBoundingClientRect().top - top;
      announce(chat, t("earlierShown", { n: added }));
      chat.pagedBack = true;
      setOlder(chat, r.older);
    } catch (e) {
      showError(d.error, e);
    } finally {
      d.earlier.disabled = false;
    }
    // Once the first message is shown the button goes: the focus moves on in
    // the chat rather than back to the page's start.
    const now = document.activeElement;
    if (!focused || (now && now !== document.body) || !d.root.isConnected) return;
    if (!d.earlier.hidden) d.earlier.focus({ preventScroll: true });
    else (d.text.disabled ? d.close : d.text).focus({ preventScroll: true });
  }

  async function loadAll() {
    if (!state.agent) return;
    const agent = state.agent;
    // The daemon answers a page at a time: follow `next` until null.
    const convs = [];
    try {
      let after = null;
      for (let pages = 0; pages < 1000; pages++) {
        const req = { owner: agent, include_requested: true, limit: 500 };
        if (after !== null) req.after = after;
        const r = await api("conversations", req);
        if (state.agent !== agent) return;
        for (const c of r.conversations || []) convs.push(c);
        if (r.next === null || r.next === undefined) break;
        after = r.next;
      }
    } catch (e) {
      showError($("error"), e);
      return;
    }
    if (state.agent !== agent) return;
    showError($("error"), null);
    for (const c of convs) {
      if (c.state === "requested") {
        if (state.requests.has(c.id)) continue;
        let text = "";
        try {
          const tr = await api("transcript", { conversation: c.id, limit: 20 });
          const ins = (tr.messages || []).filter((m) => m.direction === "in");
          if (ins.length) text = ins[ins.length - 1].text;
        } catch (e) {
          /* shown without its text */
        }
        addRequest({ conversation: c.id, service: c.service, customer: c.customer, text, at: c.last_at });
      } else if (c.state === "open" && c.owner === agent) {
        const known = state.chats.has(c.id);
        const chat = ensureChat(c.id, c.service, c.customer);
        if (known) loadTranscript(chat);
      }
    }
  }

  // ===== messages =====

  function timeOf(at) {
    const d = at ? new Date(at) : new Date();
    if (isNaN(d.getTime())) return "";
    return d.toLocaleTimeString(lang === "ja" ? "ja-JP" : "en-GB", { hour: "2-digit", minute: "2-digit" });
  }

  function upsertMessage(chat, m) {
    if (m.id == null) return;
    let msg = chat.messages.get(m.id);
    if (!msg) {
      msg = { id: m.id, direction: m.direction, text: m.text || "", at: m.at, status: m.status, error: m.error, incomplete: !!m.incomplete };
      msg.el = renderMessage(chat, msg);
      chat.messages.set(m.id, msg);
      placeMessage(chat, msg);
      const early = chat.pending.get(m.id);
      if (early) {
        chat.pending.delete(m.id);
        applyStatus(msg, early.status, early.error, early.dup);
      }
    } else {
      if (m.at && !msg.at) msg.at = m.at;
    }
    applyStatus(msg, m.status, m.error);
  }

  /** Keeps the transcript in time order (then id order). */
  function placeMessage(chat, msg) {
    const list = chat.dom.transcript;
    const key = (x) => [x.at ? Date.parse(x.at) : Infinity, x.id];
    const k = key(msg);
    for (const other of list.children) {
      const o = chat.messages.get(Number(other.dataset.message));
      if (!o || o === msg) continue;
      const ok = key(o);
      if (ok[0] > k[0] || (ok[0] === k[0] && ok[1] > k[1])) {
        list.insertBefore(msg.el, other);
        return;
      }
    }
    list.append(msg.el);
    list.scrollTop = list.scrollHeight;
  }

  function renderMessage(chat, msg) {
    const li = document.createElement("li");
    li.className = "msg " + (msg.direction === "in" ? "in" : "out");
    li.dataset.message = String(msg.id);
    const meta = document.createElement("div");
    meta.className = "meta";
    const who = document.createElement("span");
    who.className = "author";
    who.textContent = msg.direction === "in" ? t("customer") : t("you");
    const time = document.createElement("time");
    if (msg.at) time.dateTime = msg.at;
    time.textContent = timeOf(msg.at);
    const status = document.createElement("span");
    status.className = "status";
    meta.append(who, " ", time, " ", status);
    const body = document.createElement("div");
    body.className = "text";
    body.textContent = msg.text; // customer text is text, never markup
    if (msg.incomplete) {
      const note = document.createElement("span");
      note.className = "hint";
      note.textContent = " " + t("incomplete");
      body.append(note);
    }
    li.append(meta, body);
    return li;
  }

  function setStatus(conv, id, status, error, dup) {
    const chat = state.chats.get(conv);
    if (!chat) return;
    const msg = chat.messages.get(id);
    if (!msg) {
      const prev = chat.pending.get(id);
      if (!prev || RANK[status] >= RANK[prev.status]) chat.pending.set(id, { status, error, dup });
      return;
    }
    const was = msg.status;
    applyStatus(msg, status, error, dup);
    // Said with the label the message shows ("Failed", "No receipt"...).
    if (msg.status !== was && FAILED.has(msg.status)) announce(chat, t(msg.status) + ": " + msg.text);
  }

  /** What a screen reader says about a chat: the customer's new messages,
   *  a send that failed, an earlier page shown. The transcript itself is
   *  not a live region, so loading or paging it is not read out whole. */
  function announce(chat, text) {
    const el = chat.dom.announce;
    // The same words twice in a row are a change too.
    el.textContent = el.textContent === text ? text + "\u00a0" : text;
  }

  function applyStatus(msg, status, error, dup) {
    if (dup) msg.dup = true;
    if (msg.status == null || RANK[status] == null || RANK[status] >= RANK[msg.status]) {
      msg.status = status || msg.status;
      if (error) msg.error = error;
    }
    renderStatus(msg);
  }

  function renderStatus(msg) {
    const el = msg.el.querySelector(".status");
    el.dataset.status = msg.status || "";
    if (msg.direction === "in") {
      el.textContent = "";
      return;
    }
    let text = t(msg.status || "accepted");
    if (msg.status === "failed" || msg.status === "expired") {
      if (msg.error) text = t("failedBecause", { reason: msg.error });
      if (msg.status === "expired") text = t("expired") + (msg.error ? " (" + msg.error + ")" : "");
    }
    if (msg.dup) text += " " + t("possibleDuplicate");
    el.textContent = text;
  }

  function rerenderAll() {
    applyLabels(document);
    document.documentElement.lang = lang;
    document.title = t("title");
    for (const chat of state.chats.values()) {
      applyLabels(chat.dom.root);
      renderChatHead(chat);
      for (const msg of chat.messages.values()) {
        msg.el.querySelector(".author").textContent = msg.direction === "in" ? t("customer") : t("you");
        msg.el.querySelector("time").textContent = timeOf(msg.at);
        renderStatus(msg);
      }
      scheduleCount(chat);
    }
    for (const req of state.requests.values()) applyLabels(req.el);
    setLink($("link").dataset.state || "connecting");
    if ($("number").value) checkDialNumber();
    refreshContact();
  }

  // ===== composing =====

  function scheduleCount(chat) {
    clearTimeout(chat.countTimer);
    chat.countTimer = setTimeout(() => count(chat), 150);
  }

  async function count(chat) {
    const text = chat.dom.text.value;
    const mySeq = ++chat.countSeq;
    try {
      const r = await api("count", { service: chat.service, text });
      if (mySeq !== chat.countSeq) return;
      renderCounter(chat, r);
    } catch (e) {
      if (mySeq !== chat.countSeq) return;
      chat.dom.counter.textContent = "";
    }
  }

  function singleLimit(r) {
    if (r.parts <= 1) return r.per_part;
    return { gsm7: 160, ucs2: 70 }[r.encoding] || 140;
  }

  function renderCounter(chat, r) {
    const c = chat.dom.counter;
    const used = document.createElement("span");
    used.className = "used";
    const limit = singleLimit(r);
    used.textContent =
      r.parts > 1 ? t("counterParts", { used: r.units, limit, parts: r.parts }) : t("counter", { used: r.units, limit });
    const left = document.createElement("span");
    left.className = "left";
    left.textContent = t("left", { left: r.remaining });
    const parts = [used, " ", left];
    if (r.fits === false) {
      const over = document.createElement("span");
      over.className = "over";
      over.textContent = " " + t("tooLong", { max: r.max_parts });
      parts.push(over);
    }
    c.dataset.encoding = r.encoding || "";
    c.dataset.fits = r.fits === false ? "no" : "yes";
    c.replaceChildren(...parts);
  }

  async function sendFrom(chat) {
    const d = chat.dom;
    const text = d.text.value;
    if (!text.trim() || chat.state === "ended" || d.send.dataset.busy) return;
    d.send.dataset.busy = "1";
    d.send.disabled = true;
    showError(d.error, null);
    const body = {
      service: chat.service,
      to: chat.customer,
      text,
      agent: state.agent,
      client_ref: state.agent + "-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10),
    };
    if (chat.conversation != null) body.conversation = chat.conversation;
    const interaction = params.get("interaction");
    if (interaction && params.get("call")) body.interaction = interaction;
    try {
      const r = await api("send", body);
      let target = state.chats.get(r.conversation);
      if (!target) {
        target = ensureChat(r.conversation, chat.service, chat.customer);
      } else if (target !== chat) {
        // The conversation already has a session: the draft merges into it.
        removeChat(chat);
        target.dom.text.focus();
      }
      if (target === chat && chat.conversation == null) {
        chat.conversation = r.conversation;
      }
      upsertMessage(target, {
        id: r.message,
        direction: "out",
        text,
        at: r.at,
        status: "accepted",
        parts: r.parts,
      });
      d.text.value = "";
      scheduleCount(target);
      if (target !== chat) target.dom.text.value = "";
    } catch (e) {
      showError(d.error, e);
    } finally {
      delete d.send.dataset.busy;
      d.send.disabled = chat.state === "ended";
    }
  }

  async function endChat(chat) {
    showError(chat.dom.error, null);
    if (chat.conversation == null) {
      removeChat(chat);
      return;
    }
    try {
      await api("end_chat", { conversation: chat.conversation, agent: state.agent });
      markEnded(chat);
      chat.dom.close.focus();
    } catch (e) {
      if (e.code === "conversation_ended") markEnded(chat);
      else showError(chat.dom.error, e);
    }
  }

  // ===== predefined messages =====

  async function toggleTemplates(chat) {
    const d = chat.dom;
    if (!d.templates.hidden) {
      closeTemplates(chat);
      return;
    }
    let list = state.templates.get(chat.service);
    if (!list) {
      try {
        const r = await api("templates", { service: chat.service, agent: state.agent });
        list = r.templates || [];
        state.templates.set(chat.service, list);
      } catch (e) {
        showError(d.error, e);
        return;
      }
    }
    const items = [];
    if (!list.length) {
      const li = document.createElement("li");
      li.className = "hint";
      li.textContent = t("noTemplates");
      items.push(li);
    }
    for (const tpl of list) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "tpl";
      const name = document.createElement("strong");
      name.textContent = tpl.name;
      const scope = document.createElement("span");
      scope.className = "tag";
      scope.textContent = tpl.scope === "agent" ? t("ownTemplates") : t("serviceTemplates");
      const text = document.createElement("span");
      text.className = "tpl-text";
      text.textContent = tpl.text;
      const cost = document.createElement("span");
      cost.className = "hint";
      if (tpl.count) cost.textContent = tpl.count.units + " · " + tpl.count.parts;
      b.append(name, " ", scope, " ", text, " ", cost);
      b.addEventListener("click", () => insertTemplate(chat, tpl.text));
      li.append(b);
      items.push(li);
    }
    d.templates.replaceChildren(...items);
    d.templates.hidden = false;
    d.predef.setAttribute("aria-expanded", "true");
    const first = d.templates.querySelector("button");
    if (first) first.focus();
  }

  function closeTemplates(chat) {
    chat.dom.templates.hidden = true;
    chat.dom.predef.setAttribute("aria-expanded", "false");
  }

  function insertTemplate(chat, text) {
    const ta = chat.dom.text;
    const start = ta.selectionStart ?? ta.value.length;
    const end = ta.selectionEnd ?? ta.value.length;
    ta.value = ta.value.slice(0, start) + text + ta.value.slice(end);
    ta.selectionStart = ta.selectionEnd = start + text.length;
    closeTemplates(chat);
    ta.focus();
    scheduleCount(chat);
  }

  // ===== wiring =====

  function init() {
    $("lang").value = lang;
    rerenderAll();
    $("lang").addEventListener("change", () => {
      lang = $("lang").value;
      localStorage.setItem("smppgw.lang", lang);
      rerenderAll();
    });
    $("signin-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const name = $("agent").value.trim();
      if (name) signIn(name);
    });
    $("signout").addEventListener("click", signOut);
    const savedState = localStorage.getItem("smppgw.state");
    if (params.get("call")) $("state").value = "busy";
    else if (savedState) $("state").value = savedState;
    $("state").addEventListener("change", applyAgentState);
    $("service").addEventListener("change", () => {
      localStorage.setItem("smppgw.service", $("service").value);
      checkDialNumber();
    });
    $("number").addEventListener("input", checkDialNumber);
    $("dial-form").addEventListener("submit", (e) => {
      e.preventDefault();
      if (dialChecked) openDraft(dialChecked.service, dialChecked.e164);
    });
    $("contact-sms").addEventListener("click", () => {
      if (contactChecked) openDraft(contactChecked.service, contactChecked.e164);
    });
    openStream();
    const saved = localStorage.getItem("smppgw.agent");
    if (saved) {
      $("agent").value = saved;
      signIn(saved);
    } else {
      $("agent").focus();
    }
  }

  init();
})();
