//! The CoinJoin wallet: P2TR key-path keys derived from one seed kept in
//! the OS keychain (service `org.conclave.coinjoin/<profile>`, entry
//! `wallet-seed`), read from it whenever a key is needed and never written
//! anywhere else.
//!
//! Every key is a derivation of the seed, so nothing but the seed is
//! secret and the keychain holds every key there is: receive addresses by
//! index, a change key per request and, per request, an output seed from
//! which each run of a session derives fresh output keys
//! ([`crate::coin::fresh_output_key`]). What the wallet remembers about which scripts
//! it issued is not secret (it is what the chain shows once they are used).

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use bitcoin::{Address, Network, ScriptBuf};
use conclave_node::identity::keystore::{self, describe};
use keyring_core::{CredentialStore, Error as KeyringError};
use zeroize::Zeroizing;

use crate::coin::{fresh_output_secret, CoinKey};

/// The keychain service the wallet's entries live under (with
/// `/<profile>` appended).
pub const KEYCHAIN_SERVICE: &str = "org.conclave.coinjoin";
/// The entry holding the seed.
const SEED_ENTRY: &str = "wallet-seed";
/// How long a keychain call may take (a locked keychain can wait forever
/// on an unlock prompt nobody sees).
pub const KEYCHAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// Receive addresses past the last one issued that are still searched for
/// a coin's key (after a restart the issued count starts from zero).
const RECEIVE_GAP: u32 = 100;

/// Why the wallet cannot give a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    /// No keychain service is reachable.
    #[error("no OS keychain is available for the CoinJoin wallet ({0}): start a keyring service such as gnome-keyring")]
    Unavailable(String),
    /// The keychain is locked or denied access.
    #[error("the keychain is locked or refused the CoinJoin wallet access ({0}): unlock it and try again")]
    Locked(String),
    /// The keychain failed or timed out.
    #[error("the keychain failed for the CoinJoin wallet: {0}")]
    Failed(String),
    /// The stored seed is not 32 bytes.
    #[error("the keychain entry {service}/{SEED_ENTRY} is corrupted ({len} bytes, not 32): move it aside to start a new wallet")]
    Corrupt {
        /// The service.
        service: String,
        /// Its length.
        len: usize,
    },
    /// No key of this wallet holds the script.
    #[error("no key of this wallet holds the script {0}: pass only coins paid to `conclavectl wallet address`")]
    NotOurs(String),
}

fn map_error(e: KeyringError) -> WalletError {
    match e {
        KeyringError::NoStorageAccess(_) => WalletError::Locked(describe(&e)),
        KeyringError::NoDefaultStore => WalletError::Unavailable(describe(&e)),
        other => WalletError::Failed(describe(&other)),
    }
}

/// Where the wallet seed lives.
pub trait SeedStore: Send + Sync {
    /// The seed, created (from the OS's randomness) if there is none yet.
    /// Blocking.
    fn load_or_create(&self) -> Result<Zeroizing<[u8; 32]>, WalletError>;
}

/// The seed in the OS keychain.
pub struct KeychainSeed {
    service: String,
    store: Arc<CredentialStore>,
    /// Serialises create-if-missing within this process.
    lock: Mutex<()>,
}

impl KeychainSeed {
    /// Opens the platform keychain for `profile` (blocking).
    pub fn open(profile: &str) -> Result<Self, WalletError> {
        let store =
            keystore::platform_store().map_err(|e| WalletError::Unavailable(e.to_string()))?;
        Ok(Self {
            service: format!("{KEYCHAIN_SERVICE}/{profile}"),
            store,
            lock: Mutex::new(()),
        })
    }

    /// The keychain service of the entries.
    pub fn service(&self) -> &str {
        &self.service
    }
}

impl SeedStore for KeychainSeed {
    fn load_or_create(&self) -> Result<Zeroizing<[u8; 32]>, WalletError> {
        let _guard = self.lock.lock().expect("seed lock");
        let entry = self
            .store
            .build(&self.service, SEED_ENTRY, None)
            .map_err(map_error)?;
        match entry.get_secret() {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let seed: [u8; 32] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| WalletError::Corrupt {
                            service: self.service.clone(),
                            len: bytes.len(),
                        })?;
                Ok(Zeroizing::new(seed))
            }
            Err(KeyringError::NoEntry) => {
                let mut seed = Zeroizing::new([0u8; 32]);
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, seed.as_mut_slice());
                entry.set_secret(seed.as_slice()).map_err(map_error)?;
                Ok(seed)
            }
            Err(e) => Err(map_error(e)),
        }
    }
}

/// A seed held in memory, for tests of what is built on the wallet (the
/// keychain itself is tested through [`KeychainSeed`]).
pub struct MemorySeed(pub Zeroizing<[u8; 32]>);

impl SeedStore for MemorySeed {
    fn load_or_create(&self) -> Result<Zeroizing<[u8; 32]>, WalletError> {
        Ok(self.0.clone())
    }
}

/// Which derivation of the seed a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyPath {
    /// A receive address.
    Receive(u32),
    /// The change of the request with this nonce.
    Change([u8; 16]),
    /// A mixed output of the request with this nonce.
    Output {
        /// The request's nonce.
        nonce: [u8; 16],
        /// The session.
        session_id: [u8; 32],
        /// The run.
        run: u32,
        /// The output's index among ours.
        index: u32,
    },
}

/// A request's secrets: its change key and its output seed.
pub struct RequestKeys {
    /// Where its change goes.
    pub change_script: ScriptBuf,
    /// Seeds the fresh output key of each run.
    pub output_seed: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for RequestKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestKeys")
            .field("change_script", &self.change_script)
            .finish_non_exhaustive()
    }
}

fn derive_secret(seed: &[u8; 32], label: &[u8], data: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut h = blake3::Hasher::new_keyed(seed);
    h.update(b"conclave coinjoin wallet v1 ");
    h.update(label);
    h.update(data);
    Zeroizing::new(*h.finalize().as_bytes())
}

fn output_seed(seed: &[u8; 32], nonce: &[u8; 16]) -> Zeroizing<[u8; 32]> {
    derive_secret(seed, b"output seed", nonce)
}

/// A secret that is a valid key: the derivation, retried with a counter
/// (each attempt fails with probability 2^-128).
fn derive_valid(seed: &[u8; 32], label: &[u8], data: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut counter = 0u32;
    loop {
        let mut input = data.to_vec();
        input.extend_from_slice(&counter.to_le_bytes());
        let secret = derive_secret(seed, label, &input);
        if CoinKey::from_secret_bytes(&secret).is_ok() {
            return secret;
        }
        counter += 1;
    }
}

/// The secret key bytes at `path`.
fn secret_at(seed: &[u8; 32], path: &KeyPath) -> Zeroizing<[u8; 32]> {
    match path {
        KeyPath::Receive(i) => derive_valid(seed, b"receive", &i.to_le_bytes()),
        KeyPath::Change(nonce) => derive_valid(seed, b"change", nonce),
        KeyPath::Output {
            nonce,
            session_id,
            run,
            index,
        } => fresh_output_secret(&output_seed(seed, nonce), session_id, *run, *index),
    }
}

fn key_at(seed: &[u8; 32], path: &KeyPath) -> CoinKey {
    CoinKey::from_secret_bytes(&secret_at(seed, path)).expect("derivations give valid keys")
}

#[derive(Default)]
struct Known {
    next_receive: u32,
    scripts: BTreeMap<ScriptBuf, KeyPath>,
}

/// The wallet of one profile.
#[derive(Clone)]
pub struct Wallet {
    seed: Arc<dyn SeedStore>,
    network: Network,
    known: Arc<Mutex<Known>>,
}

impl fmt::Debug for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wallet")
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

impl Wallet {
    /// A wallet whose seed lives in `seed`, with addresses for `network`.
    pub fn new(seed: Arc<dyn SeedStore>, network: Network) -> Self {
        Self {
            seed,
            network,
            known: Arc::new(Mutex::new(Known::default())),
        }
    }

    /// The wallet of `profile` in the OS keychain (opened off the async
    /// runtime).
    pub async fn open_keychain(profile: &str, network: Network) -> Result<Self, WalletError> {
        let profile = profile.to_string();
        let opened = blocking(move || KeychainSeed::open(&profile)).await?;
        Ok(Self::new(Arc::new(opened), network))
    }

    /// How many receive addresses were handed out.
    pub fn issued(&self) -> u32 {
        self.known.lock().expect("wallet lock").next_receive
    }

    /// Continues after `issued` addresses handed out before (as the
    /// database remembers), so no address is handed out twice.
    pub fn resume_after(&self, issued: u32) {
        let mut known = self.known.lock().expect("wallet lock");
        known.next_receive = known.next_receive.max(issued);
    }

    /// The network its addresses are for.
    pub fn network(&self) -> Network {
        self.network
    }

    async fn with_seed<T: Send + 'static>(
        &self,
        op: impl FnOnce(&[u8; 32]) -> T + Send + 'static,
    ) -> Result<T, WalletError> {
        let store = self.seed.clone();
        blocking(move || {
            let seed = store.load_or_create()?;
            Ok(op(&seed))
        })
        .await
    }

    /// A new receive address (P2TR key path), never handed out before in
    /// this process.
    pub async fn new_address(&self) -> Result<Address, WalletError> {
        let index = {
            let mut known = self.known.lock().expect("wallet lock");
            known.next_receive += 1;
            known.next_receive - 1
        };
        let path = KeyPath::Receive(index);
        let script = self
            .with_seed(move |seed| key_at(seed, &path).script_pubkey())
            .await?;
        self.remember(script.clone(), path);
        Ok(Address::from_script(&script, self.network).expect("P2TR is a standard script"))
    }

    fn remember(&self, script: ScriptBuf, path: KeyPath) {
        self.known
            .lock()
            .expect("wallet lock")
            .scripts
            .insert(script, path);
    }

    /// The secret keys holding `scripts`, in order (as bytes, so callers
    /// can make a [`CoinKey`] for each use). Fails on the first script no
    /// key of this wallet holds.
    pub async fn secrets_for(
        &self,
        scripts: Vec<ScriptBuf>,
    ) -> Result<Vec<Zeroizing<[u8; 32]>>, WalletError> {
        let (known, next) = {
            let k = self.known.lock().expect("wallet lock");
            (k.scripts.clone(), k.next_receive)
        };
        let found = self
            .with_seed(move |seed| {
                let mut scanned: Option<BTreeMap<ScriptBuf, u32>> = None;
                scripts
                    .iter()
                    .map(|script| {
                        let path = match known.get(script) {
                            Some(path) => *path,
                            None => {
                                let receive = scanned.get_or_insert_with(|| {
                                    (0..next + RECEIVE_GAP)
                                        .map(|i| {
                                            (key_at(seed, &KeyPath::Receive(i)).script_pubkey(), i)
                                        })
                                        .collect()
                                });
                                match receive.get(script) {
                                    Some(i) => KeyPath::Receive(*i),
                                    None => {
                                        return Err(WalletError::NotOurs(script.to_hex_string()))
                                    }
                                }
                            }
                        };
                        Ok((path, secret_at(seed, &path)))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await??;
        Ok(found.into_iter().map(|(_, secret)| secret).collect())
    }

    /// The change key and output seed of the request with `nonce`.
    pub async fn request_keys(&self, nonce: [u8; 16]) -> Result<RequestKeys, WalletError> {
        let path = KeyPath::Change(nonce);
        let (change_script, output_seed) = self
            .with_seed(move |seed| {
                (
                    key_at(seed, &path).script_pubkey(),
                    output_seed(seed, &nonce),
                )
            })
            .await?;
        self.remember(change_script.clone(), path);
        Ok(RequestKeys {
            change_script,
            output_seed,
        })
    }

    /// Remembers a mixed output the wallet received, so that it can spend
    /// it later.
    pub fn remember_output(&self, script: ScriptBuf, path: KeyPath) {
        self.remember(script, path);
    }
}

async fn blocking<T: Send + 'static>(
    op: impl FnOnce() -> Result<T, WalletError> + Send + 'static,
) -> Result<T, WalletError> {
    let task = tokio::task::spawn_blocking(op);
    match tokio::time::timeout(KEYCHAIN_TIMEOUT, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(WalletError::Failed(join.to_string())),
        Err(_) => Err(WalletError::Failed(format!(
            "no answer within {} s (locked and waiting for an unlock prompt?): unlock it and try again",
            KEYCHAIN_TIMEOUT.as_secs()
        ))),
    }
}
