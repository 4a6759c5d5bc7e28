// This profile's MuSig2 signing keys (secp256k1, kept in the system
// keychain), as the Sessions view lists them.
import { commands, type KeyInfo } from "./bindings";
import { describe, unwrap, type Problem } from "./api";

export const signingKeys = $state({
  list: [] as KeyInfo[],
  /** True while a new key is made. */
  busy: false,
  /** Why the last fetch or new key failed (a locked keychain says so here). */
  error: null as Problem | null,
});

/** Fetches the keys; a failure leaves the last list shown. */
export async function loadSigningKeys(): Promise<void> {
  try {
    signingKeys.list = await unwrap(commands.signingKeys());
    signingKeys.error = null;
  } catch (e) {
    signingKeys.error = describe(e);
  }
}

/** Makes a new key in the keychain and lists it. */
export async function newSigningKey(): Promise<void> {
  signingKeys.busy = true;
  try {
    const key = await unwrap(commands.signingNewKey());
    signingKeys.list = [...signingKeys.list.filter((k) => k.pubkey !== key.pubkey), key];
    signingKeys.error = null;
  } catch (e) {
    signingKeys.error = describe(e);
  } finally {
    signingKeys.busy = false;
  }
}
