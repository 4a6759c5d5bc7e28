// Sort and filter state of the Peers table (shared so the benchmark can
// drive it like a person would).
import type { PeerInfo } from "./bindings";

export type SortKey = "peer_id" | "transport" | "direction" | "path" | "rtt_ms" | "agent_version" | "score" | "protocols" | "security";

export const table = $state({
  sortKey: "rtt_ms" as SortKey,
  ascending: true,
  filter: "",
});

export function sortBy(key: SortKey): void {
  if (table.sortKey === key) {
    table.ascending = !table.ascending;
  } else {
    table.sortKey = key;
    table.ascending = true;
  }
}

function value(p: PeerInfo, key: SortKey): string | number | null {
  switch (key) {
    case "protocols":
      return p.protocols.length;
    case "rtt_ms":
      return p.rtt_ms;
    case "score":
      return p.score;
    default:
      return p[key] ?? null;
  }
}

/** Filtered and sorted rows; missing values sort last either way. */
export function visibleRows(peers: Iterable<PeerInfo>, sortKey: SortKey, ascending: boolean, filter: string): PeerInfo[] {
  const needle = filter.trim().toLowerCase();
  const rows: PeerInfo[] = [];
  for (const p of peers) {
    if (
      !needle ||
      p.peer_id.toLowerCase().includes(needle) ||
      p.transport.includes(needle) ||
      p.direction.includes(needle) ||
      p.path.includes(needle) ||
      (p.agent_version ?? "").toLowerCase().includes(needle) ||
      p.addrs.some((a) => a.toLowerCase().includes(needle)) ||
      p.protocols.some((a) => a.toLowerCase().includes(needle))
    ) {
      rows.push(p);
    }
  }
  const dir = ascending ? 1 : -1;
  rows.sort((a, b) => {
    const va = value(a, sortKey);
    const vb = value(b, sortKey);
    if (va === vb) return a.peer_id < b.peer_id ? -1 : 1;
    if (va === null) return 1;
    if (vb === null) return -1;
    return (va < vb ? -1 : 1) * dir;
  });
  return rows;
}
