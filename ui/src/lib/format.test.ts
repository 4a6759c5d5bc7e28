import { describe, expect, it } from "vitest";
import { bytes, duration, ms, plural, security, shortId, uptime } from "./format";

describe("formatting", () => {
  it("shows bytes in binary units and null as a dash", () => {
    expect(bytes(0)).toBe("0 B");
    expect(bytes(1536)).toBe("1.5 KiB");
    expect(bytes(5 * 1024 * 1024 * 1024)).toBe("5.0 GiB");
    expect(bytes(null)).toBe("–");
  });

  it("shows the uptime to the minute", () => {
    expect(uptime(42)).toBe("<1m");
    expect(uptime(60)).toBe("1m");
    expect(uptime(119)).toBe("1m");
    expect(uptime(3725)).toBe("1h 2m");
    expect(uptime(null)).toBe("–");
  });

  it("keeps durations, RTTs and ids short", () => {
    expect(duration(3725)).toBe("1h 2m");
    expect(ms(0.42)).toBe("0.4 ms");
    expect(ms(null)).toBe("–");
    expect(shortId("12D3KooWQamD6UqNmSompdzEh8xfKmhJVVUsdiovS78sXg9wYvJY")).toBe("12D3KooW…9wYvJY");
    expect(plural(1, "peer")).toBe("1 peer");
    expect(plural(2, "peer")).toBe("2 peers");
  });

  it("names channel security plainly", () => {
    expect(security("tls13+X25519MLKEM768")).toBe("TLS 1.3 · PQ hybrid");
    expect(security("noise")).toBe("Noise");
  });
});
