// The app's processes as Linux sees them (/proc): the app process started
// from the app binary, and the WebKit processes it spawns (the web process
// runs the UI, the network process loads its resources). CPU time comes from
// /proc/PID/stat, memory from /proc/PID/smaps_rollup (PSS shares a page
// among the processes that map it, so the figures add up).
import { execFileSync } from "node:child_process";
import fs from "node:fs";

const CLOCK_TICKS = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;

function readStat(pid) {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name is in parentheses and may hold spaces.
    const close = raw.lastIndexOf(")");
    const comm = raw.slice(raw.indexOf("(") + 1, close);
    const f = raw.slice(close + 2).split(" ");
    return { pid, comm, ppid: Number(f[1]), cpuSecs: (Number(f[11]) + Number(f[12])) / CLOCK_TICKS };
  } catch {
    return null; // the process ended
  }
}

function allProcesses() {
  return fs
    .readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map((d) => readStat(Number(d)))
    .filter(Boolean);
}

function cmdline(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return [];
  }
}

function exe(pid) {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return null;
  }
}

/**
 * The app process running `appBin` with `marker` among its arguments (the
 * profile folder), and its WebKit descendants, by role.
 */
export function appProcesses(appBin, marker) {
  const binary = fs.realpathSync(appBin);
  const app = allProcesses().find((p) => exe(p.pid) === binary && cmdline(p.pid).includes(marker));
  if (!app) throw new Error(`no process runs ${appBin} with ${marker}`);
  return webViewProcesses(app.pid);
}

/**
 * A process that shows a WebKitGTK web view and its WebKit descendants, by
 * role: the web process runs the page, the others (the network process)
 * serve it. Throws while the web process has not started.
 */
export function webViewProcesses(pid) {
  const procs = allProcesses();
  const descendants = [];
  const frontier = [pid];
  while (frontier.length) {
    const parent = frontier.pop();
    for (const p of procs.filter((q) => q.ppid === parent)) {
      descendants.push(p);
      frontier.push(p.pid);
    }
  }
  // Command names are cut at 15 characters: WebKitWebProces, WebKitNetworkP.
  const web = descendants.find((p) => p.comm.startsWith("WebKitWebProc"));
  if (!web) throw new Error(`process ${pid} has no WebKitWebProcess child`);
  const others = descendants.filter((p) => p !== web && !p.comm.startsWith("bwrap"));
  return { app: pid, web: web.pid, others: others.map((p) => p.pid) };
}

/** CPU seconds each process has used since it started. */
export function cpuSeconds(pids) {
  return pids.map((pid) => readStat(pid)?.cpuSecs ?? 0);
}

/**
 * Share of one core each process used over `seconds` (0.01 = 1 %), taken as
 * the growth of its CPU time against the wall clock.
 */
export async function cpuShare(pids, seconds) {
  const before = cpuSeconds(pids);
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const after = cpuSeconds(pids);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  return pids.map((_, i) => (after[i] - before[i]) / wall);
}

/**
 * Resident (RSS) and proportional (PSS) memory of a process, in MB, and the
 * part of PSS that is the process's own data (anonymous pages: heaps, stacks,
 * JIT code) rather than pages of files it maps (executables, libraries).
 */
export function memoryMb(pid) {
  const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(rollup)?.[1] ?? NaN);
  return { rss: kb("Rss") / 1024, pss: kb("Pss") / 1024, pssAnon: kb("Pss_Anon") / 1024 };
}

/** Memory of each of a web view's processes (see webViewProcesses) and their total. */
export function webViewMemoryMb(procs) {
  const each = Object.fromEntries(
    [["app", procs.app], ["web", procs.web], ...procs.others.map((pid, i) => [`webkit${i}`, pid])].map(([k, pid]) => [k, memoryMb(pid)]),
  );
  const total = { rss: 0, pss: 0, pssAnon: 0 };
  for (const m of Object.values(each)) for (const k of Object.keys(total)) total[k] += m[k];
  return { ...each, total };
}

/** One memory figure as the bench prints it. */
export const mb = (m) => `rss=${m.rss.toFixed(0)} pss=${m.pss.toFixed(0)} pss_anon=${m.pssAnon.toFixed(0)}`;

/** A web view's memory (webViewMemoryMb) as the bench prints it. */
export const memoryLine = (mem) => `app ${mb(mem.app)} web ${mb(mem.web)} total(all processes) ${mb(mem.total)}`;
