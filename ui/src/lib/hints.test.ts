import { describe, expect, it } from "vitest";
import { healthHints } from "./hints";
import type { NodeStatus, StatsView } from "./bindings";

const running: NodeStatus = { state: "running", peer_id: "12D3KooWx", error: null, hint: null };

function stats(over: Partial<StatsView> = {}): StatsView {
  return {
    peers: 0,
    connections: 0,
    connections_by_transport: [],
    connections_by_path: [],
    topics: [],
    routing_table_size: 0,
    bytes_in: 0,
    bytes_out: 0,
    messages: 0,
    listen_addrs: ["/ip4/127.0.0.1/udp/1/quic-v1"],
    external_addrs: [],
    relays: [],
    relay_addrs: [],
    reachability: "unknown",
    autonat_confirmed: 0,
    autonat_failed: 0,
    hole_punch_attempts: 0,
    hole_punch_successes: 0,
    uptime_secs: 1,
    ...over,
  };
}

const ids = (h: ReturnType<typeof healthHints>) => h.map((x) => x.id);

describe("health hints", () => {
  it("asks for a bootstrap address when alone without one", () => {
    const hints = healthHints({ status: running, stats: stats(), bootstrapCount: 0, mdns: false });
    expect(hints[0].title).toBe("No peers: add a bootstrap address");
    expect(hints[0].action?.view).toBe("settings");
  });

  it("points at the logs when bootstrap peers do not answer", () => {
    const hints = healthHints({ status: running, stats: stats(), bootstrapCount: 2, mdns: false });
    expect(hints[0].action?.view).toBe("logs");
  });

  it("says private and no relay only for a node that has peers but no way in", () => {
    const lonely = { status: running, bootstrapCount: 1, mdns: false };
    expect(ids(healthHints({ ...lonely, stats: stats({ peers: 3, routing_table_size: 3, reachability: "private" }) }))).toEqual([
      "private-no-relay",
    ]);
    const relayed = stats({ peers: 3, routing_table_size: 3, reachability: "private", relays: ["12D3KooWr"] });
    expect(ids(healthHints({ ...lonely, stats: relayed }))).toEqual([]);
    const open = stats({ peers: 3, routing_table_size: 3, reachability: "public" });
    expect(ids(healthHints({ ...lonely, stats: open }))).toEqual([]);
  });

  it("reports a failed node first and alone", () => {
    const failed: NodeStatus = { ...running, state: "failed", error: "cannot listen", hint: "fix it" };
    const hints = healthHints({ status: failed, stats: null, bootstrapCount: 0, mdns: false });
    expect(ids(hints)).toEqual(["failed"]);
    expect(hints[0].detail).toContain("cannot listen");
  });
});
