// The trading screen under the demo market's load, for SOAK_SECONDS (default 300): samples
// the page's DOM nodes, JS heap (after a forced GC), event listeners, how late a 50 ms timer
// fires (main-thread stalls) and how long a click on the ladder takes to reach the ticket,
// and counts what the WebSocket delivered per channel kind. Driven (and judged) by
// tests/e2e/test_web_soak.py.
//
// In:  BASE_URL, SYMBOL, SOAK_SECONDS, SAMPLE_SECONDS (default 10), ARTIFACTS, CHROMIUM.
// Out: one JSON line on stdout: {samples: [...], messages: {...}, seconds}.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const BASE_URL = env("BASE_URL");
const SYMBOL = env("SYMBOL");
const SECONDS = Number(env("SOAK_SECONDS", "300"));
const SAMPLE_SECONDS = Number(env("SAMPLE_SECONDS", "10"));
const ARTIFACTS = env("ARTIFACTS");
mkdirSync(ARTIFACTS, { recursive: true });
const step = (text) => process.stderr.write(`soak: ${text}\n`);

const browser = await chromium.launch({
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--enable-precise-memory-info"],
});
const report = { samples: [], messages: {}, seconds: 0 };
try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  // Count what the server pushes (the page subscribes to SYMBOL only), by channel kind.
  const counts = {};
  await context.routeWebSocket(/\/ws(\?|$)/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => server.send(m));
    server.onMessage((m) => {
      try {
        const msg = JSON.parse(String(m));
        if (typeof msg.channel === "string") {
          const kind = `${msg.channel.split(".")[0]}:${msg.type}`;
          counts[kind] = (counts[kind] ?? 0) + (msg.first_seq ? msg.seq - msg.first_seq + 1 : 1);
          if (msg.type === "delta") {
            const levels = (msg.data?.bids?.length ?? 0) + (msg.data?.asks?.length ?? 0);
            counts["book:levels"] = (counts["book:levels"] ?? 0) + levels;
          }
        }
      } catch {
        // not JSON: forwarded as it is
      }
      ws.send(m);
    });
  });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  page.on("pageerror", (err) => step(`page error: ${err.message}`));
  await page.goto(BASE_URL);
  await page.fill("input[name=username]", "alice");
  await page.fill("input[name=password]", "alice-demo");
  await page.click("button[type=submit]");
  await page.getByTestId(`market-${SYMBOL}`).click();
  await page.getByTestId("ticket").filter({ hasText: SYMBOL }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=ladder-ask]").length > 0);
  step(`watching ${SYMBOL} for ${SECONDS} s`);

  // Main-thread stalls: how late a 50 ms timer fires, worst case per sample window.
  await page.evaluate(() => {
    const w = window;
    w.__lag = 0;
    let expected = performance.now() + 50;
    setInterval(() => {
      const now = performance.now();
      w.__lag = Math.max(w.__lag, now - expected);
      expected = now + 50;
    }, 50);
  });
  const cdp = await context.newCDPSession(page);
  await cdp.send("Performance.enable");

  const started = Date.now();
  const startCounts = { ...counts };
  for (let i = 1; (Date.now() - started) / 1000 < SECONDS; i++) {
    await page.waitForTimeout(Math.max(0, started + i * SAMPLE_SECONDS * 1000 - Date.now()));
    // A trader's click: the best ask into the ticket (dispatched in the page, so a row the
    // ladder redraws meanwhile cannot swallow it), timed in the page, frame by frame, until
    // the ticket shows the price: the harness's own latency (a CDP round trip from a Node
    // process that shares two cores with everything else) is not the page's.
    const clicked = await page.evaluate(
      () =>
        new Promise((resolve) => {
          const row = [...document.querySelectorAll("[data-testid=ladder-ask]")].at(-1);
          if (row === undefined) return resolve(null);
          const price = Number(row.dataset.price);
          const t0 = performance.now();
          row.click();
          const check = () => {
            const ms = performance.now() - t0;
            const shown = document.querySelector("[data-testid=ticket-price]")?.value;
            if (Number(shown) === price) return resolve(Math.round(ms));
            if (ms > 5_000) return resolve(null);
            requestAnimationFrame(check);
          };
          requestAnimationFrame(check);
        }),
    );
    const clickMs = clicked;
    await cdp.send("HeapProfiler.collectGarbage");
    const { metrics } = await cdp.send("Performance.getMetrics");
    const metric = (name) => metrics.find((m) => m.name === name)?.value ?? null;
    const lagMs = await page.evaluate(() => {
      const lag = window.__lag;
      window.__lag = 0;
      return lag;
    });
    const sample = {
      t: Math.round((Date.now() - started) / 1000),
      nodes: metric("Nodes"),
      domElements: await page.evaluate(() => document.getElementsByTagName("*").length),
      heapMB: Math.round((metric("JSHeapUsedSize") / 2 ** 20) * 100) / 100,
      listeners: metric("JSEventListeners"),
      lagMs: Math.round(lagMs),
      clickMs,
      connection: await page.getByTestId("connection").getAttribute("data-state"),
    };
    report.samples.push(sample);
    step(JSON.stringify(sample));
  }
  report.seconds = (Date.now() - started) / 1000;
  for (const [kind, n] of Object.entries(counts)) report.messages[kind] = n - (startCounts[kind] ?? 0);
  await page.screenshot({ path: join(ARTIFACTS, "web-soak-end.png"), fullPage: true });
} catch (exc) {
  report.error = String(exc?.stack ?? exc);
  process.exitCode = 1;
} finally {
  await browser.close();
  process.stdout.write(`${JSON.stringify(report)}\n`);
}
