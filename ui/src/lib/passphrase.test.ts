import { describe, expect, it } from "vitest";
import { estimateBits, strengthHint } from "./passphrase";

describe("passphrase strength hint", () => {
  it("asks for the minimum length first", () => {
    expect(strengthHint("short", 8)).toEqual({ strength: "too-short", text: "Use at least 8 characters (5 so far)." });
    expect(strengthHint("", 8).strength).toBe("too-short");
  });

  it("rates longer and more varied passphrases higher", () => {
    expect(strengthHint("aaaaaaaa", 8).strength).toBe("weak");
    expect(strengthHint("Tr0ub4dor&3", 8).strength).toBe("fair");
    expect(strengthHint("correct horse battery staple", 8).strength).toBe("strong");
    expect(estimateBits("abcdefgh")).toBeLessThan(estimateBits("abcdEFG1"));
  });

  it("counts characters, not UTF-16 units", () => {
    expect(strengthHint("😀😀😀😀😀😀😀", 8).strength).toBe("too-short");
  });
});
