// What a person does with MuSig2 sessions, against stand-ins for the signing
// commands (the Tauri IPC the app provides does not exist under vitest).
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { InvitationInfo, KeyInfo } from "./bindings";

const commands = vi.hoisted(() => ({
  signingInvitations: vi.fn(),
  signingSessions: vi.fn(),
  signingJoin: vi.fn(),
  signingDecline: vi.fn(),
  signingCreate: vi.fn(),
  signingExport: vi.fn(),
  signingKeys: vi.fn(),
  signingNewKey: vi.fn(),
}));
vi.mock("./bindings", () => ({ commands }));

import {
  clearSigningOutcomes,
  createSession,
  creation,
  decision,
  declineInvitation,
  exportKey,
  exportSession,
  exportsSaved,
  joinInvitation,
  signing,
} from "./signing.svelte";
import { loadSigningKeys, newSigningKey, signingKeys } from "./signingKeys.svelte";

const ok = <T>(data: T) => Promise.resolve({ status: "ok" as const, data });
const refused = (message: string, hint: string | null) =>
  Promise.resolve({ status: "error" as const, error: { code: "unavailable" as const, message, hint } });

const KEY = "02" + "a".repeat(64);
const invitation: InvitationInfo = {
  session_id: "s1",
  coordinator: "12D3KooWCoordinator",
  signers: [KEY],
  our_keys: [KEY],
  aggregate_pubkey: "b".repeat(64),
  signing: { kind: "message", message: "6869" },
  received_at_ms: 0,
  expires_at_ms: 60_000,
};

beforeEach(() => {
  vi.resetAllMocks();
  signing.invitations = [invitation];
  signing.sessions = [];
  signing.announced = invitation;
  signingKeys.list = [];
  signingKeys.error = null;
  clearSigningOutcomes();
  // The node's lists after a decision: the invitation is gone.
  commands.signingInvitations.mockImplementation(() => ok([]));
  commands.signingSessions.mockImplementation(() => ok([]));
});

describe("invitations", () => {
  it("a refused join says why, keeps the invitation and the announcement", async () => {
    commands.signingJoin.mockImplementation(() => refused("the invitation expired", "ask the coordinator for a new session"));
    await joinInvitation("s1");
    expect(decision.error).toEqual({ message: "the invitation expired", hint: "ask the coordinator for a new session" });
    expect(decision.busy).toBeNull();
    expect(signing.invitations.map((i) => i.session_id)).toEqual(["s1"]);
    expect(signing.announced?.session_id).toBe("s1");
    expect(commands.signingInvitations).not.toHaveBeenCalled();
  });

  it("a join marks the invitation busy, then takes the node's lists and ends the announcement", async () => {
    let answer!: (v: Awaited<ReturnType<typeof ok<null>>>) => void;
    commands.signingJoin.mockImplementation(() => new Promise((r) => (answer = r)));
    const joining = joinInvitation("s1");
    expect(decision.busy).toBe("s1");
    answer({ status: "ok", data: null });
    await joining;
    expect(decision.busy).toBeNull();
    expect(decision.error).toBeNull();
    expect(signing.invitations).toEqual([]);
    expect(signing.announced).toBeNull();
  });

  it("a decline tells the coordinator it was declined in the app", async () => {
    commands.signingDecline.mockImplementation(() => ok(null));
    await declineInvitation("s1");
    expect(commands.signingDecline).toHaveBeenCalledWith("s1", "declined in the app");
    expect(signing.invitations).toEqual([]);
  });
});

describe("new sessions", () => {
  const draft = { signersText: KEY, mode: "message" as const, messageText: "hi", messageIsHex: false, psbtPath: "" };

  it("a draft that fails its checks never reaches the node", async () => {
    expect(await createSession({ ...draft, signersText: "notakey" })).toBe(false);
    expect(creation.error?.message).toBe("Not a public key: notakey");
    expect(commands.signingCreate).not.toHaveBeenCalled();
  });

  it("creates the session, shows its id and fetches the sessions; a refusal clears the last success", async () => {
    commands.signingCreate.mockImplementation(() => ok("session-42"));
    expect(await createSession(draft)).toBe(true);
    expect(commands.signingCreate).toHaveBeenCalledWith([KEY], "6869", null);
    expect(creation.created).toBe("session-42");
    expect(commands.signingSessions).toHaveBeenCalled();

    commands.signingCreate.mockImplementation(() => refused("no peer signs for 02aa…", "connect to the signer's node first"));
    expect(await createSession(draft)).toBe(false);
    expect(creation.created).toBeNull();
    expect(creation.error?.hint).toBe("connect to the signer's node first");
    expect(creation.busy).toBe(false);
  });
});

describe("exports", () => {
  it("says where each export went, or why not with what to do", async () => {
    commands.signingExport.mockImplementation(() => ok("/home/me/signed.psbt"));
    await exportSession("s1", "psbt", "~/signed.psbt");
    expect(exportsSaved[exportKey("s1", "psbt")]).toEqual({ ok: true, text: "Saved to /home/me/signed.psbt" });

    commands.signingExport.mockImplementation(() => refused("permission denied", "choose a folder you can write to"));
    await exportSession("s1", "transaction", "/root/tx");
    expect(exportsSaved[exportKey("s1", "transaction")]).toEqual({
      ok: false,
      text: "permission denied (choose a folder you can write to)",
    });
    // One export's outcome does not overwrite the other's.
    expect(exportsSaved[exportKey("s1", "psbt")].ok).toBe(true);

    clearSigningOutcomes();
    expect(Object.keys(exportsSaved)).toEqual([]);
  });
});

describe("signing keys", () => {
  const key = (pubkey: string): KeyInfo => ({ pubkey });

  it("a failed new key (a locked keychain) says why and keeps the list", async () => {
    commands.signingKeys.mockImplementation(() => ok([key(KEY)]));
    await loadSigningKeys();
    commands.signingNewKey.mockImplementation(() => refused("the keychain is locked", "unlock it and try again"));
    await newSigningKey();
    expect(signingKeys.error).toEqual({ message: "the keychain is locked", hint: "unlock it and try again" });
    expect(signingKeys.list).toEqual([key(KEY)]);
    expect(signingKeys.busy).toBe(false);
  });

  it("lists a new key once, and clears the last error", async () => {
    signingKeys.list = [key(KEY)];
    signingKeys.error = { message: "earlier", hint: null };
    const other = "03" + "c".repeat(64);
    commands.signingNewKey.mockImplementation(() => ok(key(other)));
    await newSigningKey();
    commands.signingNewKey.mockImplementation(() => ok(key(other)));
    await newSigningKey();
    expect(signingKeys.list.map((k) => k.pubkey)).toEqual([KEY, other]);
    expect(signingKeys.error).toBeNull();
  });
});
