// Two agents sign in to XMPP over WebSocket through deskgate (as Finesse
// desktops do for notifications), ping the server, and exchange a large
// message. Prints one JSON line; exits 0 only when everything arrived.
//
// env: DG_CONNECT=127.0.0.1:PORT (where deskgate listens), DG_SNI, DG_SERVICE
// (wss://external-host:port/ws/), NODE_EXTRA_CA_CERTS (the test CA); and
// optionally DG_DOMAIN (XMPP domain, default localhost), DG_USERS
// ("a:pw,b:pw", default agent1/agent2 of the Prosody tests) and DG_BIG (the
// large message's size, default 150000), DG_PROOF: how each agent proves
// to deskgate's WebSocket gate that it signed in (SPEC 3):
//   none (default)  nothing; the gate must let it through on its own
//   ip              a REST call with Basic credentials first (mode a)
//   cookie          that REST call, then its session cookie on the upgrade (mode c)
//   subprotocol     an extra offered auth.basic.<base64url(user:password)> (mode b)
// and DG_REST, the REST path of that call ("{user}" is replaced; default
// /finesse/api/User/{user}).
import { client, xml } from "@xmpp/client";
import { WebSocket as WS } from "ws";
import tls from "node:tls";
import https from "node:https";

const [host, port] = process.env.DG_CONNECT.split(":");
const servername = process.env.DG_SNI;
const service = process.env.DG_SERVICE;

// The browser-like WebSocket @xmpp/client uses, dialing deskgate's test port
// while the URL (and so Host and SNI) keeps the external name.
const negotiated = [];
const proof = process.env.DG_PROOF || "none";
// what the next WebSocket carries: set before each agent starts
let current = { cookie: null, subprotocol: null };
globalThis.WebSocket = class extends WS {
  constructor(url, protocols) {
    const offered = current.subprotocol ? [...protocols, current.subprotocol] : protocols;
    super(url, offered, {
      createConnection: (opts) => tls.connect({ ...opts, host, port: Number(port), servername }),
      headers: current.cookie ? { Cookie: current.cookie } : {},
    });
    this.addEventListener("open", () => negotiated.push(this.protocol));
  }
};

// One authenticated REST call through deskgate; resolves with its status and
// the session cookie it set (name=value only).
function restCall(username, password) {
  const url = new URL(service);
  const path = (process.env.DG_REST || "/finesse/api/User/{user}").replace("{user}", encodeURIComponent(username));
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: url.hostname,
        port: url.port,
        path,
        headers: { Authorization: "Basic " + Buffer.from(`${username}:${password}`).toString("base64") },
        createConnection: (opts) => tls.connect({ ...opts, host, port: Number(port), servername }),
      },
      (res) => {
        res.resume();
        const set = (res.headers["set-cookie"] || []).map((c) => c.split(";")[0]);
        resolve({ status: res.statusCode, cookie: set.find((c) => c.startsWith("__Host-deskgate-session=")) || null });
      },
    );
    req.on("error", reject);
    req.end();
  });
}

async function prove(username, password) {
  current = { cookie: null, subprotocol: null };
  if (proof === "ip" || proof === "cookie") {
    const r = await restCall(username, password);
    if (r.status !== 200) throw new Error(`REST sign-in of ${username} got ${r.status}`);
    if (proof === "cookie") {
      if (!r.cookie) throw new Error(`no session cookie for ${username}`);
      current.cookie = r.cookie;
    }
  } else if (proof === "subprotocol") {
    current.subprotocol = "auth.basic." + Buffer.from(`${username}:${password}`).toString("base64url");
  }
}

const domain = process.env.DG_DOMAIN || "localhost";
const users = (process.env.DG_USERS || "agent1:pw-agent1,agent2:pw-agent2").split(",").map((u) => u.split(":"));
const big = "x".repeat(Number(process.env.DG_BIG || 150_000));
const timer = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, error: "timeout" }));
  process.exit(1);
}, 20_000);

function agent(username, password) {
  const c = client({ service, domain, resource: "desktop", username, password });
  c.on("error", (e) => console.error(`${username}: ${e.message}`));
  return c;
}

const a = agent(users[0][0], users[0][1]);
const b = agent(users[1][0], users[1][1]);
const received = new Promise((resolve) => {
  b.on("stanza", (s) => {
    if (s.is("message") && s.getChildText("body")?.length === big.length + 6) resolve(s.getChildText("body"));
  });
});
try {
  await prove(users[1][0], users[1][1]);
  await b.start();
  await b.send(xml("presence"));
  await prove(users[0][0], users[0][1]);
  await a.start();
  await a.send(xml("presence"));
  const pong = await a.iqCaller.request(xml("iq", { type: "get", to: domain }, xml("ping", { xmlns: "urn:xmpp:ping" })));
  await a.send(xml("message", { to: `${users[1][0]}@${domain}/desktop`, type: "chat" }, xml("body", {}, "hello " + big)));
  const body = await received;
  clearTimeout(timer);
  console.log(JSON.stringify({ ok: body === "hello " + big, pong: pong.attrs.type, bytes: body.length, protocols: negotiated }));
  await a.stop();
  await b.stop();
  process.exit(body === "hello " + big ? 0 : 1);
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e && e.message) }));
  process.exit(1);
}
