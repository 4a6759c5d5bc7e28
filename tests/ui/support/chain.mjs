// The kernel-backed regtest node of tests/chain, through its command line.
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../chain/regtest");

async function regtest(args) {
  const { stdout } = await run(cli, args, { timeout: 120000 });
  return JSON.parse(stdout);
}

/** Starts a regtest node in a fresh folder; stop() ends it and removes the folder. */
export async function startChain() {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "regtest-")), "chain");
  const { rpc_url: rpcUrl, cookie_file: cookieFile } = await regtest(["start", dir]);
  return {
    rpcUrl,
    cookieFile,
    /** Pays `sats` to `address` in a mined block; the coin as TXID:VOUT. */
    async fund(address, sats) {
      const { txid, vout } = await regtest(["fund", dir, address, String(sats)]);
      return `${txid}:${vout}`;
    },
    /** {confirmations, hex} of a transaction. */
    tx(txid) {
      return regtest(["tx", dir, txid]);
    },
    async stop() {
      await regtest(["stop", dir]).catch(() => {});
      fs.rmSync(path.dirname(dir), { recursive: true, force: true });
    },
  };
}
