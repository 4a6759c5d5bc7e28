//! Signing keys in a real Secret Service (gnome-keyring). Runs inside
//! `scripts/with-keyring.sh` (as `make test` does); skipped, with a
//! message, anywhere else.

use conclave_signing::{keys::KeyStore, KeychainKeyStore, SecretKey};

fn in_keyring_session() -> bool {
    if std::env::var("CONCLAVE_KEYRING_TEST").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skipped: run through scripts/with-keyring.sh (make test does) for a real keychain");
    false
}

#[test]
fn keys_live_in_the_keychain_and_survive_reopening() {
    if !in_keyring_session() {
        return;
    }
    let profile = format!("signing-test-{}", std::process::id());
    let store = KeychainKeyStore::open(&profile).expect("keychain opens");
    assert_eq!(store.service(), format!("org.conclave.signing/{profile}"));
    assert!(
        store.list().unwrap().is_empty(),
        "a fresh profile has no keys"
    );

    let first = SecretKey::generate();
    let second = SecretKey::from_hex(&hex::encode([0x42u8; 32])).unwrap();
    let a = store.insert(&first).unwrap();
    let b = store.insert(&second).unwrap();
    assert_eq!(store.insert(&first).unwrap(), a, "storing twice is a no-op");
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(store.list().unwrap(), expected);

    // Another handle on the same profile (as after a restart) sees them.
    let reopened = KeychainKeyStore::open(&profile).unwrap();
    assert_eq!(reopened.list().unwrap(), expected);
    let back = reopened.secret(&b).unwrap().expect("stored");
    assert_eq!(back.expose_bytes(), &[0x42u8; 32]);
    let stranger = SecretKey::generate().public_key();
    assert!(reopened.secret(&stranger).unwrap().is_none());

    // Profiles do not see each other's keys.
    let other = KeychainKeyStore::open(&format!("{profile}-other")).unwrap();
    assert!(other.list().unwrap().is_empty());
}
