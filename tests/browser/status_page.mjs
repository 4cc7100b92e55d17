// Drives fulcrum's status page in Debian's headless Chromium (through playwright-core and
// the DevTools protocol), for tests/integration/test_status_page.cpp, which starts fulcrum
// in front of three demo backends b0, b1, b2 and passes, as one JSON argument:
//   {"admin": "http://127.0.0.1:PORT", "listen": PORT, "stop_pid": PID of b2's process,
//    "first_backend": the name b0 answers with, "screenshot": "PATH.png"}
// It checks what a person would, step by step, and prints one JSON line: {"failures": [...],
// "observations": {...}}. The exit code is 0 only without failures.

import http from "node:http";
import { chromium } from "playwright-core";

const options = JSON.parse(process.argv[2]);
const failures = [];
const observations = {};
const check = (condition, what) => {
  if (!condition) failures.push(what);
  return condition;
};

// One HTTP GET through fulcrum, on a new connection: the demo backend's name, or "".
function get(path = "/") {
  return new Promise((resolve) => {
    const request = http.get(
      { host: "127.0.0.1", port: options.listen, path, agent: false, timeout: 5000 },
      (response) => {
        let body = "";
        response.on("data", (chunk) => (body += chunk));
        response.on("end", () => resolve(body.trim()));
      });
    request.on("timeout", () => request.destroy());
    request.on("error", () => resolve(""));
  });
}

// Polls `probe` (async, truthy when done) every 200 ms for up to `ms`.
async function until(probe, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 200));
  }
}

const stateOf = (page, name) =>
  page.evaluate((n) => document.querySelector(`tr[data-backend="${n}"]`)?.dataset.state ?? "", name);

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const requests = [];
  page.on("request", (request) => requests.push(request.url()));
  const consoleErrors = [];
  page.on("console", (message) => { if (message.type() === "error") consoleErrors.push(message.text()); });
  await page.goto(options.admin + "/");

  // 1. Every backend listed, up.
  const allUp = await until(async () => {
    const states = await Promise.all(["b0", "b1", "b2"].map((n) => stateOf(page, n)));
    observations.first_states = states;
    return states.every((s) => s === "up");
  }, 15000);
  check(allUp, `every backend listed as up (saw ${observations.first_states})`);

  // 2. Traffic shows as a connection rate.
  const rate = await until(async () => {
    await Promise.all(Array.from({ length: 10 }, () => get()));
    return page.evaluate(() => Number(document.querySelector(".service-rate")?.dataset.rate || 0));
  }, 20000);
  observations.service_rate = rate;
  check(rate > 0, "a non-zero connection rate after traffic");

  // 3. A backend stopped by the test shows down after `fall` probes.
  process.kill(options.stop_pid, "SIGKILL");
  const down = await until(async () => (await stateOf(page, "b2")) === "down", 20000);
  check(down, `b2 shows down after it stopped (saw ${await stateOf(page, "b2")})`);

  // 4. Drain through the button: b1 shows drained and gets no new connection.
  await page.click('tr[data-backend="b1"] button[data-action="drain"]');
  const drained = await until(async () => (await stateOf(page, "b1")) === "drained", 10000);
  check(drained, `b1 shows drained after its drain button (saw ${await stateOf(page, "b1")})`);
  const answers = [];
  for (let i = 0; i < 6; ++i) answers.push(await get());
  observations.after_drain = answers;
  check(answers.every((a) => a === options.first_backend),
        `after the drain only ${options.first_backend} answers (got ${answers})`);
  const button = await page.textContent('tr[data-backend="b1"] button');
  check(button?.trim() === "enable", `b1's button offers enable once drained (got ${button})`);

  // 5. Charts drawn, with data points.
  const points = await page.evaluate(() =>
    [...document.querySelectorAll("section.service .chart svg")].map((s) => Number(s.dataset.points)));
  observations.chart_points = points;
  check(points.length >= 4 && points[0] > 1, `charts drawn with points (got ${points})`);
  const polylines = await page.evaluate(() => document.querySelectorAll("svg polyline").length);
  check(polylines > 0, "SVG polylines on the page");

  // 6. Readable without colour: states are words, not only colours.
  const labels = await page.evaluate(() =>
    [...document.querySelectorAll(".state")].map((e) => e.textContent.trim()));
  check(labels.includes("up") && labels.includes("down") && labels.includes("drained"),
        `state labels in text (got ${labels})`);

  await page.screenshot({ path: options.screenshot, fullPage: true });

  // 7. Phone width: nothing wider than the screen but the tables, which scroll inside.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  observations.phone_scroll_width = overflow;
  check(overflow <= 390, `no page-wide horizontal scroll at 390 px (scrollWidth ${overflow})`);
  await page.screenshot({ path: options.screenshot.replace(/\.png$/, "-phone.png"), fullPage: true });

  // 8. Colours follow the system's dark setting.
  const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await page.emulateMedia({ colorScheme: "light" });
  const light = await background();
  await page.emulateMedia({ colorScheme: "dark" });
  const dark = await background();
  observations.backgrounds = [light, dark];
  check(light !== dark, `dark mode changes the colours (${light} vs ${dark})`);

  // 9. No request left the admin endpoint.
  observations.requests = [...new Set(requests.map((u) => new URL(u).pathname))];
  const foreign = requests.filter((u) => !u.startsWith(options.admin + "/"));
  check(foreign.length === 0, `requests outside the admin endpoint: ${foreign}`);
  check(consoleErrors.length === 0, `console errors: ${consoleErrors}`);
} catch (error) {
  failures.push(String(error && error.stack || error));
} finally {
  await browser.close();
}
console.log(JSON.stringify({ failures, observations }));
process.exit(failures.length === 0 ? 0 : 1);
