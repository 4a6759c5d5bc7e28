//! Signed agent cards and the book of cards a room member has seen.
//!
//! A card is an A2A [`AgentCard`] whose exact JSON bytes are signed in a
//! [`Statement`] by the agent's peer, with a sequence number so a newer
//! card replaces an older one and a replayed old card changes nothing. The
//! card's first interface must name its signer (`/p2p/<PeerId>`).

use std::collections::BTreeMap;

use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};

use crate::{
    a2a::{AgentCard, AgentInterface, JsonBytes, A2A_PROTOCOL_VERSION, LIBP2P_BINDING},
    statement::{SignError, Statement, StatementError, StatementSigner},
};

/// Domain of a signed agent card.
pub const CARD_DOMAIN: &str = "conclave/rooms/agent-card/v1";
/// Largest card JSON.
pub const MAX_CARD_BYTES: usize = 64 * 1024;
/// Most cards one room's book holds.
pub const MAX_CARDS: usize = 1024;
/// Shortest interval between two accepted cards of one peer (a peer that
/// sends faster is ignored until the interval passed).
pub const MIN_CARD_INTERVAL_MS: u64 = 1_000;

/// Why a card is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// Bad signature or encoding.
    #[error(transparent)]
    Statement(#[from] StatementError),
    /// The card itself is malformed or out of bounds.
    #[error(transparent)]
    A2a(#[from] crate::a2a::A2aError),
    /// Larger than a card may be.
    #[error("card of {0} bytes exceeds {MAX_CARD_BYTES}")]
    TooLarge(usize),
    /// The card's interface names another peer or binding.
    #[error("card signed by {0} does not name it in its libp2p interface")]
    WrongInterface(PeerId),
    /// Not newer than the card held.
    #[error("card {seq} of {peer} is not newer than the one held")]
    Stale {
        /// The sender.
        peer: PeerId,
        /// The sequence number sent.
        seq: u64,
    },
    /// Sent again too soon.
    #[error("{0} sent cards faster than one a second")]
    TooFrequent(PeerId),
    /// The book is full.
    #[error("the room holds {MAX_CARDS} cards already")]
    Full,
}

/// What a card statement carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardBody {
    /// Increases with every new card of the peer.
    pub seq: u64,
    /// The A2A AgentCard's exact JSON.
    pub card: JsonBytes,
}

/// A verified card.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedCard {
    /// Whose card.
    pub peer: PeerId,
    /// Its sequence number.
    pub seq: u64,
    /// The decoded card.
    pub card: AgentCard,
    /// The statement, to pass on unchanged.
    pub statement: Statement,
}

/// The interface naming `peer` over our libp2p binding.
pub fn libp2p_interface(peer: &PeerId) -> AgentInterface {
    AgentInterface {
        url: format!("/p2p/{peer}"),
        protocol_binding: LIBP2P_BINDING.to_string(),
        protocol_version: A2A_PROTOCOL_VERSION.to_string(),
    }
}

impl SignedCard {
    /// Signs `card` as card number `seq` of `signer`.
    pub fn sign(
        signer: &dyn StatementSigner,
        card: &AgentCard,
        seq: u64,
        now_ms: u64,
    ) -> Result<Statement, SignError> {
        let body = CardBody {
            seq,
            card: JsonBytes::encode(card),
        };
        Statement::sign(signer, CARD_DOMAIN, &body, now_ms)
    }

    /// Verifies a signed card.
    pub fn open(statement: &Statement) -> Result<Self, CardError> {
        if statement.payload.len() > MAX_CARD_BYTES + 64 {
            return Err(CardError::TooLarge(statement.payload.len()));
        }
        let body: CardBody = statement.open(CARD_DOMAIN)?;
        let card: AgentCard = body.card.decode("agent card")?;
        card.check()?;
        let peer = statement.signer;
        if card.supported_interfaces.first() != Some(&libp2p_interface(&peer)) {
            return Err(CardError::WrongInterface(peer));
        }
        Ok(Self {
            peer,
            seq: body.seq,
            card,
            statement: statement.clone(),
        })
    }
}

/// The latest card of each peer in one room, bounded: a full book takes
/// no new peers (it never evicts a card it holds for a stranger's sake).
#[derive(Debug, Default)]
pub struct CardBook {
    cards: BTreeMap<PeerId, (SignedCard, u64)>,
}

impl CardBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a verified card received at `now_ms` from a member (the caller
    /// checks membership). Returns whether the book changed.
    pub fn insert(&mut self, card: SignedCard, now_ms: u64) -> Result<bool, CardError> {
        match self.cards.get(&card.peer) {
            Some((held, _)) if held.seq >= card.seq => {
                if held.seq == card.seq && held.statement == card.statement {
                    return Ok(false);
                }
                Err(CardError::Stale {
                    peer: card.peer,
                    seq: card.seq,
                })
            }
            Some((_, accepted_at)) if now_ms < accepted_at + MIN_CARD_INTERVAL_MS => {
                Err(CardError::TooFrequent(card.peer))
            }
            None if self.cards.len() >= MAX_CARDS => Err(CardError::Full),
            _ => {
                self.cards.insert(card.peer, (card, now_ms));
                Ok(true)
            }
        }
    }

    /// The card of `peer`.
    pub fn get(&self, peer: &PeerId) -> Option<&SignedCard> {
        self.cards.get(peer).map(|(c, _)| c)
    }

    /// Every card held.
    pub fn cards(&self) -> impl Iterator<Item = &SignedCard> {
        self.cards.values().map(|(c, _)| c)
    }

    /// Peers whose card lists `skill`.
    pub fn with_skill<'a>(&'a self, skill: &'a str) -> impl Iterator<Item = &'a PeerId> + 'a {
        self.cards
            .iter()
            .filter(move |(_, (c, _))| c.card.has_skill(skill))
            .map(|(p, _)| p)
    }

    /// Forgets `peer` (e.g. revoked).
    pub fn remove(&mut self, peer: &PeerId) {
        self.cards.remove(peer);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{
        a2a::{AgentCapabilities, AgentSkill},
        statement::LocalSigner,
    };

    pub(crate) fn card_for(peer: &PeerId, skills: &[&str]) -> AgentCard {
        AgentCard {
            name: format!("agent {peer}"),
            description: "test agent".into(),
            supported_interfaces: vec![libp2p_interface(peer)],
            version: "0.1.0".into(),
            capabilities: AgentCapabilities {
                streaming: Some(true),
                push_notifications: None,
            },
            default_input_modes: vec!["application/json".into()],
            default_output_modes: vec!["application/json".into()],
            skills: skills
                .iter()
                .map(|s| AgentSkill {
                    id: s.to_string(),
                    name: s.to_string(),
                    description: "a tool".into(),
                    tags: vec!["mcp".into()],
                    examples: vec![],
                    input_modes: vec![],
                    output_modes: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn cards_bind_their_signer_and_only_newer_ones_replace() {
        let a = LocalSigner::generate();
        let card = card_for(&a.peer_id(), &["mcp.everything.echo"]);
        let s1 = SignedCard::sign(&a, &card, 1, 0).unwrap();
        let mut book = CardBook::new();
        assert!(book.insert(SignedCard::open(&s1).unwrap(), 0).unwrap());
        assert!(!book.insert(SignedCard::open(&s1).unwrap(), 5).unwrap());
        assert_eq!(
            book.with_skill("mcp.everything.echo").collect::<Vec<_>>(),
            vec![&a.peer_id()]
        );

        let s2 = SignedCard::sign(&a, &card, 2, 10).unwrap();
        assert_eq!(
            book.insert(SignedCard::open(&s2).unwrap(), 10),
            Err(CardError::TooFrequent(a.peer_id()))
        );
        assert!(book.insert(SignedCard::open(&s2).unwrap(), 2_000).unwrap());
        // The old card, replayed, is stale.
        assert!(matches!(
            book.insert(SignedCard::open(&s1).unwrap(), 5_000),
            Err(CardError::Stale { seq: 1, .. })
        ));

        // A card naming someone else's PeerId is refused.
        let b = LocalSigner::generate();
        let stolen = SignedCard::sign(&b, &card, 1, 0).unwrap();
        assert_eq!(
            SignedCard::open(&stolen),
            Err(CardError::WrongInterface(b.peer_id()))
        );
    }

    #[test]
    fn a_full_book_keeps_the_cards_it_holds() {
        let mut book = CardBook::new();
        let signer = LocalSigner::generate();
        let first = SignedCard::open(
            &SignedCard::sign(&signer, &card_for(&signer.peer_id(), &[]), 1, 0).unwrap(),
        )
        .unwrap();
        book.insert(first, 0).unwrap();
        // Fill the book with the same valid card under other peer ids: the
        // book does not check signatures (open does), only bounds.
        let template = book.get(&signer.peer_id()).unwrap().clone();
        for _ in 1..MAX_CARDS {
            let mut c = template.clone();
            c.peer = PeerId::random();
            book.insert(c, 0).unwrap();
        }
        let mut extra = template.clone();
        extra.peer = PeerId::random();
        assert_eq!(book.insert(extra, 0), Err(CardError::Full));
        assert!(book.get(&signer.peer_id()).is_some());
    }
}
