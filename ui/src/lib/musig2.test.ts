import { describe, expect, it } from "vitest";
import type { Failure, Phase } from "./bindings";
import { describeSigning, messageText, parseSigners, secondsLeft, sessionRequest, stepState, withSigner, type SessionDraft } from "./musig2";

const KEY_A = "02" + "a".repeat(64);
const KEY_B = "03" + "B".repeat(64);

const draft = (over: Partial<SessionDraft> = {}): SessionDraft => ({
  signersText: `${KEY_A}\n${KEY_B}`,
  mode: "message",
  messageText: "Pay 0.1 BTC to Carol",
  messageIsHex: false,
  psbtPath: "",
  ...over,
});

describe("new session checks", () => {
  it("reads signer keys separated by commas, spaces or lines, and adds a key once", () => {
    expect(parseSigners(` ${KEY_A}, ${KEY_B}\n\n`)).toEqual([KEY_A, KEY_B]);
    expect(withSigner(KEY_A, KEY_B)).toBe(`${KEY_A}\n${KEY_B}`);
    expect(withSigner(`${KEY_A}, ${KEY_B}`, KEY_A)).toBe(`${KEY_A}, ${KEY_B}`);
  });

  it("refuses no signers and names the first key that is not one", () => {
    const none = sessionRequest(draft({ signersText: " , " }));
    expect(none).toEqual({
      problem: {
        message: "Name at least one signer key.",
        hint: "Signer keys are compressed secp256k1 public keys: 66 hex characters starting with 02 or 03.",
      },
    });
    // 04 is an uncompressed key's prefix; 65 hex digits is one short.
    const bad = sessionRequest(draft({ signersText: `${KEY_A}, 04${"a".repeat(64)}, 02${"a".repeat(63)}` }));
    expect("problem" in bad && bad.problem.message).toBe(`Not a public key: 04${"a".repeat(64)}`);
  });

  it("sends a text message as its UTF-8 bytes in hex", () => {
    expect(sessionRequest(draft({ messageText: "é!" }))).toEqual({
      request: { signers: [KEY_A, KEY_B], messageHex: "c3a921", psbtPath: null },
    });
    expect(sessionRequest(draft({ messageText: "" }))).toEqual({ problem: { message: "Write the message to sign.", hint: null } });
  });

  it("takes a hex message as typed, and refuses one that is not whole bytes of hex", () => {
    expect(sessionRequest(draft({ messageIsHex: true, messageText: " 00ffAB " }))).toMatchObject({ request: { messageHex: "00ffAB" } });
    for (const messageText of ["abc", "zz", ""]) {
      expect(sessionRequest(draft({ messageIsHex: true, messageText }))).toEqual({ problem: { message: "The message is not hex.", hint: null } });
    }
  });

  it("sends a PSBT path without a message", () => {
    expect(sessionRequest(draft({ mode: "psbt", psbtPath: " ~/payment.psbt " }))).toEqual({
      request: { signers: [KEY_A, KEY_B], messageHex: null, psbtPath: "~/payment.psbt" },
    });
  });
});

describe("session timeline", () => {
  type Shown = Parameters<typeof stepState>[0];
  const at = (phase: Phase) => ({ phase, at_ms: 1 });

  it("marks reached phases done, the current one current and the rest to do", () => {
    const s: Shown = { phase: "partial_signatures", timeline: [at("join"), at("nonces"), at("partial_signatures")], failure: null };
    expect(["join", "nonces", "partial_signatures", "aggregation", "done"].map((p) => stepState(s, p))).toEqual([
      "done",
      "done",
      "current",
      "todo",
      "todo",
    ]);
  });

  it("marks the phase a session failed in, and every phase of a signed one done", () => {
    const failure: Failure = { kind: "timeout", phase: "nonces", reason: "no nonce from 1 signer", culprits: [], holdouts: [KEY_B] };
    const failed: Shown = { phase: "failed", timeline: [at("join")], failure };
    expect(stepState(failed, "nonces")).toBe("failed");
    expect(stepState(failed, "aggregation")).toBe("todo");
    const signed: Shown = { phase: "done", timeline: [at("join")], failure: null };
    expect(stepState(signed, "aggregation")).toBe("done");
  });

  it("describes what is signed and how long an invitation stays open", () => {
    expect(describeSigning({ kind: "message", message: "c3a9" })).toBe("Message “é”");
    expect(describeSigning({ kind: "message", message: "00ff01" })).toBe("Message (3 bytes)");
    const summary = { txid: "ab".repeat(32), inputs: 2, input_value_sat: 20_000, outputs: [], fee_sat: 300 };
    expect(describeSigning({ kind: "psbt", summary })).toMatch(/^Transaction .* · 2 input\(s\) · fee 300 sat$/);
    expect(secondsLeft(10_400, 0)).toBe(10);
    expect(secondsLeft(0, 5_000)).toBe(0);
    expect(secondsLeft(null, 5_000)).toBe(0);
  });

  it("shows a message as text only when it is printable UTF-8", () => {
    const hex = (text: string) => Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");
    expect(messageText(hex("Pay Bob 1 BTC"))).toBe("Pay Bob 1 BTC");
    expect(messageText(hex("two\nlines"))).toBe("two\nlines");
    expect(messageText("00ff1b")).toBeNull();
    expect(messageText(hex("bell\u0007"))).toBeNull();
    expect(messageText("c3")).toBeNull();
    expect(messageText("not hex")).toBeNull();
  });
});
