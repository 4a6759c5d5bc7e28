// Benchmarks (make bench): launch to the first rendered Network health view,
// the Peers view's frame time with 500 synthetic peers, and what the app
// costs at rest (CPU of its processes with the window visible and hidden,
// their memory). Prints figures and writes them to
// screenshots/bench-results.json. CONCLAVE_APP=path measures another build
// of the app (a release build, say).
import fs from "node:fs";
import path from "node:path";
import { browser } from "@wdio/globals";
import { byTestId, reveal, screenshot, waitOnline } from "../support/app.mjs";
import { appBin, profileDir, screenshotDir } from "../wdio.conf.mjs";
import { appProcesses, cpuSeconds, cpuShare, mb, memoryLine, webViewMemoryMb } from "./processes.mjs";

const LAUNCHES = 3;
// At rest: the app settles for SETTLE seconds after its first figures, then
// each state is measured over WINDOW seconds.
const SETTLE_SECS = Number(process.env.BENCH_SETTLE_SECS ?? 15);
const WINDOW_SECS = Number(process.env.BENCH_WINDOW_SECS ?? 30);
const results = {};

async function firstRenderMs() {
  await browser.waitUntil(async () => (await browser.execute(() => document.body.dataset.firstRenderMs)) != null, {
    timeout: 30000,
    timeoutMsg: "the Network health view never rendered figures",
  });
  return Number(await browser.execute(() => document.body.dataset.firstRenderMs));
}

const pct = (share) => `${(share * 100).toFixed(2)}%`;
const sum = (values) => values.reduce((a, b) => a + b, 0);

async function restingCpu(label, procs) {
  const [app, web, ...others] = await cpuShare([procs.app, procs.web, ...procs.others], WINDOW_SECS);
  const figures = { app, web, others: sum(others), total: app + web + sum(others) };
  results[`rest_${label}_cpu_share`] = figures;
  console.log(
    `BENCH rest_${label} window_s=${WINDOW_SECS} cpu_app=${pct(app)} cpu_web=${pct(web)} cpu_other_webkit=${pct(figures.others)} cpu_total=${pct(figures.total)}`,
  );
  return figures;
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

describe("benchmarks", () => {
  it("launch to the first rendered Network health view", async () => {
    const samples = [];
    for (let i = 0; i < LAUNCHES; i++) {
      if (i > 0) await browser.reloadSession();
      await byTestId("health-view").waitForDisplayed({ timeout: 30000 });
      samples.push(await firstRenderMs());
    }
    results.launch_to_first_health_render_ms = { samples, median: median(samples) };
    console.log(`BENCH launch_to_first_health_render_ms median=${median(samples).toFixed(0)} samples=${samples.map((s) => s.toFixed(0)).join(",")}`);
    await screenshot("bench-health");
  });

  it("Peers view frame time with 500 peers", async () => {
    await waitOnline();
    await browser.execute(() => {
      window.location.hash = "#/bench/peers?n=500";
    });
    await browser.waitUntil(async () => (await browser.execute(() => document.body.dataset.benchResult)) != null, {
      timeout: 120000,
      timeoutMsg: "the Peers benchmark did not finish",
    });
    const r = JSON.parse(await browser.execute(() => document.body.dataset.benchResult));
    results.peers_view = r;
    console.log(
      `BENCH peers_view peers=${r.peers} frames=${r.frames} frame_interval_mean_ms=${r.frame_interval_mean_ms} frame_interval_p95_ms=${r.frame_interval_p95_ms} update_mean_ms=${r.update_mean_ms} update_p95_ms=${r.update_p95_ms} update_max_ms=${r.update_max_ms}`,
    );
    if (r.peers !== 500) throw new Error(`expected 500 peers, had ${r.peers}`);
    await screenshot("bench-peers-500");
    await reveal(byTestId("topology"));
    await screenshot("bench-topology-500");
  });

  it("at rest: CPU visible and hidden, memory", async () => {
    // A fresh app on Network health, no peers.
    await browser.reloadSession();
    await byTestId("health-view").waitForDisplayed({ timeout: 30000 });
    await firstRenderMs();
    await waitOnline();
    const procs = appProcesses(appBin, profileDir);
    await new Promise((r) => setTimeout(r, SETTLE_SECS * 1000));
    const [appLaunch, webLaunch] = cpuSeconds([procs.app, procs.web]);
    results.launch_cpu_secs = { app: appLaunch, web: webLaunch, settle_secs: SETTLE_SECS };
    console.log(`BENCH launch_cpu until_settled_s=${SETTLE_SECS} app_s=${appLaunch.toFixed(2)} web_s=${webLaunch.toFixed(2)}`);

    await restingCpu("visible", procs);

    const mem = webViewMemoryMb(procs);
    results.memory_mb = mem;
    console.log(`BENCH memory_mb app=${path.basename(appBin)} ${memoryLine(mem)}`);
    // The engine's floor, measured by run.sh before the app started (floor.mjs).
    const floorFile = process.env.CONCLAVE_MEMORY_FLOOR;
    if (floorFile && fs.existsSync(floorFile)) {
      const floor = JSON.parse(fs.readFileSync(floorFile, "utf8")).total;
      const above = Object.fromEntries(Object.keys(floor).map((k) => [k, mem.total[k] - floor[k]]));
      results.memory_floor_mb = floor;
      results.memory_above_floor_mb = above;
      console.log(`BENCH memory_above_floor ${mb(above)} (the app's processes beyond a bare web view's)`);
    }

    // Hidden to the tray the way its menu does it; a desktop without a tray
    // keeps the window, and there is nothing to measure.
    const hidden = await browser.execute(() => window.__TAURI_INTERNALS__.invoke("hide_window"));
    if (!hidden) {
      console.log("BENCH rest_hidden skipped: no tray to hide the window to");
      return;
    }
    await new Promise((r) => setTimeout(r, 5000));
    await restingCpu("hidden", procs);
  });

  after(() => {
    fs.writeFileSync(path.join(screenshotDir, "bench-results.json"), JSON.stringify(results, null, 2) + "\n");
  });
});
