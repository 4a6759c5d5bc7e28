// Formatting of figures for people. Floats from the backend are typed
// `number | null` (serde writes NaN as null); null shows as a dash.

export function bytes(n: number | null): string {
  if (n === null || !Number.isFinite(n) || n < 0) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const digits = v >= 100 || (i === 0 && (v === 0 || v >= 10)) ? 0 : 1;
  return `${v.toFixed(digits)} ${units[i]}`;
}

export function rate(n: number | null): string {
  return `${bytes(n)}/s`;
}

export function duration(secs: number | null): string {
  if (secs === null || !Number.isFinite(secs)) return "–";
  const s = Math.floor(secs);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/**
 * How long the node has run, to the minute: a quiet node's figures come
 * every 30 s, so seconds would lag behind.
 */
export function uptime(secs: number | null): string {
  if (secs === null || !Number.isFinite(secs)) return "–";
  if (secs < 60) return "<1m";
  return duration(Math.floor(secs / 60) * 60).replace(/ 0s$/, "");
}

export function ms(v: number | null | undefined): string {
  if (v === null || v === undefined) return "–";
  return v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`;
}

/** 12D3KooW…Xy9Z: enough to tell peers apart in a list. */
export function shortId(id: string): string {
  if (id.length <= 16) return id;
  return `${id.slice(0, 8)}…${id.slice(-6)}`;
}

export function time(atMs: number | null): string {
  if (atMs === null) return "–";
  const d = new Date(atMs);
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The node's channel-security name, for people. */
export function security(name: string): string {
  const [base, group] = name.split("+");
  const label = base === "tls13" ? "TLS 1.3" : base === "noise" ? "Noise" : base;
  if (!group) return label;
  return group.includes("MLKEM") ? `${label} · PQ hybrid` : `${label} · ${group}`;
}
