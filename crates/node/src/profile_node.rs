//! A profile's node: its keys ([`KeySource::for_profile`]) and its config
//! ([`NodeConfig::for_profile`]), started, restarted and stopped, with a
//! watch of the node that runs now. `conclaved` runs one for its lifetime;
//! the desktop app restarts it when its settings or keys change, and what
//! runs on the node (the signing service) follows the watch.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use libp2p::PeerId;
use tokio::sync::watch;

use crate::{
    config::{ConfigError, ConfigFlags, NodeConfig},
    identity::{KeySource, KeySourceError, NodeIdentity},
    profile::Profile,
    Node, NodeError, NodeHandle,
};

/// The node of one profile.
pub struct ProfileNode {
    profile: Profile,
    keys: KeySource,
    flags: ConfigFlags,
    /// Replaced by [`replace_identity`](Self::replace_identity).
    identity: RwLock<Arc<NodeIdentity>>,
    /// Serialises start, stop and restart.
    lifecycle: tokio::sync::Mutex<()>,
    /// The node that runs now; `None` before the first start, between a
    /// stop and the next start, and after a start failed.
    current: watch::Sender<Option<NodeHandle>>,
}

impl ProfileNode {
    /// Loads the profile's keys where the rule puts them (`key_file`, when
    /// given, is `--key-file`), creating them on first use; returns whether
    /// they were created. The node starts on [`start`](Self::start).
    pub async fn open(
        profile: Profile,
        key_file: Option<&Path>,
        flags: ConfigFlags,
    ) -> Result<(Self, bool), KeySourceError> {
        let keys = KeySource::for_profile(&profile, key_file);
        let (identity, created) = keys.load_or_create().await?;
        let node = Self {
            profile,
            keys,
            flags,
            identity: RwLock::new(Arc::new(identity)),
            lifecycle: tokio::sync::Mutex::new(()),
            current: watch::Sender::new(None),
        };
        Ok((node, created))
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Where the keys are kept.
    pub fn key_source(&self) -> &KeySource {
        &self.keys
    }

    /// The keys the node runs with (from the next start, after a replace).
    pub fn identity(&self) -> Arc<NodeIdentity> {
        self.identity
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Our peer id.
    pub fn peer_id(&self) -> PeerId {
        self.identity().peer_id()
    }

    /// The keychain namespace of the profile's other secrets (see
    /// [`KeySource::secrets_namespace`]).
    pub fn secrets_namespace(&self) -> String {
        self.keys.secrets_namespace(&self.profile, &self.peer_id())
    }

    /// The config the next start uses, read afresh.
    pub fn config(&self) -> Result<NodeConfig, ConfigError> {
        NodeConfig::for_profile(&self.profile, &self.flags)
    }

    /// The connection policy file the node keeps (the config's, else the
    /// profile's).
    pub fn policy_file(&self) -> PathBuf {
        self.config()
            .ok()
            .and_then(|c| c.policy_file)
            .unwrap_or_else(|| self.profile.policy_file())
    }

    /// Starts the node with the config and keys as they are now, stopping
    /// a running one first.
    pub async fn start(&self) -> Result<NodeHandle, NodeError> {
        let _lifecycle = self.lifecycle.lock().await;
        self.stop_running().await;
        let config = self.config()?;
        // The node takes its key set by value; every (re)start gets the same
        // keys rebuilt from their seeds.
        let identity = NodeIdentity::from_seeds(&self.identity().seeds())?;
        let handle = Node::start(config, identity).await?;
        self.current.send_replace(Some(handle.clone()));
        Ok(handle)
    }

    /// Stops the node, if it runs.
    pub async fn stop(&self) {
        let _lifecycle = self.lifecycle.lock().await;
        self.stop_running().await;
    }

    async fn stop_running(&self) {
        if let Some(running) = self.current.send_replace(None) {
            if let Err(e) = running.stop().await {
                tracing::debug!(%e, "node already stopped");
            }
        }
    }

    /// The node that runs now.
    pub fn current(&self) -> Option<NodeHandle> {
        self.current.borrow().clone()
    }

    /// The node that runs, followed through restarts.
    pub fn watch(&self) -> watch::Receiver<Option<NodeHandle>> {
        self.current.subscribe()
    }

    /// Replaces the profile's keys with `identity` where the rule keeps
    /// them; the next [`start`](Self::start) runs with them. A failure
    /// changes nothing, neither the stored keys nor these.
    pub async fn replace_identity(
        &self,
        identity: Arc<NodeIdentity>,
    ) -> Result<(), KeySourceError> {
        self.keys.replace(identity.clone()).await?;
        *self.identity.write().unwrap_or_else(|e| e.into_inner()) = identity;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn loopback_profile(dir: &Path) -> ProfileNode {
        let profile = Profile::resolve("runner", Some(dir)).unwrap();
        NodeConfig::loopback().save(&profile.config_file()).unwrap();
        ProfileNode::open(profile, None, ConfigFlags::default())
            .await
            .unwrap()
            .0
    }

    #[tokio::test]
    async fn the_watch_follows_the_node_through_restarts_and_new_keys() {
        let dir = tempfile::tempdir().unwrap();
        let node = loopback_profile(dir.path()).await;
        assert!(
            dir.path().join("identity.key").exists(),
            "keys in the folder"
        );
        let mut watch = node.watch();
        assert!(watch.borrow_and_update().is_none());

        let first = node.start().await.unwrap();
        watch.changed().await.unwrap();
        assert_eq!(
            watch.borrow_and_update().as_ref().map(NodeHandle::peer_id),
            Some(node.peer_id())
        );
        assert_eq!(first.peer_id(), node.peer_id());

        // New keys are stored and taken by the next start; the old node stops.
        let restored = Arc::new(NodeIdentity::generate());
        node.replace_identity(restored.clone()).await.unwrap();
        let second = node.start().await.unwrap();
        assert!(!first.is_running());
        assert_eq!(second.peer_id(), restored.peer_id());
        let reopened = loopback_profile(dir.path()).await;
        assert_eq!(
            reopened.peer_id(),
            restored.peer_id(),
            "the new keys were saved"
        );

        node.stop().await;
        assert!(!second.is_running());
        assert!(node.current().is_none());
    }

    #[tokio::test]
    async fn a_bad_config_fails_the_start_and_leaves_no_node() {
        let dir = tempfile::tempdir().unwrap();
        let node = loopback_profile(dir.path()).await;
        std::fs::write(node.profile().config_file(), "max_connections = 0\n").unwrap();
        let Err(err) = node.start().await else {
            panic!("a node started with max_connections = 0");
        };
        assert!(err.to_string().contains("max_connections"), "{err}");
        assert!(node.current().is_none());
        assert_eq!(node.policy_file(), node.profile().policy_file());
    }
}
