// Dialling and row actions against stand-ins for the connect, disconnect and
// peers commands (the Tauri IPC the app provides does not exist under vitest).
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { PeerInfo } from "./bindings";
import { syntheticPeers } from "./bench";

const commands = vi.hoisted(() => ({ connect: vi.fn(), disconnect: vi.fn(), peers: vi.fn(), denyPeer: vi.fn() }));
vi.mock("./bindings", () => ({ commands }));

import { clearOutcomes, connections, connectTo, disconnectPeer } from "./connections.svelte";
import { live, setPeers } from "./state.svelte";

const ok = <T>(data: T) => Promise.resolve({ status: "ok" as const, data });
const refused = (message: string, hint: string | null) =>
  Promise.resolve({ status: "error" as const, error: { code: "invalid_input" as const, message, hint } });

const [peer] = syntheticPeers(1);

beforeEach(() => {
  vi.resetAllMocks();
  setPeers([]);
  connections.dialing = false;
  connections.busy = new Set();
  clearOutcomes();
});

describe("connections store", () => {
  it("an empty address is refused with an example, without dialling", async () => {
    expect(await connectTo("  ")).toBe(false);
    expect(connections.dialError?.message).toBe("Enter a multiaddr to connect to.");
    expect(connections.dialError?.hint).toMatch(/^It looks like \/ip4\//);
    expect(commands.connect).not.toHaveBeenCalled();
  });

  it("dials the trimmed address and fetches the peers when the new one is not listed yet", async () => {
    commands.connect.mockImplementation(() => ok(peer.peer_id));
    commands.peers.mockImplementation(() => ok<PeerInfo[]>([peer]));
    expect(await connectTo(` ${peer.addrs[0]}/p2p/${peer.peer_id} `)).toBe(true);
    expect(commands.connect).toHaveBeenCalledWith(`${peer.addrs[0]}/p2p/${peer.peer_id}`);
    expect(connections.connected).toBe(peer.peer_id);
    expect(live.peers.has(peer.peer_id)).toBe(true);
    expect(connections.dialing).toBe(false);

    // Already listed (its event came first): no second fetch.
    await connectTo(peer.addrs[0]);
    expect(commands.peers).toHaveBeenCalledTimes(1);
  });

  it("a refused dial keeps the cause and the hint apart and shows no success", async () => {
    commands.connect.mockImplementation(() => ok(peer.peer_id));
    commands.peers.mockImplementation(() => ok<PeerInfo[]>([peer]));
    await connectTo(peer.addrs[0]);
    commands.connect.mockImplementation(() => refused("invalid multiaddr: unknown protocol string: a", "It looks like /ip4/…"));
    expect(await connectTo("not/a/multiaddr")).toBe(false);
    expect(connections.dialError).toEqual({ message: "invalid multiaddr: unknown protocol string: a", hint: "It looks like /ip4/…" });
    expect(connections.connected).toBeNull();
    expect(connections.dialing).toBe(false);
  });

  it("marks a row busy while it disconnects, and says why a disconnect failed", async () => {
    let answer!: (v: Awaited<ReturnType<typeof ok<null>>>) => void;
    commands.disconnect.mockImplementation(() => new Promise((r) => (answer = r)));
    const closing = disconnectPeer(peer.peer_id);
    expect(connections.busy.has(peer.peer_id)).toBe(true);
    answer({ status: "ok", data: null });
    await closing;
    expect(connections.busy.has(peer.peer_id)).toBe(false);
    expect(connections.rowError).toBeNull();

    commands.disconnect.mockImplementation(() => refused("the node is not running", null));
    await disconnectPeer(peer.peer_id);
    expect(connections.rowError).toBe("the node is not running");
    expect(connections.busy.size).toBe(0);

    // Opening the view again starts without the old outcome lines.
    clearOutcomes();
    expect(connections.rowError).toBeNull();
  });
});
