// The charts' history of rate samples, and how the node's samples extend it.
import type { StatsSampled } from "./bindings";

/** Samples kept for the charts: two minutes at one per second. */
export const HISTORY = 120;

/** Seconds the charts span: the newest point and the two minutes before. */
export const SPAN_SECS = HISTORY;

/** Seconds between the node's samples (`SAMPLE_INTERVAL` in src-tauri). */
export const SAMPLE_SECS = 1;

/**
 * The charts' series, one entry per sample time. `null` is a gap: the window
 * was hidden and got no samples, so the chart draws no line there.
 */
export interface History {
  t: number[];
  bytesIn: (number | null)[];
  bytesOut: (number | null)[];
  messages: (number | null)[];
}

type Point = { t: number; bytesIn: number | null; bytesOut: number | null; messages: number | null };

/**
 * The history with `samples` appended. The app leaves out samples of a quiet
 * node (they equal the last one sent but for the clock): a longer step
 * between two samples is filled with the last values one sample before the
 * new one, so a chart keeps its flat line until the change. After
 * `gapBefore` (the window was hidden) a gap is drawn instead.
 */
export function appendSamples(h: History, samples: StatsSampled[], gapBefore: boolean): History {
  const points: Point[] = [];
  let lastT = h.t.length ? h.t[h.t.length - 1] : null;
  let last: Point | null =
    lastT === null
      ? null
      : { t: lastT, bytesIn: h.bytesIn.at(-1)!, bytesOut: h.bytesOut.at(-1)!, messages: h.messages.at(-1)! };
  for (const [i, s] of samples.entries()) {
    const r = s.rate;
    const t = (r.at_ms ?? Date.now()) / 1000;
    if (lastT !== null && t <= lastT) continue; // out of order or repeated
    if (last && t - last.t > 1.5 * SAMPLE_SECS) {
      const fill = i === 0 && gapBefore ? { bytesIn: null, bytesOut: null, messages: null } : last;
      points.push({ ...fill, t: t - SAMPLE_SECS });
    }
    last = { t, bytesIn: r.bytes_in_per_sec ?? 0, bytesOut: r.bytes_out_per_sec ?? 0, messages: r.messages_per_sec ?? 0 };
    points.push(last);
    lastT = t;
  }
  if (!points.length) return h;
  // Two minutes of time, however few samples a quiet node sent in them.
  const t = h.t.concat(points.map((p) => p.t));
  const from = Math.max(t.length - HISTORY, t.findIndex((v) => v > lastT! - SPAN_SECS));
  const keep = <T>(a: T[], add: T[]) => a.concat(add).slice(from);
  return {
    t: t.slice(from),
    bytesIn: keep(h.bytesIn, points.map((p) => p.bytesIn)),
    bytesOut: keep(h.bytesOut, points.map((p) => p.bytesOut)),
    messages: keep(h.messages, points.map((p) => p.messages)),
  };
}

