// The Peers view frame-time benchmark: a synthetic feed of N peers whose
// RTTs change every frame while the table scrolls and re-sorts, as a busy
// node's would. Reached through #/bench/peers?n=500; the result lands in
// document.body.dataset.benchResult for the benchmark script.
import { flushSync, tick } from "svelte";
import type { PeerInfo, TransportKind } from "./bindings";
import { app, live, setPeers } from "./state.svelte";
import { table } from "./peerTable.svelte";

const FRAMES = 240;
const UPDATES_PER_FRAME = 25;

export interface BenchResult {
  peers: number;
  frames: number;
  frame_interval_mean_ms: number;
  frame_interval_p95_ms: number;
  update_mean_ms: number;
  update_p95_ms: number;
  update_max_ms: number;
}

function fakeId(i: number): string {
  const alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
  let s = "12D3KooW";
  let x = (i + 1) * 2654435761;
  for (let k = 0; k < 44; k++) {
    x = (x * 1103515245 + 12345) >>> 0;
    s += alphabet[x % alphabet.length];
  }
  return s;
}

export function syntheticPeers(n: number): PeerInfo[] {
  const transports: TransportKind[] = ["quic", "quic", "quic", "tcp", "websocket"];
  return Array.from({ length: n }, (_, i) => {
    const transport = transports[i % transports.length];
    return {
      peer_id: fakeId(i),
      addrs: [`/ip4/127.0.0.1/${transport === "quic" ? "udp" : "tcp"}/${4000 + i}${transport === "quic" ? "/quic-v1" : ""}`],
      transport,
      direction: i % 3 === 0 ? "inbound" : "outbound",
      path: i % 11 === 0 ? "relayed" : "direct",
      other_connections: 0,
      rtt_ms: 1 + ((i * 37) % 180),
      agent_version: `conclave/0.1.${i % 4}`,
      protocols: ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", "/meshsub/1.1.0", "/conclave/kad/1.0.0"],
      security: transport === "quic" ? "tls13+X25519MLKEM768" : "noise",
      pq_identity: i % 9 !== 0,
      score: (i % 7) - 1,
      messages: { accepted: 0, rejected: 0, ignored: 0 },
      connections: [],
    };
  });
}

const nextFrame = () => new Promise<number>((r) => requestAnimationFrame(r));

function stats(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const p95 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))];
  return { mean, p95, max: sorted[sorted.length - 1] };
}

export async function runPeersBench(n: number): Promise<BenchResult> {
  app.synthetic = true;
  delete document.body.dataset.benchResult;
  let peers = syntheticPeers(n);
  setPeers(peers);
  await tick();
  await nextFrame();
  await nextFrame();
  const scroller = document.querySelector<HTMLElement>("[data-testid=peer-table-scroll]");
  const intervals: number[] = [];
  const work: number[] = [];
  let last = performance.now();
  for (let f = 0; f < FRAMES; f++) {
    const start = await nextFrame();
    document.body.dataset.benchFrame = String(f);
    intervals.push(start - last);
    last = start;
    const t0 = performance.now();
    peers = peers.slice();
    for (let k = 0; k < UPDATES_PER_FRAME; k++) {
      const i = (f * UPDATES_PER_FRAME + k * 17) % n;
      peers[i] = { ...peers[i], rtt_ms: 1 + ((f * 13 + i * 7) % 200) };
    }
    setPeers(peers);
    if (f % 60 === 30) table.ascending = !table.ascending;
    if (scroller) scroller.scrollTop = (f * 46) % Math.max(1, scroller.scrollHeight - scroller.clientHeight);
    flushSync();
    void document.body.offsetHeight; // include style and layout in the figure
    work.push(performance.now() - t0);
  }
  const iv = stats(intervals.slice(1));
  const wk = stats(work);
  const result: BenchResult = {
    peers: live.peers.size,
    frames: FRAMES,
    frame_interval_mean_ms: round(iv.mean),
    frame_interval_p95_ms: round(iv.p95),
    update_mean_ms: round(wk.mean),
    update_p95_ms: round(wk.p95),
    update_max_ms: round(wk.max),
  };
  document.body.dataset.benchResult = JSON.stringify(result);
  return result;
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}
