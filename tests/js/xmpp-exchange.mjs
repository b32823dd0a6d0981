// Two agents sign in to XMPP over WebSocket through deskgate (as Finesse
// desktops do for notifications), ping the server, and exchange a large
// message. Prints one JSON line; exits 0 only when everything arrived.
//
// env: DG_CONNECT=127.0.0.1:PORT (where deskgate listens), DG_SNI, DG_SERVICE
// (wss://external-host:port/ws/), NODE_EXTRA_CA_CERTS (the test CA); and
// optionally DG_DOMAIN (XMPP domain, default localhost), DG_USERS
// ("a:pw,b:pw", default agent1/agent2 of the Prosody tests) and DG_BIG (the
// large message's size, default 150000).
import { client, xml } from "@xmpp/client";
import { WebSocket as WS } from "ws";
import tls from "node:tls";

const [host, port] = process.env.DG_CONNECT.split(":");
const servername = process.env.DG_SNI;
const service = process.env.DG_SERVICE;

// The browser-like WebSocket @xmpp/client uses, dialing deskgate's test port
// while the URL (and so Host and SNI) keeps the external name.
const negotiated = [];
globalThis.WebSocket = class extends WS {
  constructor(url, protocols) {
    super(url, protocols, {
      createConnection: (opts) => tls.connect({ ...opts, host, port: Number(port), servername }),
    });
    this.addEventListener("open", () => negotiated.push(this.protocol));
  }
};

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
  await b.start();
  await b.send(xml("presence"));
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
