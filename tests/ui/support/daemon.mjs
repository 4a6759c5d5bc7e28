// A conclaved started by the tests: loopback QUIC only, no mDNS, no redials.
import { spawn, execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { promisify } from "node:util";
import { daemonBin, ctlBin } from "../wdio.conf.mjs";

const run = promisify(execFile);

/**
 * Starts a conclaved; `args` are more flags (its CoinJoin chain source,
 * say), `config` the text of its profile's config.toml (its [[shell]]
 * tools, say).
 */
export async function startDaemon(args = [], { config } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "conclaved-"));
  if (config !== undefined) fs.writeFileSync(path.join(dir, "config.toml"), config);
  const child = spawn(
    daemonBin,
    ["--data-dir", dir, "--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--no-mdns", ...args],
    { env: { ...process.env, P2P_MIN_CONNECTIONS: "0", P2P_MDNS: "0" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const stderr = [];
  child.stderr.on("data", (d) => {
    stderr.push(d.toString());
    if (stderr.length > 200) stderr.shift();
  });
  const ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`conclaved not ready in 30 s:\n${stderr.join("")}`)), 30000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`conclaved exited with ${code}:\n${stderr.join("")}`));
    });
    readline.createInterface({ input: child.stdout }).on("line", (line) => {
      try {
        const msg = JSON.parse(line);
        if (msg.event === "ready") {
          clearTimeout(timer);
          resolve(msg);
        }
      } catch {
        // not the ready line
      }
    });
  });
  const addr = ready.listen_addrs.find((a) => a.startsWith("/ip4/127.0.0.1/"));
  if (!addr) throw new Error(`conclaved has no loopback address: ${JSON.stringify(ready.listen_addrs)}`);
  return {
    peerId: ready.peer_id,
    addr,
    dir,
    /** Runs `conclavectl --data-dir DIR ARGS --json` and parses its answer. */
    async ctl(args) {
      const { stdout } = await run(ctlBin, ["--data-dir", dir, ...args, "--json"], { timeout: 120000 });
      return JSON.parse(stdout);
    },
    /** The daemon's own view of its peers. */
    async peers() {
      const { stdout } = await run(ctlBin, ["--data-dir", dir, "peers", "--json"]);
      return JSON.parse(stdout);
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
