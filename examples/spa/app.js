// A single-page app behind Gateway: sign in, call the API, refresh silently, sign out.
//
// The access token lives in the variable below and nowhere else: not in localStorage, not in
// sessionStorage, not in a cookie this script can read. A script injected into the page could
// still use it while the page is open, but cannot carry it off from storage later. A reload
// gets a fresh one from the refresh cookie, which is HttpOnly (no script can read it) and sent
// only to /auth (its Path) on same-site requests (SameSite=Strict).
"use strict";

let accessToken = null;
let live = null; // the open WebSocket of live messages
let liveExpired = false; // closed at the token's expiry: reopened with the next token
let refreshing = null; // the refresh in flight, shared by every call that met a 401 meanwhile

const $ = (id) => document.getElementById(id);

function say(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

// A new access token from the refresh cookie; false when the session is over.
function refresh() {
  if (!refreshing) {
    refreshing = fetch("/auth/refresh", {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(async (response) => {
        accessToken = response.ok ? (await response.json()).access_token : null;
        if (accessToken !== null && liveExpired) openLive();
        return accessToken !== null;
      })
      .catch(() => false)
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

// A call to the protected API: on a 401 the token is refreshed once and the call made again.
async function api(path, options = {}) {
  const call = () =>
    fetch(path, {
      ...options,
      credentials: "same-origin",
      headers: {
        Accept: "application/json",
        ...options.headers,
        ...(accessToken ? { Authorization: `Bearer ${accessToken}` } : {}),
      },
    });
  let response = await call();
  if (response.status === 401 && (await refresh())) {
    response = await call();
  }
  if (response.status === 401) {
    showSignedOut("Your session has ended; please sign in again.", true);
  }
  return response;
}

async function describe(response) {
  try {
    const body = await response.json();
    return body.error_description || body.error || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

async function signIn(event) {
  event.preventDefault();
  const response = await fetch("/auth/login", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ username: $("username").value, password: $("password").value }),
  });
  $("password").value = "";
  if (response.ok) {
    accessToken = (await response.json()).access_token;
    say("");
    await showSignedIn();
  } else if (response.status === 401) {
    say("Wrong username or password.", true);
  } else if (response.status === 429) {
    const wait = response.headers.get("Retry-After");
    say(`Too many failed sign-ins. Try again in ${wait} s.`, true);
  } else {
    say(await describe(response), true);
  }
}

async function signOut() {
  const response = await fetch("/auth/logout", {
    method: "POST",
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  accessToken = null;
  if (response.ok) {
    showSignedOut("You are signed out.");
  } else {
    showSignedOut(`Signed out here, but: ${await describe(response)}`, true);
  }
}

async function loadOrders() {
  const response = await api("/api/orders");
  if (!response.ok) {
    if (response.status !== 401) say(await describe(response), true);
    return;
  }
  const { orders } = await response.json();
  const list = $("orders");
  list.replaceChildren(
    ...orders.map((order) => {
      const item = document.createElement("li");
      item.textContent = `#${order.id} ${order.item} (by ${order.by})`;
      return item;
    }),
  );
  say(`${orders.length} order(s) loaded at ${new Date().toLocaleTimeString()}.`);
}

async function addOrder(event) {
  event.preventDefault();
  const response = await api("/api/orders", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ item: $("item").value }),
  });
  if (response.ok) {
    $("item").value = "";
    await loadOrders();
  } else if (response.status !== 401) {
    say(await describe(response), true);
  }
}

// Live messages over a WebSocket through the gateway. A browser cannot set Authorization on a
// WebSocket, so the token goes as a "bearer.<token>" entry of the subprotocols, beside the app's
// own "live" (which the upstream chooses; the gateway never sends the token on or back). The
// gateway closes the socket when the token expires (1008 "token expired": reopened with the
// next token, which the next API call's refresh brings) or the session ends (1008 "session
// revoked", e.g. a sign-out in any tab: it stays closed).
function openLive() {
  if (!accessToken || (live && live.readyState <= WebSocket.OPEN)) return;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/api/live`, [
    "live",
    `bearer.${accessToken}`,
  ]);
  live = socket;
  liveExpired = false;
  $("live").hidden = false;
  socket.addEventListener("open", () => {
    $("live-state").textContent = "Connected.";
  });
  socket.addEventListener("message", (event) => {
    const { n, to, time } = JSON.parse(event.data);
    const item = document.createElement("li");
    item.textContent = `${time} message ${n} for ${to}`;
    const list = $("live-messages");
    list.prepend(item);
    while (list.children.length > 5) list.lastElementChild.remove();
  });
  socket.addEventListener("close", (event) => {
    if (live === socket) live = null;
    $("live-state").textContent =
      `Closed by the gateway: ${event.reason || "connection ended"} (${event.code}).`;
    liveExpired = event.reason === "token expired";
  });
}

async function showSignedIn() {
  const response = await api("/api/whoami");
  if (!response.ok) return;
  const { subject } = await response.json();
  $("sub").textContent = subject;
  $("who").hidden = false;
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
  await loadOrders();
}

function showSignedOut(message, error = false) {
  accessToken = null;
  $("who").hidden = true;
  $("signed-in").hidden = true;
  $("orders").replaceChildren();
  $("signed-out").hidden = false;
  say(message, error);
}

document.addEventListener("DOMContentLoaded", async () => {
  $("sign-in").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("load").addEventListener("click", loadOrders);
  $("go-live").addEventListener("click", openLive);
  $("new-order").addEventListener("submit", addOrder);
  // A session already open in this browser (another tab, a reload) is picked up silently.
  if (await refresh()) {
    await showSignedIn();
  } else {
    showSignedOut("");
  }
});
