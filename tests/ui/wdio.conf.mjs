// WebdriverIO drives the real, built app: tauri-driver (port 4444) starts
// WebKitWebDriver, which starts the app binary with a fresh profile.
// run.sh provides the display (Xvfb), the session bus and the keyring.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), ".cache/conclave/target");
const driverBin =
  process.env.TAURI_DRIVER ?? path.join(os.homedir(), ".cache/conclave/cargo-bin/bin/tauri-driver");

// TAURI_DRIVER_PORT moves tauri-driver (and, one port up, the WebKit driver
// behind it) off 4444, so two checkouts can run their UI tests at once.
const driverPort = Number(process.env.TAURI_DRIVER_PORT ?? 4444);
export const appBin = process.env.CONCLAVE_APP ?? path.join(targetDir, "debug/conclave");
export const daemonBin = path.join(targetDir, "debug/conclaved");
export const ctlBin = path.join(targetDir, "debug/conclavectl");
export const screenshotDir = process.env.SCREENSHOT_DIR ?? path.join(here, "screenshots");

// One fresh profile for the whole run, so a test can restart the app and
// find its settings again. Loopback only, no mDNS, no automatic redials.
const workDir = process.env.CONCLAVE_UI_WORK ?? fs.mkdtempSync(path.join(os.tmpdir(), "conclave-ui-"));
process.env.CONCLAVE_UI_WORK = workDir;
export const profileDir = path.join(workDir, "app-profile");
// CONCLAVE_APP_ARGS (a JSON array) replaces the app's arguments: "[]" runs
// it on its default profile in the fresh XDG folders (tests/package).
const appArgs = process.env.CONCLAVE_APP_ARGS
  ? JSON.parse(process.env.CONCLAVE_APP_ARGS)
  : ["--data-dir", profileDir];

let driver;

function portOpen(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function waitForPort(port, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let delay = 50;
  while (Date.now() < deadline) {
    if (await portOpen(port)) return;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 500);
  }
  throw new Error(`tauri-driver did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

export const config = {
  runner: "local",
  specs: ["./specs/*.spec.mjs"],
  maxInstances: 1,
  hostname: "127.0.0.1",
  port: driverPort,
  capabilities: [
    {
      maxInstances: 1,
      // WebKitWebDriver speaks classic WebDriver only (no BiDi).
      "wdio:enforceWebDriverClassic": true,
      "tauri:options": {
        application: appBin,
        args: appArgs,
      },
    },
  ],
  logLevel: "warn",
  bail: 0,
  waitforTimeout: 20000,
  connectionRetryTimeout: 60000,
  connectionRetryCount: 5,
  framework: "mocha",
  reporters: ["spec"],
  // The benchmarks' at-rest test lasts as long as its measured windows
  // (run.sh bench raises the limit).
  mochaOpts: { ui: "bdd", timeout: Number(process.env.UI_TEST_TIMEOUT_MS ?? 120000) },

  onPrepare() {
    for (const bin of [appBin, daemonBin, ctlBin, driverBin]) {
      if (!fs.existsSync(bin)) throw new Error(`missing ${bin}: run make test (it builds everything)`);
    }
    fs.mkdirSync(screenshotDir, { recursive: true });
    fs.mkdirSync(profileDir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(
      path.join(profileDir, "config.toml"),
      [
        'listen = ["/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"]',
        "mdns = false",
        "min_connections = 0",
        "",
      ].join("\n"),
    );
    driver = spawn(driverBin, ["--port", String(driverPort), "--native-port", String(driverPort + 1)], { stdio: ["ignore", "inherit", "inherit"] });
    driver.once("exit", (code) => {
      if (code) console.error(`tauri-driver exited with ${code}`);
    });
    return waitForPort(driverPort, 20000);
  },

  onComplete() {
    driver?.kill();
    if (!process.env.KEEP_UI_WORK) fs.rmSync(workDir, { recursive: true, force: true });
  },
};
