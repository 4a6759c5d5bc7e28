// Hash routes: #/health, #/peers, #/sessions, #/rooms, #/identity, #/settings, #/logs, and
// #/bench/peers?n=500 for the Peers frame-time benchmark.
import type { View } from "./state.svelte";

const VIEWS: View[] = ["health", "peers", "sessions", "rooms", "identity", "settings", "logs"];

export const route = $state({
  view: "health" as View,
  bench: null as { peers: number } | null,
});

function parse(): void {
  const hash = window.location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = hash.split("?");
  if (path === "bench/peers") {
    const n = Number(new URLSearchParams(query).get("n") ?? "500");
    route.bench = { peers: Number.isFinite(n) && n > 0 ? Math.min(n, 5000) : 500 };
    route.view = "peers";
    return;
  }
  route.bench = null;
  route.view = (VIEWS as string[]).includes(path) ? (path as View) : "health";
}

export function go(view: View): void {
  window.location.hash = `#/${view}`;
}

export function startRouter(): void {
  parse();
  window.addEventListener("hashchange", parse);
}
