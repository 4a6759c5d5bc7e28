import { describe, expect, it } from "vitest";
import type { StatsSampled } from "./bindings";
import { appendSamples, HISTORY, SPAN_SECS, type History } from "./history";

const empty: History = { t: [], bytesIn: [], bytesOut: [], messages: [] };

function sample(atSecs: number, bytesIn: number): StatsSampled {
  return {
    stats: {} as StatsSampled["stats"],
    rate: { at_ms: atSecs * 1000, bytes_in_per_sec: bytesIn, bytes_out_per_sec: 0, messages_per_sec: 0 },
  };
}

describe("appendSamples", () => {
  it("appends samples a second apart as they are", () => {
    const h = appendSamples(empty, [sample(10, 1), sample(11, 2)], false);
    expect(h.t).toEqual([10, 11]);
    expect(h.bytesIn).toEqual([1, 2]);
  });

  it("holds a quiet node's last values until the sample that changed them", () => {
    // The app sent nothing between 10 s and 20 s: nothing changed.
    const h = appendSamples(appendSamples(empty, [sample(10, 5)], false), [sample(20, 9)], false);
    expect(h.t).toEqual([10, 19, 20]);
    expect(h.bytesIn).toEqual([5, 5, 9]);
  });

  it("draws a gap where the window was hidden", () => {
    const h = appendSamples(appendSamples(empty, [sample(10, 5)], false), [sample(40, 9), sample(50, 9)], true);
    expect(h.t).toEqual([10, 39, 40, 49, 50]);
    expect(h.bytesIn).toEqual([5, null, 9, 9, 9]);
  });

  it("ignores repeated and out-of-order samples", () => {
    const h = appendSamples(appendSamples(empty, [sample(10, 5)], false), [sample(10, 6), sample(9, 7)], false);
    expect(h.t).toEqual([10]);
    expect(h.bytesIn).toEqual([5]);
  });

  it("keeps two minutes of a quiet node's samples, not two minutes' worth of points", () => {
    // A heartbeat every 30 s: each adds a held point and itself.
    const beats = Array.from({ length: 10 }, (_, i) => sample(i * 30, 0));
    const h = appendSamples(empty, beats, false);
    expect(h.t[h.t.length - 1]).toBe(270);
    expect(h.t[0]).toBeGreaterThan(270 - SPAN_SECS);
    expect(h.t).toEqual([179, 180, 209, 210, 239, 240, 269, 270]);
  });

  it(`keeps the last ${HISTORY} points`, () => {
    const many = Array.from({ length: HISTORY + 5 }, (_, i) => sample(i, i));
    const h = appendSamples(empty, many, false);
    expect(h.t.length).toBe(HISTORY);
    expect(h.t[0]).toBe(5);
    expect(h.bytesIn.at(-1)).toBe(HISTORY + 4);
  });
});
