//! The service keeps its requests and the wallet's address count in the
//! profile's database: after a restart an open request is back (waiting
//! for the next epoch, its secrets derived again from the keychain), and
//! no address is handed out twice.

mod support;

use std::{sync::Arc, time::Duration};

use bitcoin::Network;
use conclave_coinjoin::{
    chain::ChainSource,
    service::{CoinJoinConfig, CoinJoinService, JoinParams, RequestPhase},
    wallet::Wallet,
};
use conclave_node::store::Database;
use support::Regtest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_request_and_the_address_count_survive_a_restart() {
    let test = "an_open_request_and_the_address_count_survive_a_restart";
    if std::env::var("CONCLAVE_KEYRING_TEST").as_deref() != Ok("1") {
        eprintln!(
            "skipped {test}: run it under scripts/with-keyring.sh (a private Secret Service)"
        );
        return;
    }
    let Some(chain) = Regtest::start(test) else {
        return;
    };
    let core: Arc<dyn ChainSource> = Arc::new(chain.core());
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("state.redb")).unwrap();
    let node = conclave_testkit::loopback_node().await;
    let profile = format!("coinjoin-restart-{}", std::process::id());
    let config = CoinJoinConfig::quick(Duration::from_secs(2), Duration::from_secs(5));
    let start = || async {
        let wallet = Wallet::open_keychain(&profile, Network::Regtest)
            .await
            .unwrap();
        CoinJoinService::start_with_store(
            node.clone(),
            wallet,
            core.clone(),
            config.clone(),
            db.clone(),
        )
        .await
        .unwrap()
    };
    let first = start().await;
    let address = first.new_address().await.unwrap();
    let coin = chain.fund(&address.script_pubkey(), 150_000);
    let id = first
        .join(JoinParams {
            denomination: 100_000,
            inputs: vec![coin],
            fee_rate: 2,
            max_fee: None,
        })
        .await
        .unwrap()
        .to_string();
    first.stop().await;

    let second = start().await;
    let list = second.list().await.unwrap();
    assert_eq!(list.len(), 1, "the request is back");
    assert_eq!(list[0].request_id, id);
    assert_eq!(list[0].phase, RequestPhase::Waiting);
    assert_eq!(list[0].inputs, vec![coin.to_string()]);
    assert_ne!(
        second.new_address().await.unwrap(),
        address,
        "addresses continue after the ones handed out"
    );
    // Its keys come from the keychain again: cancelling works, and a
    // second join of the coin is refused while the request is open.
    assert!(second
        .join(JoinParams {
            denomination: 50_000,
            inputs: vec![coin],
            fee_rate: 2,
            max_fee: None,
        })
        .await
        .unwrap_err()
        .to_string()
        .contains("already"));
    let cancelled = second.cancel(&id).await.unwrap();
    assert_eq!(cancelled.phase, RequestPhase::Cancelled);
    second.stop().await;
    let third = start().await;
    assert_eq!(
        third.list().await.unwrap()[0].phase,
        RequestPhase::Cancelled
    );
    third.stop().await;
    node.stop().await.unwrap();
}
