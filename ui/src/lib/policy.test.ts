// The policy store against a stand-in for the node's policy commands (the
// Tauri IPC that the app provides does not exist under vitest): the stand-in
// keeps a policy and answers each change with the whole of it, as the node does.
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { CommandError, PolicyView } from "./bindings";

const commands = vi.hoisted(() => ({
  policy: vi.fn(),
  allowPeer: vi.fn(),
  denyPeer: vi.fn(),
  unlistPeer: vi.fn(),
  setPrivateMode: vi.fn(),
  disconnect: vi.fn(),
  connect: vi.fn(),
  peers: vi.fn(),
}));
vi.mock("./bindings", () => ({ commands }));

import { allowPeer, allowTypedPeer, denyPeer, loadPolicy, policy, setPrivateMode, unlistPeer } from "./policy.svelte";
import { blockPeer, connections } from "./connections.svelte";

const ALICE = "12D3KooWAlice";
const BOB = "12D3KooWBob";

const ok = <T>(data: T) => Promise.resolve({ status: "ok" as const, data });
const refused = (message: string, hint: string | null = null) =>
  Promise.resolve({ status: "error" as const, error: { code: "invalid_input", message, hint } satisfies CommandError });

/** The node's policy as the stand-in keeps it. */
let node: PolicyView;
const snapshot = (): PolicyView => ({ ...node, allowed: [...node.allowed], denied: [...node.denied] });

beforeEach(() => {
  vi.resetAllMocks();
  node = { allowed: [BOB], denied: [], private_mode: false, file: "/profile/policy.json" };
  commands.policy.mockImplementation(() => ok(snapshot()));
  commands.allowPeer.mockImplementation((id: string) => {
    node.denied = node.denied.filter((p) => p !== id);
    if (!node.allowed.includes(id)) node.allowed.push(id);
    return ok(snapshot());
  });
  commands.denyPeer.mockImplementation((id: string) => {
    node.allowed = node.allowed.filter((p) => p !== id);
    if (!node.denied.includes(id)) node.denied.push(id);
    return ok(snapshot());
  });
  commands.unlistPeer.mockImplementation((id: string) => {
    node.allowed = node.allowed.filter((p) => p !== id);
    node.denied = node.denied.filter((p) => p !== id);
    return ok(snapshot());
  });
  commands.setPrivateMode.mockImplementation((on: boolean) => {
    node.private_mode = on;
    return ok(snapshot());
  });
  policy.view = null;
  policy.error = null;
  policy.busy = false;
  connections.rowError = null;
  connections.busy = new Set();
});

describe("policy store", () => {
  it("shows the node's policy, and keeps it when a later fetch fails", async () => {
    await loadPolicy();
    expect(policy.view?.allowed).toEqual([BOB]);
    expect(policy.loading).toBe(false);

    commands.policy.mockImplementation(() => refused("cannot read the policy file", "check the profile folder"));
    await loadPolicy();
    expect(policy.error).toBe("cannot read the policy file. check the profile folder");
    expect(policy.view?.allowed).toEqual([BOB]);
    expect(policy.loading).toBe(false);
  });

  it("deny then remove (undo) gives back the lists as they were", async () => {
    await loadPolicy();
    const before = structuredClone({ ...policy.view });
    await blockPeer(ALICE);
    expect(policy.view?.denied).toEqual([ALICE]);
    expect(await unlistPeer(ALICE)).toBe(true);
    expect({ ...policy.view }).toEqual(before);
  });

  it("a refused deny from a row says why there and leaves the lists unchanged", async () => {
    await loadPolicy();
    commands.denyPeer.mockImplementation(() => refused("invalid peer id: bad base58"));
    await blockPeer(ALICE);
    expect(connections.rowError).toBe("invalid peer id: bad base58");
    expect(connections.busy.has(ALICE)).toBe(false);
    expect(policy.view?.denied).toEqual([]);
    expect(policy.view?.allowed).toEqual([BOB]);
    // The row shows the failure; the policy card has nothing to say.
    expect(policy.error).toBeNull();
    await expect(denyPeer(ALICE)).rejects.toThrow("invalid peer id");
  });

  it("a refused change shows the cause and what to do, and changes nothing", async () => {
    await loadPolicy();
    commands.setPrivateMode.mockImplementation(() => refused("could not save the policy", "free some disk space and try again"));
    expect(await setPrivateMode(true)).toBe(false);
    expect(policy.error).toBe("could not save the policy. free some disk space and try again");
    expect(policy.view?.private_mode).toBe(false);
    expect(policy.busy).toBe(false);

    // The next change that works clears the error.
    commands.setPrivateMode.mockImplementation((on: boolean) => ((node.private_mode = on), ok(snapshot())));
    expect(await setPrivateMode(true)).toBe(true);
    expect(policy.error).toBeNull();
    expect(policy.view?.private_mode).toBe(true);
  });

  it("is busy while a change is under way", async () => {
    let answer!: (v: Awaited<ReturnType<typeof ok<PolicyView>>>) => void;
    commands.allowPeer.mockImplementation(() => new Promise((r) => (answer = r)));
    const change = allowPeer(ALICE);
    expect(policy.busy).toBe(true);
    answer({ status: "ok", data: { ...snapshot(), allowed: [BOB, ALICE] } });
    expect(await change).toBe(true);
    expect(policy.busy).toBe(false);
    expect(policy.view?.allowed).toEqual([BOB, ALICE]);
  });

  it("a fetch answered after a newer change does not undo it on screen", async () => {
    let answerFetch!: (v: Awaited<ReturnType<typeof ok<PolicyView>>>) => void;
    const stale = snapshot();
    commands.policy.mockImplementation(() => new Promise((r) => (answerFetch = r)));
    const fetch = loadPolicy();
    await blockPeer(ALICE);
    answerFetch({ status: "ok", data: stale });
    await fetch;
    expect(policy.view?.denied).toEqual([ALICE]);
  });

  it("an empty typed peer ID is refused without asking the node; a typed one is trimmed", async () => {
    expect(await allowTypedPeer("   ")).toBe(false);
    expect(policy.error).toBe("Enter the peer ID to allow (it starts with 12D3KooW).");
    expect(commands.allowPeer).not.toHaveBeenCalled();

    expect(await allowTypedPeer(`  ${ALICE}\n`)).toBe(true);
    expect(commands.allowPeer).toHaveBeenCalledWith(ALICE);
    expect(policy.error).toBeNull();
    expect(policy.view?.allowed).toContain(ALICE);
  });
});
