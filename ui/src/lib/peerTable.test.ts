import { describe, expect, it } from "vitest";
import { visibleRows } from "./peerTable.svelte";
import { syntheticPeers } from "./bench";

describe("peer table rows", () => {
  const peers = syntheticPeers(40);

  it("sorts by RTT both ways, unknown RTTs last", () => {
    const withUnknown = [...peers.slice(0, 5), { ...peers[5], rtt_ms: null }];
    const up = visibleRows(withUnknown, "rtt_ms", true, "");
    const down = visibleRows(withUnknown, "rtt_ms", false, "");
    const rtts = (rows: typeof up) => rows.map((p) => p.rtt_ms);
    expect(rtts(up).slice(0, 5)).toEqual([...rtts(up).slice(0, 5)].sort((a, b) => a! - b!));
    expect(rtts(up).at(-1)).toBeNull();
    expect(rtts(down).at(-1)).toBeNull();
    expect(rtts(down)[0]).toBe(Math.max(...peers.slice(0, 5).map((p) => p.rtt_ms!)));
  });

  it("filters on id, transport, agent, address and protocol", () => {
    expect(visibleRows(peers, "peer_id", true, "websocket").every((p) => p.transport === "websocket")).toBe(true);
    expect(visibleRows(peers, "peer_id", true, peers[7].peer_id.slice(-10))).toHaveLength(1);
    expect(visibleRows(peers, "peer_id", true, "/tcp/4003")).toHaveLength(1);
    expect(visibleRows(peers, "peer_id", true, "MESHSUB")).toHaveLength(40);
    expect(visibleRows(peers, "peer_id", true, "nothing like this")).toHaveLength(0);
  });

  it("sorts by protocol count and keeps ties in peer id order", () => {
    const rows = visibleRows(peers, "protocols", true, "");
    const ids = rows.map((p) => p.peer_id);
    expect(ids).toEqual([...ids].sort());
  });
});
