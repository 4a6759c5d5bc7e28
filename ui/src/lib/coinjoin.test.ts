import { describe, expect, it } from "vitest";
import type { TimelineEntry } from "./bindings";
import { describeExclusion, joinRequest, outstanding, runs, stepState, unavailable, type JoinDraft } from "./coinjoin";

const TXID = "ab".repeat(32);

const draft = (over: Partial<JoinDraft> = {}): JoinDraft => ({
  coinsText: `${TXID}:0`,
  denomination: "100000",
  feeRate: "2",
  maxFee: "",
  ...over,
});

const entry = (phase: TimelineEntry["phase"], run: number, holdouts: string[] = [], peers = 3): TimelineEntry => ({
  phase,
  run,
  at_ms: 0,
  peers,
  holdouts,
});

describe("the join form", () => {
  it("reads coins separated by commas, spaces or lines and passes the numbers on", () => {
    expect(joinRequest(draft({ coinsText: ` ${TXID}:0,\n${TXID}:12 `, maxFee: "5000" }))).toEqual({
      request: { inputs: [`${TXID}:0`, `${TXID}:12`], denomination: 100000, feeRate: 2, maxFee: 5000 },
    });
    expect(joinRequest(draft())).toMatchObject({ request: { maxFee: null } });
  });

  it("names the first coin that is not TXID:VOUT and refuses a coin named twice", () => {
    const bad = joinRequest(draft({ coinsText: `${TXID}:0 ${TXID}` }));
    expect(bad).toMatchObject({ problem: { message: `Not a coin: ${TXID}` } });
    expect(joinRequest(draft({ coinsText: " " }))).toMatchObject({ problem: { message: "Name at least one coin to mix." } });
    expect(joinRequest(draft({ coinsText: `${TXID}:1, ${TXID.toUpperCase()}:1` }))).toMatchObject({
      problem: { message: "A coin is named twice." },
    });
  });

  it("refuses a denomination of 0, a fee rate off the ladder's range and a fractional maximum fee", () => {
    expect(joinRequest(draft({ denomination: "0" }))).toHaveProperty("problem");
    expect(joinRequest(draft({ feeRate: "101" }))).toHaveProperty("problem");
    expect(joinRequest(draft({ feeRate: "1.5" }))).toHaveProperty("problem");
    expect(joinRequest(draft({ maxFee: "10.5" }))).toHaveProperty("problem");
  });
});

describe("the timeline", () => {
  // Runs count from 0 in each session, as the service records them.
  const timeline = [
    entry("waiting", 0),
    entry("key_exchange", 0, ["r1", "r2"], 4),
    entry("ciphertexts", 0, [], 4),
    entry("slot_reservation", 0, [], 4),
    entry("blame", 0, [], 4),
    entry("key_exchange", 1, ["r3"]),
    entry("ciphertexts", 1, [], 3),
  ];

  it("groups entries by run, leaving out waiting spells, with each run's peer count", () => {
    const r = runs(timeline);
    expect(r.map((x) => [x.run, x.peers, x.entries.length])).toEqual([
      [0, 4, 4],
      [1, 3, 2],
    ]);
    // A new session restarts at run 1: it is a run of its own.
    expect(runs([...timeline, entry("waiting", 0), entry("key_exchange", 0)]).length).toBe(3);
    // A phase recorded again with fewer holdouts is one step, with the newest holdouts.
    const again = runs([entry("key_exchange", 0, ["r1", "r2"]), entry("key_exchange", 0, ["r2"])]);
    expect(again[0].entries).toEqual([entry("key_exchange", 0, ["r2"])]);
  });

  it("marks the phase blame started from as failed, passed phases done and the current one current", () => {
    const [first, second] = runs(timeline);
    expect(stepState(first, "ciphertexts", "ciphertexts", false)).toBe("done");
    expect(stepState(first, "slot_reservation", "ciphertexts", false)).toBe("failed");
    expect(stepState(first, "dc_net", "ciphertexts", false)).toBe("todo");
    expect(stepState(second, "key_exchange", "ciphertexts", true)).toBe("done");
    expect(stepState(second, "ciphertexts", "ciphertexts", true)).toBe("current");
    expect(stepState(second, "broadcasting", "done", true)).toBe("done");
  });

  it("shows who is outstanding only while a run is in progress", () => {
    expect(outstanding({ phase: "key_exchange", timeline: [entry("key_exchange", 0, ["r9"])] })).toEqual(["r9"]);
    expect(outstanding({ phase: "waiting", timeline: [entry("waiting", 0, ["r9"])] })).toEqual([]);
    expect(outstanding({ phase: "done", timeline: [entry("done", 1, ["r9"])] })).toEqual([]);
  });
});

describe("what the tab says", () => {
  it("passes the reason through when CoinJoin is off, and nothing when it runs", () => {
    const reason = "CoinJoin has no chain source: add a [coinjoin] section … to /p/config.toml";
    expect(unavailable({ state: "off", reason })).toEqual({ title: "CoinJoin is off", detail: reason });
    expect(unavailable({ state: "running", network: "regtest" })).toBeNull();
    expect(unavailable({ state: "failed", network: "regtest", reason: "refused" })?.detail).toContain("refused");
  });

  it("names an excluded coin, the reason and the end of its exclusion", () => {
    const line = describeExclusion({ outpoint: `${TXID}:1`, reason: "sent garbage in the DC-net", until_ms: 0 });
    expect(line).toMatch(new RegExp(`^${TXID}:1: sent garbage in the DC-net \\(excluded until .+\\)$`));
  });
});
