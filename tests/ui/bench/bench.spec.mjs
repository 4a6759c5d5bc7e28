// Benchmarks (make bench): launch to the first rendered Network health view,
// and the Peers view's frame time with 500 synthetic peers. Prints figures
// and writes them to screenshots/bench-results.json.
import fs from "node:fs";
import path from "node:path";
import { browser } from "@wdio/globals";
import { byTestId, reveal, screenshot, waitOnline } from "../support/app.mjs";
import { screenshotDir } from "../wdio.conf.mjs";

const LAUNCHES = 3;
const results = {};

async function firstRenderMs() {
  await browser.waitUntil(async () => (await browser.execute(() => document.body.dataset.firstRenderMs)) != null, {
    timeout: 30000,
    timeoutMsg: "the Network health view never rendered figures",
  });
  return Number(await browser.execute(() => document.body.dataset.firstRenderMs));
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
    fs.writeFileSync(path.join(screenshotDir, "bench-results.json"), JSON.stringify(results, null, 2) + "\n");
  });
});
