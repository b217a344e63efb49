// The demo page: one user's stream through push.js, the messages as they arrive, a send box.
import { connect } from "./push.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const mailboxTemplate = document.body.dataset.mailbox || "user_{user_id}_messages";
let push = null;

function setStatus({ state, role }) {
  const status = $("status");
  const transport = push?.usedTransport ? ` (${push.usedTransport === "ws" ? "WebSocket" : "SSE"})` : "";
  status.dataset.state = state === "closed" ? "idle" : state;
  status.textContent = {
    open: role === "follower" ? "connected (through the leader tab)" : `connected${transport}`,
    connecting: "connecting",
    closed: "not connected",
  }[state] || state;
  $("role").textContent = role === "alone" ? "" : role;
  $("role").dataset.role = role;
}

function show(id, data, kind) {
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
  $("count").textContent = String($("messages").querySelectorAll("li.message").length);
}

function start() {
  stop();
  const userId = $("user-id").value.trim();
  const transport = document.querySelector("input[name=transport]:checked").value;
  if (!$("send-user-id").value) $("send-user-id").value = userId;
  $("cli-hint").textContent = `redis-cli LPUSH ${mailboxTemplate.replace("{user_id}", userId)} 'hello'`;
  push = connect({ transport, params: { user_id: userId }, user: userId });
  window.push = push; // for the curious, and for the tests
  push.on("status", setStatus);
  push.on("message", ({ id, data }) => show(id, data, "message"));
  push.on("reset", ({ id }) => show(id, "", "reset"));
  $("connect").disabled = true;
  $("disconnect").disabled = false;
}

function stop() {
  if (push) push.close();
  push = null;
  $("connect").disabled = false;
  $("disconnect").disabled = true;
  setStatus({ state: "closed", role: "" });
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

$("connect-form").addEventListener("submit", (event) => { event.preventDefault(); start(); });
$("disconnect").addEventListener("click", stop);
$("send-form").addEventListener("submit", send);

$("user-id").value = params.get("user_id") || `demo-${Math.random().toString(36).slice(2, 8)}`;
$("send-user-id").value = $("user-id").value;
const wanted = params.get("transport");
if (["ws", "sse", "auto"].includes(wanted)) {
  document.querySelector(`input[name=transport][value=${wanted}]`).checked = true;
}
if (params.has("user_id")) start();
