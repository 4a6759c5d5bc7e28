//! Errors of the node's public API: [`NodeError`] at the top, one enum per
//! concern beneath it (start-up, input, connections, protocols and direct
//! messages, gossip, the DHT), and the errors of the modules that own a
//! concern themselves (configuration, policy, envelopes, identity, sealing,
//! resources).
//!
//! Each error's text names its cause once; where a person can do something
//! about it, the text ends with what.

use std::sync::Arc;

use libp2p::{gossipsub, kad, request_response::OutboundFailure, Multiaddr, PeerId};

use crate::{
    config::ConfigError,
    gate::PolicyError,
    identity::{envelope::EnvelopeError, pq::IdentityError, sealed::SealError},
    resources::ResourceError,
};

/// What can go wrong when asking the node to do something.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The node has stopped (or is stopping) and takes no more commands.
    #[error("the node is not running")]
    Stopped,
    /// A table of requests in flight is full; the request was not started.
    #[error(
        "the node is busy: {table} are at their limit of {cap}; try again when some have finished"
    )]
    Busy {
        /// What is full, such as "DHT queries in flight".
        table: &'static str,
        /// How many it holds.
        cap: usize,
    },
    /// The node could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A caller's input is malformed.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Dialling, connections and streams.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// Protocol handlers and direct messages.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// Publishing, subscribing and topic waits.
    #[error(transparent)]
    Gossip(#[from] GossipError),
    /// DHT records and providers.
    #[error(transparent)]
    Dht(#[from] DhtError),
    /// Announced resources.
    #[error(transparent)]
    Resource(#[from] ResourceError),
    /// The connection policy could not be saved; it is unchanged.
    #[error("the connection policy is unchanged: {0}; check that its folder can be written")]
    Policy(#[source] PolicyError),
    /// An envelope failed verification.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// Signing failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// A payload could not be sealed to its recipients.
    #[error("cannot seal the payload: {0}")]
    Seal(#[source] SealError),
    /// No verified PQ identity record of a recipient is known.
    #[error("no verified PQ identity record of {0}; connect to the peer first so the two nodes exchange records")]
    UnknownRecipient(PeerId),
}

/// Why the node did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A part of the transport stack could not be built.
    #[error("cannot set up the {layer}: {}", describe(source.as_ref()))]
    Transport {
        /// Which part, such as "tcp transport".
        layer: &'static str,
        /// What it said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A listen address could not be bound.
    #[error(
        "cannot listen on {addr}: {}; pick another address or port in the listen addresses, or stop what holds it",
        describe(source.as_ref())
    )]
    Listen {
        /// Address that failed.
        addr: Multiaddr,
        /// The transport's error (shared: every caller waiting for the
        /// listeners is told).
        source: Arc<std::io::Error>,
    },
}

/// Malformed input from a caller.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The text is not a multiaddr.
    #[error(
        "invalid multiaddr {input:?}{}: write it like /ip4/192.0.2.7/udp/4001/quic-v1/p2p/12D3KooW…",
        detail(source)
    )]
    Multiaddr {
        /// What was given.
        input: String,
        /// The parser's error.
        source: libp2p::multiaddr::Error,
    },
    /// The text is not a peer id.
    #[error(
        "invalid peer id {input:?} ({}): copy it whole, it starts with 12D3KooW",
        describe(source)
    )]
    PeerId {
        /// What was given.
        input: String,
        /// The parser's error.
        source: libp2p::identity::ParseError,
    },
    /// A payload is larger than the configured limit.
    #[error("message of {size} bytes is larger than the limit of {max} bytes")]
    MessageTooLarge {
        /// Payload size.
        size: usize,
        /// Configured maximum (`max_message_size`).
        max: usize,
    },
}

/// Dialling, connections and streams.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Dialling failed.
    #[error("cannot connect to {addr}: {reason}")]
    Dial {
        /// Address dialled.
        addr: Multiaddr,
        /// Why each address tried failed, in words.
        reason: String,
    },
    /// Dialling did not finish in time.
    #[error("connecting to {addr} timed out after {secs} s")]
    DialTimeout {
        /// Address dialled.
        addr: Multiaddr,
        /// Seconds waited.
        secs: u64,
    },
    /// The peer is not connected.
    #[error("peer {0} is not connected")]
    NotConnected(PeerId),
    /// A stream could not be opened.
    #[error("cannot open a stream to {peer}: {source}")]
    Stream {
        /// Peer.
        peer: PeerId,
        /// Why.
        source: libp2p_stream::OpenStreamError,
    },
}

/// Protocol handlers and direct messages to them.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The protocol id is not valid.
    #[error("invalid protocol id {0:?}: it must start with '/'")]
    InvalidId(String),
    /// A protocol handler with this id is already registered.
    #[error("a handler for protocol {0} is already registered")]
    HandlerExists(String),
    /// No protocol handler with this id.
    #[error("no handler registered for protocol {0}")]
    NoHandler(String),
    /// A direct message failed on the way.
    #[error("message to {peer} failed: {source}")]
    SendFailed {
        /// Recipient.
        peer: PeerId,
        /// Why.
        source: OutboundFailure,
    },
    /// The remote node or handler answered with an error.
    #[error("peer {peer} refused the message: {reason}")]
    Remote {
        /// Recipient.
        peer: PeerId,
        /// The text the peer sent.
        reason: String,
    },
}

/// Publishing, subscribing and waiting for topic peers.
#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    /// A topic name is empty or too long.
    #[error("invalid topic name of {len} bytes: topic names are 1 to {max} bytes")]
    TopicName {
        /// Length given.
        len: usize,
        /// Longest allowed.
        max: usize,
    },
    /// Gossip publication failed.
    #[error("cannot publish on {topic:?}: {}", publish_failure(source))]
    Publish {
        /// Topic.
        topic: String,
        /// What gossipsub said.
        source: gossipsub::PublishError,
    },
    /// Topic subscription failed.
    #[error("cannot subscribe to {topic:?}: {source}")]
    Subscribe {
        /// Topic.
        topic: String,
        /// What gossipsub said.
        source: gossipsub::SubscriptionError,
    },
    /// The topic's scoring parameters were refused.
    #[error("cannot score topic {topic:?}: {reason}")]
    Scoring {
        /// Topic.
        topic: String,
        /// What gossipsub said.
        reason: &'static str,
    },
    /// Not enough peers subscribed to a topic in time.
    #[error("timed out after {secs} s waiting for {count} peers on topic {topic:?}")]
    TopicPeersTimeout {
        /// Topic.
        topic: String,
        /// Peers awaited.
        count: usize,
        /// Seconds waited.
        secs: u64,
    },
}

/// Gossipsub's publish errors in words (its own texts are debug output).
fn publish_failure(error: &gossipsub::PublishError) -> String {
    match error {
        gossipsub::PublishError::NoPeersSubscribedToTopic => {
            "no connected peer is subscribed to this topic yet".into()
        }
        gossipsub::PublishError::Duplicate => {
            "an identical message was published in the last 120 s (gossip deduplicates by content)"
                .into()
        }
        gossipsub::PublishError::MessageTooLarge => {
            "message is larger than the gossip frame limit".into()
        }
        other => other.to_string(),
    }
}

/// DHT records and providers.
#[derive(Debug, thiserror::Error)]
pub enum DhtError {
    /// The local record store refused a record.
    #[error("the local DHT store refused the {op}: {source}")]
    Store {
        /// What was stored ("record", "provider record").
        op: &'static str,
        /// Why.
        source: kad::store::Error,
    },
    /// Storing a record on other peers failed.
    #[error("DHT put failed: {0}")]
    Put(#[source] kad::PutRecordError),
    /// Fetching a record failed.
    #[error("DHT get failed: {0}")]
    Get(#[source] kad::GetRecordError),
    /// Announcing a provider record failed.
    #[error("DHT start providing failed: {0}")]
    Provide(#[source] kad::AddProviderError),
    /// No peer (nor the local store) has the record.
    #[error("record not found")]
    NotFound,
}

/// An error and its causes, each named once and in order: a cause whose
/// text the message already holds is not repeated (many libraries print
/// their source inside their own text, and error printers then print it
/// again), and empty texts are skipped. For everything a person reads:
/// command-line errors, the app's messages and logs.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let part = one_line(&e.to_string());
        let part = part.trim().trim_end_matches(':').trim_end();
        if !part.is_empty() && !text.contains(part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(part);
        }
        next = e.source();
    }
    text
}

/// Whether `message` reads well to a person: one line, no clause said
/// twice, and its last clause holds `advice` (what to do); if not, why not.
/// For tests of the messages people read (see [`describe`]).
pub fn reads_well(message: &str, advice: &str) -> Result<(), String> {
    let message = message.trim_end();
    if message.is_empty() {
        return Err("no message at all".into());
    }
    if message.contains('\n') {
        return Err(format!("one line, not a report:\n{message}"));
    }
    if let Some(part) = repeated_clause(message) {
        return Err(format!("{part:?} is said twice in: {message}"));
    }
    let last = message.rsplit([':', ';']).next().unwrap_or_default();
    if !last.contains(advice) {
        return Err(format!(
            "the message ends with what to do ({advice:?}): {message}"
        ));
    }
    Ok(())
}

/// The first clause `message` says twice, if any: the parts between `:`,
/// `;`, `(` and `)` of eight characters or more, compared without case, a
/// later part counting as a repeat when it holds an earlier one.
fn repeated_clause(message: &str) -> Option<String> {
    let parts: Vec<String> = message
        .split([':', ';', '(', ')'])
        .map(|c| c.trim().to_lowercase())
        .filter(|c| c.len() >= 8)
        .collect();
    parts.iter().enumerate().find_map(|(i, part)| {
        parts[i + 1..]
            .iter()
            .any(|later| later.contains(part.as_str()))
            .then(|| part.clone())
    })
}

/// A message on one line: a list under a heading ("Multiple dial errors
/// occurred:\n - a\n - b", as libp2p writes them) becomes "…: a; b".
fn one_line(text: &str) -> String {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let Some(first) = lines.next() else {
        return String::new();
    };
    let items: Vec<&str> = lines.map(|l| l.trim_start_matches("- ")).collect();
    if items.is_empty() {
        first.to_string()
    } else if first.ends_with(':') {
        format!("{first} {}", items.join("; "))
    } else {
        format!("{first} {}", items.join(" "))
    }
}

/// The parser's words in parentheses, when they add to "invalid multiaddr".
fn detail(source: &libp2p::multiaddr::Error) -> String {
    let said = describe(source);
    if said.eq_ignore_ascii_case("invalid multiaddr") {
        String::new()
    } else {
        format!(" ({said})")
    }
}

impl NodeError {
    /// Parses a multiaddr, naming the input on failure.
    pub fn parse_multiaddr(input: &str) -> Result<Multiaddr, NodeError> {
        input.trim().parse().map_err(|source| {
            InputError::Multiaddr {
                input: input.to_string(),
                source,
            }
            .into()
        })
    }

    /// Parses a peer id, naming the input on failure.
    pub fn parse_peer_id(input: &str) -> Result<PeerId, NodeError> {
        input.trim().parse().map_err(|source| {
            InputError::PeerId {
                input: input.to_string(),
                source,
            }
            .into()
        })
    }

    /// Whether the error says that what was asked for does not exist (a
    /// DHT record or a resource), as opposed to a failure to look.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            NodeError::Dht(DhtError::NotFound)
                | NodeError::Resource(ResourceError::NotFound { .. })
        )
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn busy_names_the_table_its_cap_and_what_to_do() {
        let text = NodeError::Busy {
            table: "DHT queries in flight",
            cap: 256,
        }
        .to_string();
        assert_eq!(
            text,
            "the node is busy: DHT queries in flight are at their limit of 256; try again when some have finished"
        );
    }

    #[test]
    fn wrappers_add_no_text_and_keep_the_cause_as_source() {
        let e = NodeError::parse_multiaddr("not-a-multiaddr").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid multiaddr \"not-a-multiaddr\": "),
            "{e}"
        );
        assert!(e.source().is_some(), "the parser's error is the source");
        let e = NodeError::parse_peer_id("12D3Koo").unwrap_err();
        assert!(
            matches!(e, NodeError::Input(InputError::PeerId { .. })),
            "{e}"
        );
        let e = NodeError::Policy(PolicyError::File {
            path: "/p.json".into(),
            reason: "Permission denied".into(),
        });
        assert_eq!(
            e.to_string(),
            "the connection policy is unchanged: policy file /p.json: Permission denied; check that its folder can be written"
        );
        assert!(e.source().is_some());
    }

    /// An error whose text holds its source's, as many libraries write them.
    #[derive(Debug)]
    struct Wraps(&'static str, Option<Box<Wraps>>);
    impl std::fmt::Display for Wraps {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Wraps {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn describe_names_each_cause_once_in_order() {
        let chain = Wraps(
            "no keychain (Platform failure: zbus error: cannot connect: No such file)",
            Some(Box::new(Wraps(
                "zbus error: cannot connect: No such file",
                Some(Box::new(Wraps(
                    "",
                    Some(Box::new(Wraps(
                        "No such file",
                        Some(Box::new(Wraps("os error 2", None))),
                    ))),
                ))),
            ))),
        );
        assert_eq!(
            describe(&chain),
            "no keychain (Platform failure: zbus error: cannot connect: No such file): os error 2"
        );
        let listed = Wraps(
            "cannot connect",
            Some(Box::new(Wraps(
                "Multiple dial errors occurred:\n - Connection refused\n - Timed out",
                Some(Box::new(Wraps("Connection refused", None))),
            ))),
        );
        assert_eq!(
            describe(&listed),
            "cannot connect: Multiple dial errors occurred: Connection refused; Timed out"
        );
    }

    #[test]
    fn reads_well_catches_a_repeated_cause_and_a_missing_advice() {
        let repeated = "cannot listen: Address already in use (os error 98): Address already in use (os error 98); pick another port";
        assert!(reads_well(repeated, "pick another").is_err());
        let no_advice = "cannot listen on /ip4/127.0.0.1/tcp/1: Address already in use";
        assert!(reads_well(no_advice, "pick another").is_err());
        assert!(reads_well("cannot listen\nCaused by: x; pick another", "pick another").is_err());
        assert_eq!(
            reads_well(
                "cannot listen on /ip4/127.0.0.1/tcp/1: Address already in use (os error 98); pick another port",
                "pick another",
            ),
            Ok(())
        );
    }

    #[test]
    fn a_listen_failure_names_the_os_error_once_and_says_what_to_do() {
        // As libp2p reports it: a transport error with an empty text around
        // the I/O error.
        let inner = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let e = NodeError::Start(StartError::Listen {
            addr: "/ip4/127.0.0.1/tcp/4001".parse().unwrap(),
            source: Arc::new(std::io::Error::other(libp2p::TransportError::<
                std::io::Error,
            >::Other(inner))),
        });
        let text = describe(&e);
        assert_eq!(text.matches("address in use").count(), 1, "{text}");
        assert!(!text.contains(": ;"), "{text}");
        assert!(text.ends_with("or stop what holds it"), "{text}");
    }

    #[test]
    fn publish_failures_read_as_words() {
        let e = GossipError::Publish {
            topic: "t".into(),
            source: gossipsub::PublishError::NoPeersSubscribedToTopic,
        };
        assert_eq!(
            e.to_string(),
            "cannot publish on \"t\": no connected peer is subscribed to this topic yet"
        );
    }

    #[test]
    fn only_missing_records_and_resources_are_not_found() {
        assert!(NodeError::Dht(DhtError::NotFound).is_not_found());
        assert!(NodeError::Resource(ResourceError::NotFound {
            kind: "t".into(),
            id: "a".into()
        })
        .is_not_found());
        assert!(!NodeError::Stopped.is_not_found());
        assert!(!NodeError::UnknownRecipient(PeerId::random()).is_not_found());
    }
}
