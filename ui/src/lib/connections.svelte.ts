// What the Peers view does to connections: dial a multiaddr, and close or
// deny a peer from its row in the table. The outcome lines belong to one
// visit of the view (`clearOutcomes` when it opens); calls in flight keep
// their busy state.
import { commands } from "./bindings";
import { describe, unwrap, type Problem } from "./api";
import { live, refreshPeers } from "./state.svelte";
import { denyPeer } from "./policy.svelte";

export const connections = $state({
  /** True while a dial is under way. */
  dialing: false,
  /** Why the last dial failed. */
  dialError: null as Problem | null,
  /** The peer the last dial reached. */
  connected: null as string | null,
  /** Peers with a disconnect or deny under way (replaced whole on change). */
  busy: new Set<string>() as ReadonlySet<string>,
  /** Why the last disconnect or deny from a row failed. */
  rowError: null as string | null,
});

/** Dials `addr`; true once connected (the peer is then in the live list). */
export async function connectTo(addr: string): Promise<boolean> {
  const target = addr.trim();
  if (!target) {
    connections.dialError = {
      message: "Enter a multiaddr to connect to.",
      hint: "It looks like /ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooW…",
    };
    return false;
  }
  connections.dialing = true;
  connections.dialError = null;
  connections.connected = null;
  try {
    const peer = await unwrap(commands.connect(target));
    connections.connected = peer;
    // The peer's event usually arrives first; fetch if it has not.
    if (!live.peers.has(peer)) await refreshPeers();
    return true;
  } catch (e) {
    connections.dialError = describe(e);
    return false;
  } finally {
    connections.dialing = false;
  }
}

/** Closes every connection to a peer. */
export function disconnectPeer(peerId: string): Promise<void> {
  return onRow(peerId, () => unwrap(commands.disconnect(peerId)));
}

/** Denies a peer: its connections close and the deny list gets it. */
export function blockPeer(peerId: string): Promise<void> {
  return onRow(peerId, () => denyPeer(peerId));
}

async function onRow(peerId: string, action: () => Promise<unknown>): Promise<void> {
  connections.busy = new Set(connections.busy).add(peerId);
  connections.rowError = null;
  try {
    await action();
  } catch (e) {
    connections.rowError = describe(e).message;
  } finally {
    const next = new Set(connections.busy);
    next.delete(peerId);
    connections.busy = next;
  }
}

/** Forgets the outcome lines of an earlier visit of the view. */
export function clearOutcomes(): void {
  connections.dialError = null;
  connections.connected = null;
  connections.rowError = null;
}
