// The demo page: connect one user over SSE or WebSocket, list what arrives, send messages.
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const mailboxTemplate = document.body.dataset.mailbox || "user_{user_id}_messages";

let current = null; // {close()} of the open stream
let lastId = null; // newest event id shown, the resume cursor
let seen = new Set(); // event ids shown, so a reconnect never shows one twice

function setStatus(state, text) {
  const status = $("status");
  status.dataset.state = state;
  status.textContent = text;
}

function show(id, data, kind = "message") {
  if (kind === "message") {
    if (seen.has(id)) return;
    seen.add(id);
  }
  lastId = id;
  const item = document.createElement("li");
  item.dataset.id = id;
  item.className = kind;
  const idCell = document.createElement("span");
  idCell.className = "id";
  idCell.textContent = id;
  const dataCell = document.createElement("span");
  dataCell.className = "data";
  dataCell.textContent = kind === "reset" ? "(history was trimmed: older messages are gone)" : data;
  item.append(idCell, dataCell);
  $("messages").prepend(item);
  $("count").textContent = String($("messages").children.length);
}

function openSse(userId) {
  const url = `/stream?user_id=${encodeURIComponent(userId)}` +
    (lastId ? `&last_event_id=${encodeURIComponent(lastId)}` : "");
  const source = new EventSource(url);
  setStatus("connecting", "connecting (SSE)");
  source.onopen = () => setStatus("open", "connected (SSE)");
  source.onmessage = (event) => show(event.lastEventId, event.data);
  source.addEventListener("reset", (event) => show(event.lastEventId, "", "reset"));
  // EventSource reconnects by itself, sending Last-Event-ID.
  source.onerror = () => setStatus(source.readyState === EventSource.CLOSED ? "error" : "connecting",
    source.readyState === EventSource.CLOSED ? "closed" : "reconnecting (SSE)");
  return { close: () => source.close() };
}

function openWs(userId) {
  let socket = null;
  let stopped = false;
  let attempt = 0;
  let timer = null;
  const connect = () => {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}/ws?user_id=${encodeURIComponent(userId)}` +
      (lastId ? `&last_event_id=${encodeURIComponent(lastId)}` : "");
    socket = new WebSocket(url);
    setStatus("connecting", "connecting (WebSocket)");
    socket.onopen = () => { attempt = 0; setStatus("open", "connected (WebSocket)"); };
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.reset) show(frame.id, "", "reset");
      else show(frame.id, frame.data);
    };
    socket.onclose = (event) => {
      if (stopped) return;
      // Capped, jittered backoff; a restarting server (1012) or an overloaded one (1013)
      // is given a little longer before the first retry.
      const base = event.code === 1012 || event.code === 1013 ? 1000 : 250;
      const delay = Math.min(15000, base * 2 ** attempt) * (0.5 + Math.random());
      attempt += 1;
      setStatus("connecting", `reconnecting (WebSocket) in ${Math.round(delay)} ms`);
      timer = setTimeout(connect, delay);
    };
  };
  connect();
  return { close: () => { stopped = true; clearTimeout(timer); socket && socket.close(); } };
}

function connect() {
  disconnect();
  const userId = $("user-id").value.trim();
  const transport = document.querySelector("input[name=transport]:checked").value;
  if (!$("send-user-id").value) $("send-user-id").value = userId;
  $("cli-hint").textContent =
    `redis-cli LPUSH ${mailboxTemplate.replace("{user_id}", userId)} 'hello'`;
  current = transport === "ws" ? openWs(userId) : openSse(userId);
  $("connect").disabled = true;
  $("disconnect").disabled = false;
}

function disconnect() {
  if (current) current.close();
  current = null;
  $("connect").disabled = false;
  $("disconnect").disabled = true;
  setStatus("idle", "not connected");
}

async function send(event) {
  event.preventDefault();
  const body = { user_id: $("send-user-id").value.trim(), data: $("send-data").value };
  const response = await fetch("/demo/send", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  $("send-result").textContent = response.ok ? "queued" : `${answer.error}: ${answer.detail}`;
  if (response.ok) $("send-data").value = "";
}

$("connect-form").addEventListener("submit", (event) => { event.preventDefault(); connect(); });
$("disconnect").addEventListener("click", disconnect);
$("user-id").addEventListener("change", () => { lastId = null; seen = new Set(); });
$("send-form").addEventListener("submit", send);

$("user-id").value = params.get("user_id") || `demo-${Math.random().toString(36).slice(2, 8)}`;
$("send-user-id").value = $("user-id").value;
const wanted = params.get("transport");
if (wanted === "ws" || wanted === "sse") {
  document.querySelector(`input[name=transport][value=${wanted}]`).checked = true;
}
if (params.has("user_id")) connect();
