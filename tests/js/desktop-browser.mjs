// A real Chromium uses the demo desktop through deskgate: it opens the
// side A page, tries a wrong password, signs in, changes state, and waits
// for the state to come back as a notification over the XMPP WebSocket.
// Then it opens side B's page (an IP literal, no SNI). It records every
// response and WebSocket frame the browser sees and fails if one names an
// internal host, and lists every 401 it got (only the wrong password may
// get one). Prints one JSON line; exits 0 only when all went well.
//
// env: DG_URL_A, DG_URL_B (desktop URLs), DG_PIN (base64 SHA-256 of the
// certificate's SubjectPublicKeyInfo), DG_USER, DG_PASSWORD, DG_FORBIDDEN
// (comma-separated strings no response may contain), DG_SCREENSHOT (path),
// DG_CHROMIUM (optional: the browser binary; default `command -v chromium`).
import { chromium } from "playwright-core";
import { execSync } from "node:child_process";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const forbidden = env("DG_FORBIDDEN").split(",").filter(Boolean);
const executablePath =
  process.env.DG_CHROMIUM || execSync("command -v chromium", { shell: "/bin/sh" }).toString().trim();
const user = env("DG_USER");
const password = env("DG_PASSWORD");
const result = { ok: false, steps: [], leaks: [], unauthorized: [], responses: 0, frames: 0 };
const pending = [];
const unread = new Set();

function scan(where, text) {
  for (const f of forbidden) if (text.includes(f)) result.leaks.push(`${where} names ${f}`);
}

const browser = await chromium.launch({
  executablePath,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    `--ignore-certificate-errors-spki-list=${env("DG_PIN")}`,
  ],
});
const watchdog = setTimeout(() => finish("timeout"), 60_000);
async function finish(error) {
  clearTimeout(watchdog);
  // every response was read and scanned, or is named as unread
  await Promise.race([Promise.allSettled(pending), new Promise((r) => setTimeout(r, 5000))]);
  if (unread.size) result.unread = [...unread];
  if (error) result.error = String(error);
  result.ok = !error && result.leaks.length === 0;
  console.log(JSON.stringify(result));
  // closing can wait on a page's open WebSocket: bounded, the result is printed
  await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
  process.exit(result.ok ? 0 : 1);
}

try {
    // no httpCredentials: a resource that wrongly needs a Basic challenge
  // must show up as a 401 here, not be answered behind the test's back
  const context = await browser.newContext();
  context.on("response", (resp) => {
    result.responses += 1;
    if (resp.status() === 401) result.unauthorized.push(new URL(resp.url()).pathname);
    const label = `${resp.status()} ${resp.url()}`;
    unread.add(label);
    pending.push(
      (async () => {
        const headers = JSON.stringify(await resp.allHeaders());
        let body = "";
        try {
          body = await resp.text();
        } catch {
          // redirects and upgrades have no body
        }
        scan(`${resp.status()} ${resp.url()}`, `${resp.url()}\n${headers}\n${body}`);
        unread.delete(label);
      })(),
    );
  });
  const page = await context.newPage();
  page.on("websocket", (ws) => {
    result.steps.push(`websocket ${ws.url()}`);
    ws.on("framereceived", (f) => {
      result.frames += 1;
      scan(`frame on ${ws.url()}`, String(f.payload));
    });
  });
  const state = () => page.textContent("#state");
  const waitState = (s) =>
    page.waitForFunction((want) => document.getElementById("state").textContent === want, s, { timeout: 20_000 });

  await page.goto(env("DG_URL_A"));
  result.steps.push(`opened ${await page.title()}`);
  scan("page", await page.content());

  await page.fill("#user", user);
  await page.fill("#password", "not-the-password");
  await page.click("#signin-button");
  await page.waitForFunction(() => document.getElementById("signin-error").textContent.includes("401"), null, {
    timeout: 10_000,
  });
  result.steps.push(`wrong password: ${await page.textContent("#signin-error")}`);

  await page.fill("#password", password);
  await page.click("#signin-button");
  await waitState("NOT_READY");
  await page.waitForSelector("#xmpp-status.connected", { timeout: 10_000 });
  result.steps.push(`signed in, state ${await state()} from a notification`);

  await page.click("#ready");
  await waitState("READY");
  result.notifications = await page.$$eval("#notifications li", (lis) => lis.map((l) => l.textContent));
  result.steps.push(`state ${await state()} from a notification`);
  await page.screenshot({ path: env("DG_SCREENSHOT"), fullPage: true });

  const b = await context.newPage();
  await b.goto(env("DG_URL_B"));
  result.sideB = await b.textContent("#served");
  result.steps.push(`side B: ${result.sideB}`);
  scan("side B page", await b.content());
  await finish();
} catch (e) {
  await finish(e && e.message);
}
