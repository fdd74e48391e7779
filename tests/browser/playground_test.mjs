// playground_test.mjs — the web playground in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core). Starts `smdlm serve` on a free loopback port with models/default,
// loads GET /, submits a prompt with soft-masking settings, waits for the final text and checks
// the DOM: one cell per canvas position, the step slider's range = steps, masked cells at the
// first step shaded by λ and none at the last, the final text equal to a non-streamed request
// with the same seed, labelled controls, no horizontal scrolling on a phone-sized screen. Saves a
// screenshot (PLAYGROUND_SCREENSHOT, default $BUILD/playground.png; docs/playground.png is one).
// Prints cmocka-style [ OK ] / [ FAILED ] lines for tests/run_tests.sh. Environment: SMDLM (the
// program, default build/smdlm), CHROMIUM (default /usr/bin/chromium).
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const smdlm = process.env.SMDLM || "build/smdlm";
const screenshot = process.env.PLAYGROUND_SCREENSHOT || `${process.env.BUILD || "build"}/playground.png`;
const STEPS = 16, MAX_TOKENS = 40, SEED = 7;
const PROMPT = "In the beginning God created";
const SOFTMASK = { enabled: true, scale: 0.9, centre: -5, steepness: 2 };

let failed = 0;
function check(name, ok, detail) {
  if (ok) console.log(`[       OK ] ${name}`);
  else {
    console.log(`  ${name}: ${detail}`);
    console.log(`[  FAILED  ] ${name}`);
    failed++;
  }
}

/* `smdlm serve --port 0` and the port it prints when it listens. */
function startServer() {
  const proc = spawn(smdlm, ["serve", "-m", "models/default", "--port", "0", "-t", "2"],
                     { stdio: ["ignore", "inherit", "pipe"] });
  return new Promise((resolve, reject) => {
    let err = "";
    const timer = setTimeout(() => reject(new Error(`no port after 30 s: ${err}`)), 30000);
    proc.stderr.on("data", (d) => {
      err += d;
      const m = /http:\/\/127\.0\.0\.1:(\d+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, base: `http://127.0.0.1:${m[1]}`, log: () => err });
      }
    });
    proc.on("exit", (code) => reject(new Error(`smdlm serve exited with ${code}: ${err}`)));
    process.on("exit", () => proc.kill()); // never left behind, whatever ends the test
  });
}

function stopServer(server) {
  return new Promise((resolve) => {
    if (server.proc.exitCode !== null) return resolve(server.proc.exitCode);
    server.proc.on("exit", (code) => resolve(code));
    server.proc.kill("SIGTERM");
  });
}

async function main() {
  const server = await startServer();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    // Chromium refuses its sandbox as root (CI runs the tests as root)
    args: process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : [],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const consoleErrors = [];
    page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
    page.on("pageerror", (e) => consoleErrors.push(String(e)));
    // the bytes built into the binary are web/playground.html's, under a strict policy
    const raw = await fetch(`${server.base}/`);
    const served = Buffer.from(await raw.arrayBuffer());
    check("page_embedded", served.equals(readFileSync("web/playground.html")) &&
          /default-src 'none'/.test(raw.headers.get("content-security-policy")),
          `${served.length} bytes served, CSP ${raw.headers.get("content-security-policy")}`);
    const response = await page.goto(`${server.base}/`);
    check("page_served", response.status() === 200 &&
          /text\/html/.test(response.headers()["content-type"]), `status ${response.status()}`);
    await page.waitForFunction(() => document.getElementById("model").textContent !== "model: …",
                               null, { polling: 250 });
    check("model_named", (await page.textContent("#model")) === "model: default",
          await page.textContent("#model"));

    await page.fill("#prompt", PROMPT);
    await page.fill("#steps", String(STEPS));
    await page.fill("#max_tokens", String(MAX_TOKENS));
    await page.fill("#seed", String(SEED));
    await page.selectOption("#sm_mode", "on");
    await page.fill("#sm_scale", String(SOFTMASK.scale));
    await page.fill("#sm_centre", String(SOFTMASK.centre));
    await page.fill("#sm_steepness", String(SOFTMASK.steepness));
    await page.click("#run");
    await page.waitForFunction(() => ["done", "error", "stopped"].includes(document.body.dataset.state),
                               null, { timeout: 120000, polling: 250 });
    const state = await page.evaluate(() => document.body.dataset.state);
    check("stream_finished", state === "done", `state ${state}: ${await page.textContent("#error")}`);

    // the same request without streaming: its text and token counts
    const plain = await (await fetch(`${server.base}/v1/completions`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ prompt: PROMPT, steps: STEPS, max_tokens: MAX_TOKENS, seed: SEED,
                             softmask: SOFTMASK }),
    })).json();
    const want = plain.choices[0].text;
    const got = await page.textContent("#final pre.final-text");
    check("final_text", got && got.length > 0 && got === want,
          `page ${JSON.stringify(got)}, non-streamed ${JSON.stringify(want)}`);

    const cells = await page.locator("#canvas .cell").count();
    const positions = plain.usage.prompt_tokens + plain.usage.completion_tokens;
    check("canvas_cells", cells === positions, `${cells} cells, ${positions} positions`);
    const slider = await page.evaluate(() => {
      const s = document.getElementById("step");
      return { min: s.min, max: s.max, value: s.value, disabled: s.disabled };
    });
    check("slider_range", slider.min === "1" && slider.max === String(STEPS) &&
          slider.value === String(STEPS) && !slider.disabled, JSON.stringify(slider));
    check("last_step_revealed", (await page.locator("#canvas .cell.masked").count()) === 0,
          "masked cells at the last step");

    // replay: the first step still has masked positions, shaded by their λ
    await page.locator("#step").fill("1");
    const first = await page.evaluate(() => {
      const masked = [...document.querySelectorAll("#canvas .cell.masked")];
      return { n: masked.length, fixed: document.querySelectorAll("#canvas .cell.fixed").length,
               shades: masked.map((c) => [Number(c.dataset.lambda),
                                          Number(c.style.getPropertyValue("--lambda-alpha"))]),
               out: document.getElementById("step-out").textContent };
    });
    const shaded = first.shades.every(([l, a]) => Math.abs(a - (0.04 + 0.86 * Math.min(l, 1))) < 1e-3);
    const varied = new Set(first.shades.map(([, a]) => a)).size > 1;
    check("replay_first_step", first.n > 0 && first.fixed === plain.usage.prompt_tokens &&
          first.out.startsWith(`1 / ${STEPS}`), JSON.stringify({ ...first, shades: first.shades.length }));
    check("masked_shaded_by_lambda", first.n > 0 && shaded && varied,
          JSON.stringify(first.shades.slice(0, 5)));
    await page.locator("#step").fill(String(STEPS));
    check("replay_last_step", (await page.locator("#canvas .cell.masked").count()) === 0,
          "masked cells after moving back to the last step");

    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll("input, select, textarea")]
        .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label"))
        .map((el) => el.id || el.name));
    check("controls_labelled", unlabelled.length === 0, unlabelled.join(", "));
    check("no_console_errors", consoleErrors.length === 0, consoleErrors.join(" | "));

    // the screenshot shows a step in the middle: masked cells shaded by λ beside the final text
    await page.locator("#step").fill(String(STEPS / 2));
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`  screenshot: ${screenshot}`);

    // a server error reaches the page as a message: Dream's alg on an MDLM model
    await page.selectOption("#method", "alg:entropy");
    await page.click("#run");
    await page.waitForFunction(() => document.body.dataset.state === "error", null,
                               { timeout: 30000, polling: 250 });
    const error = await page.textContent("#error");
    check("error_shown", /HTTP 400/.test(error) && /'alg' applies to Dream/.test(error), error);

    await page.setViewportSize({ width: 360, height: 740 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check("narrow_screen", overflow <= 0, `${overflow} px wider than a 360 px screen`);
  } finally {
    await browser.close();
    const code = await stopServer(server);
    check("server_stopped", code === 0, `exit ${code}: ${server.log()}`);
  }
}

main().then(() => process.exit(failed ? 1 : 0), (e) => {
  console.log(`  ${e.stack || e}`);
  console.log("[  FAILED  ] playground_test");
  process.exit(1);
});
