// The memory floor of the web engine the app runs on (make bench): a bare
// WebKitGTK view with a static page (webview-floor.c), on the display the app
// will use, settled as long as the app is, measured before the app starts so
// the two never share pages. Run as a script: floor.mjs BINARY OUT.json (run.sh passes
// $CONCLAVE_MEMORY_FLOOR as OUT, where the bench reads it).
import { spawn } from "node:child_process";
import fs from "node:fs";
import { memoryLine, webViewMemoryMb, webViewProcesses } from "./processes.mjs";

async function measureFloor(binary, settleSecs) {
  const floor = spawn(binary, [], { stdio: "ignore" });
  try {
    const deadline = Date.now() + 30000;
    let procs;
    for (;;) {
      try {
        procs = webViewProcesses(floor.pid);
        break;
      } catch (e) {
        if (floor.exitCode !== null || Date.now() > deadline) throw new Error(`the bare web view never started its web process: ${e.message}`);
        await new Promise((r) => setTimeout(r, 200)); // polling /proc: no event says a child started
      }
    }
    await new Promise((r) => setTimeout(r, settleSecs * 1000)); // the settling time measured, as for the app
    return webViewMemoryMb(procs);
  } finally {
    floor.kill();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [binary, out] = process.argv.slice(2);
  const mem = await measureFloor(binary, Number(process.env.BENCH_SETTLE_SECS ?? 15));
  fs.writeFileSync(out, JSON.stringify(mem, null, 2) + "\n");
  console.log(`BENCH memory_floor webkitgtk_bare_view ${memoryLine(mem)}`);
}
