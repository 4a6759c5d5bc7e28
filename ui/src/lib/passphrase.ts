// A rough strength hint for backup passphrases. The backend enforces only
// the minimum length; this estimates guessing effort from length and the
// kinds of characters used, to nudge people towards long passphrases.

export type Strength = "too-short" | "weak" | "fair" | "strong";

export interface StrengthHint {
  strength: Strength;
  text: string;
}

/** Estimated bits of a passphrase drawn at random from its character kinds. */
export function estimateBits(passphrase: string): number {
  const chars = [...passphrase];
  if (chars.length === 0) return 0;
  let pool = 0;
  if (/[a-z]/.test(passphrase)) pool += 26;
  if (/[A-Z]/.test(passphrase)) pool += 26;
  if (/[0-9]/.test(passphrase)) pool += 10;
  if (/[^a-zA-Z0-9]/.test(passphrase)) pool += 33;
  // Repeated characters add little: count each distinct one fully, repeats at half.
  const distinct = new Set(chars).size;
  const effective = distinct + (chars.length - distinct) / 2;
  return effective * Math.log2(Math.max(pool, 2));
}

export function strengthHint(passphrase: string, minLength: number): StrengthHint {
  const length = [...passphrase].length;
  if (length < minLength) {
    return { strength: "too-short", text: `Use at least ${minLength} characters (${length} so far).` };
  }
  const bits = estimateBits(passphrase);
  if (bits < 50) return { strength: "weak", text: "Weak: add more words or characters." };
  if (bits < 80) return { strength: "fair", text: "Fair: a few more words make it strong." };
  return { strength: "strong", text: "Strong." };
}
