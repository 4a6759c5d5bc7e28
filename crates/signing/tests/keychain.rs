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

/// The supervisor starts the service on the profile's node, follows it
/// through a restart without being asked (it waits on the node's watch),
/// and says why it cannot run while no node does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_follows_the_profiles_node_through_restarts() {
    use std::{sync::Arc, time::Duration};

    use conclave_node::{config::ConfigFlags, profile::Profile, NodeConfig, ProfileNode};
    use conclave_signing::{supervisor::SigningSupervisor, SigningConfig};

    if !in_keyring_session() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let profile = Profile::resolve("supervised", Some(dir.path())).unwrap();
    NodeConfig::loopback().save(&profile.config_file()).unwrap();
    let (node, _) = ProfileNode::open(profile, None, ConfigFlags::default())
        .await
        .unwrap();
    let node = Arc::new(node);
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let supervisor = SigningSupervisor::new(node.clone(), SigningConfig::new(dir.path())).on_start(
        move |service| {
            let _ = started_tx.send(service.clone());
        },
    );
    let supervisor = Arc::new(supervisor);
    let Err(err) = supervisor.handle().await else {
        panic!("a signing service without a node");
    };
    assert!(err.to_string().contains("not running"), "{err}");
    tokio::spawn(supervisor.clone().run());

    let within = Duration::from_secs(30);
    let first_node = node.start().await.unwrap();
    let first = tokio::time::timeout(within, started.recv())
        .await
        .expect("the service starts with the node")
        .unwrap();
    assert_eq!(first.node().peer_id(), first_node.peer_id());
    assert!(first.node().is_running());

    let second_node = node.start().await.unwrap();
    let second = tokio::time::timeout(within, started.recv())
        .await
        .expect("the service follows the restarted node")
        .unwrap();
    assert!(!first.node().is_running());
    assert!(second.node().is_running());
    let current = supervisor.handle().await.unwrap();
    assert!(current.node().is_running());
    assert!(started.try_recv().is_err(), "one start per node");

    // A service that ends while its node runs (as a failed one would) is
    // started again on the same node, not left as a dead handle.
    second.stop().await.unwrap();
    let third = tokio::time::timeout(within, started.recv())
        .await
        .expect("the ended service is started again")
        .unwrap();
    assert!(third.is_running());
    assert_eq!(third.node().peer_id(), second_node.peer_id());
    let listed = supervisor.handle().await.unwrap().list().await;
    assert!(listed.is_ok(), "{listed:?}");
    drop(second_node);

    supervisor.shutdown().await;
    node.stop().await;
}
