// Plain-language hints for the Network health view: what is wrong and what
// to do next. Pure, so it is easy to read and to test.
import type { NodeStatus, StatsView } from "./bindings";

export type HintLevel = "bad" | "warn" | "info";

export interface Hint {
  id: string;
  level: HintLevel;
  title: string;
  detail: string;
  action?: { label: string; view: "settings" | "peers" | "logs" };
}

export interface HintInput {
  status: NodeStatus | null;
  stats: StatsView | null;
  bootstrapCount: number | null;
  mdns: boolean | null;
}

export function healthHints({ status, stats, bootstrapCount, mdns }: HintInput): Hint[] {
  const hints: Hint[] = [];
  if (status?.state === "failed") {
    hints.push({
      id: "failed",
      level: "bad",
      title: "The node could not start",
      detail: `${status.error ?? "unknown error"}. ${status.hint ?? ""}`.trim(),
      action: { label: "Open Settings", view: "settings" },
    });
    return hints;
  }
  if (!stats) return hints;
  if (stats.peers === 0) {
    hints.push(
      bootstrapCount === 0
        ? {
            id: "no-peers",
            level: "warn",
            title: "No peers: add a bootstrap address",
            detail: mdns
              ? "Nobody was found on the local network either. Add a bootstrap peer in Settings, connect to a multiaddr in Peers, or start the local sandbox to try things alone."
              : "Local discovery (mDNS) is off. Add a bootstrap peer in Settings, connect to a multiaddr in Peers, or start the local sandbox to try things alone.",
            action: { label: "Add bootstrap peer", view: "settings" },
          }
        : {
            id: "no-peers",
            level: "warn",
            title: "No peers: the bootstrap peers are not answering",
            detail: "Check that the bootstrap addresses in Settings are right and reachable from this machine; the Logs view shows why dials failed.",
            action: { label: "Open Logs", view: "logs" },
          },
    );
  }
  if (stats.reachability !== "public" && stats.relays.length === 0 && stats.peers > 0) {
    hints.push({
      id: "private-no-relay",
      level: stats.reachability === "private" ? "warn" : "info",
      title: stats.reachability === "private" ? "Private and no relay" : "Reachability not confirmed, and no relay",
      detail:
        stats.reachability === "private"
          ? "Peers could not dial this node back and it holds no relay reservation, so nobody can connect to it; outgoing connections still work. Connect to a peer that runs a relay server."
          : "No peer has confirmed that this node can be dialled from outside, and it holds no relay reservation. Outgoing connections work; connect to a relay to be sure others can reach you.",
    });
  }
  if (stats.listen_addrs.length === 0) {
    hints.push({
      id: "no-listen",
      level: "bad",
      title: "Not listening on any address",
      detail: "Other peers cannot connect to this node. Add a listen address in Settings.",
      action: { label: "Open Settings", view: "settings" },
    });
  }
  if (stats.peers > 0 && stats.routing_table_size === 0) {
    hints.push({
      id: "empty-dht",
      level: "info",
      title: "The DHT routing table is empty",
      detail: "Connected peers do not serve the DHT yet, so resource discovery will not find anything beyond them.",
    });
  }
  return hints;
}
