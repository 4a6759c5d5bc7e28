//! Rooms and who is in them: the owner-signed [`RoomDescriptor`], the
//! owner-signed [`MembershipToken`]s and [`Revocation`]s of invite-only
//! rooms, and [`Membership`], which decides for each incoming message
//! whether its sender may do what it asks. Members ignore everyone else.

use std::collections::BTreeMap;

use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};

use crate::{
    ids::{derive_id, RoomId},
    statement::{SignError, Statement, StatementError, StatementSigner},
};

/// Domain of a signed room descriptor.
pub const DESCRIPTOR_DOMAIN: &str = "conclave/rooms/descriptor/v1";
/// Domain of a signed membership token.
pub const TOKEN_DOMAIN: &str = "conclave/rooms/token/v1";
/// Domain of a signed revocation.
pub const REVOCATION_DOMAIN: &str = "conclave/rooms/revocation/v1";
/// Longest room name.
pub const MAX_ROOM_NAME: usize = 128;
/// Most members an invite-only room holds tokens for.
pub const MAX_MEMBERS: usize = 4096;
/// Most revocations a room remembers.
pub const MAX_REVOCATIONS: usize = 4096;

const ROOM_ID_CONTEXT: &str = "conclave rooms room id v1";

/// Who may join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum Policy {
    /// Anyone may take part (the owner may still revoke a peer).
    Open,
    /// Only holders of an owner-signed membership token.
    InviteOnly,
}

/// What a member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Roles {
    /// Propose tasks.
    pub propose: bool,
    /// Bid on and execute tasks.
    pub execute: bool,
    /// Follow tasks and fetch records.
    pub observe: bool,
}

impl Roles {
    /// Every role.
    pub const ALL: Roles = Roles {
        propose: true,
        execute: true,
        observe: true,
    };

    /// Whether `role` is included.
    pub fn allows(&self, role: Role) -> bool {
        match role {
            Role::Propose => self.propose,
            Role::Execute => self.execute,
            Role::Observe => self.observe || self.propose || self.execute,
        }
    }
}

/// One role, as asked for by a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Proposing a task.
    Propose,
    /// Bidding on or executing a task.
    Execute,
    /// Following (cards, records).
    Observe,
}

impl std::str::FromStr for Roles {
    type Err = RoomError;
    /// Parses `propose,execute,observe` (any subset, comma-separated).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut roles = Roles::default();
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "propose" => roles.propose = true,
                "execute" => roles.execute = true,
                "observe" => roles.observe = true,
                other => {
                    return Err(RoomError::Invalid(format!(
                        "unknown role {other:?}: use propose, execute or observe"
                    )))
                }
            }
        }
        Ok(roles)
    }
}

/// Why a room object or a member's message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// The signature or encoding is bad.
    #[error(transparent)]
    Statement(#[from] StatementError),
    /// Signed by someone other than the room's owner.
    #[error("{what} is signed by {signer}, not by the room's owner")]
    NotOwner {
        /// What was signed.
        what: &'static str,
        /// Who signed it.
        signer: PeerId,
    },
    /// For another room.
    #[error("{0} belongs to another room")]
    OtherRoom(&'static str),
    /// Out of bounds or malformed.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The peer holds no valid token for an invite-only room.
    #[error("{0} is not a member of this invite-only room")]
    NotMember(PeerId),
    /// The token lacks the role.
    #[error("{peer} may not {role:?} in this room")]
    RoleMissing {
        /// Who asked.
        peer: PeerId,
        /// What it asked to do.
        role: Role,
    },
    /// The token expired.
    #[error("the membership of {0} expired")]
    Expired(PeerId),
    /// The owner revoked the peer.
    #[error(
        "the membership of {0} was revoked by the room's owner; ask the owner for a new invitation"
    )]
    Revoked(PeerId),
    /// The room holds as many members as it may.
    #[error("the room holds {MAX_MEMBERS} members already")]
    Full,
}

/// What the owner signs to create a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomDescriptor {
    /// The owner.
    pub owner: PeerId,
    /// Creation time (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// Random nonce: two rooms made in one millisecond differ.
    pub nonce: [u8; 16],
    /// A name for people.
    pub name: String,
    /// Who may join.
    pub policy: Policy,
}

impl RoomDescriptor {
    /// The room's id.
    pub fn id(&self) -> RoomId {
        RoomId(derive_id(
            ROOM_ID_CONTEXT,
            &[&self.owner.to_bytes()],
            self.created_at_ms,
            &self.nonce,
        ))
    }

    /// Signs the descriptor (the signer must be the owner).
    pub fn sign(&self, owner: &dyn StatementSigner) -> Result<Statement, SignError> {
        Statement::sign(owner, DESCRIPTOR_DOMAIN, self, self.created_at_ms)
    }

    /// Verifies a signed descriptor: signature, signer = owner, name bounds.
    pub fn open(statement: &Statement) -> Result<Self, RoomError> {
        let descriptor: Self = statement.open(DESCRIPTOR_DOMAIN)?;
        if statement.signer != descriptor.owner {
            return Err(RoomError::NotOwner {
                what: "room descriptor",
                signer: statement.signer,
            });
        }
        if descriptor.name.is_empty() || descriptor.name.len() > MAX_ROOM_NAME {
            return Err(RoomError::Invalid(format!(
                "room names are 1 to {MAX_ROOM_NAME} bytes"
            )));
        }
        Ok(descriptor)
    }
}

/// The owner's invitation of one member (sent sealed to it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipToken {
    /// The room.
    pub room: RoomId,
    /// The member.
    pub member: PeerId,
    /// What it may do.
    pub roles: Roles,
    /// When issued (ms).
    pub issued_at_ms: u64,
    /// When it stops being valid (ms).
    pub expires_at_ms: u64,
}

impl MembershipToken {
    /// Signs the token as the room's owner.
    pub fn sign(&self, owner: &dyn StatementSigner) -> Result<Statement, SignError> {
        Statement::sign(owner, TOKEN_DOMAIN, self, self.issued_at_ms)
    }
}

/// The owner's withdrawal of a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The room.
    pub room: RoomId,
    /// The member.
    pub member: PeerId,
    /// From when (ms): tokens issued before are void, messages after refused.
    pub revoked_at_ms: u64,
}

impl Revocation {
    /// Signs the revocation as the room's owner.
    pub fn sign(&self, owner: &dyn StatementSigner) -> Result<Statement, SignError> {
        Statement::sign(owner, REVOCATION_DOMAIN, self, self.revoked_at_ms)
    }
}

/// Who is in a room and with which roles.
#[derive(Debug, Clone)]
pub struct Membership {
    id: RoomId,
    descriptor: RoomDescriptor,
    descriptor_statement: Statement,
    tokens: BTreeMap<PeerId, (MembershipToken, Statement)>,
    revoked: BTreeMap<PeerId, (u64, Statement)>,
}

impl Membership {
    /// From a signed descriptor.
    pub fn new(descriptor: &Statement) -> Result<Self, RoomError> {
        let d = RoomDescriptor::open(descriptor)?;
        Ok(Self {
            id: d.id(),
            descriptor: d,
            descriptor_statement: descriptor.clone(),
            tokens: BTreeMap::new(),
            revoked: BTreeMap::new(),
        })
    }

    /// The room's id.
    pub fn id(&self) -> RoomId {
        self.id
    }

    /// The room's descriptor.
    pub fn descriptor(&self) -> &RoomDescriptor {
        &self.descriptor
    }

    /// The signed descriptor, to hand to others.
    pub fn descriptor_statement(&self) -> &Statement {
        &self.descriptor_statement
    }

    fn owner_signed(&self, statement: &Statement, what: &'static str) -> Result<(), RoomError> {
        if statement.signer != self.descriptor.owner {
            return Err(RoomError::NotOwner {
                what,
                signer: statement.signer,
            });
        }
        Ok(())
    }

    /// Takes a signed membership token (the member's own, or one the owner
    /// hands around). A later token for the same member replaces an
    /// earlier one; a token issued before the member's revocation is void.
    pub fn add_token(&mut self, statement: &Statement, now_ms: u64) -> Result<PeerId, RoomError> {
        let token: MembershipToken = statement.open(TOKEN_DOMAIN)?;
        self.owner_signed(statement, "membership token")?;
        if token.room != self.id {
            return Err(RoomError::OtherRoom("membership token"));
        }
        if token.expires_at_ms <= now_ms {
            return Err(RoomError::Expired(token.member));
        }
        if let Some((revoked_at, _)) = self.revoked.get(&token.member) {
            if token.issued_at_ms <= *revoked_at {
                return Err(RoomError::Revoked(token.member));
            }
        }
        if let Some((held, _)) = self.tokens.get(&token.member) {
            if held.issued_at_ms >= token.issued_at_ms {
                return Ok(token.member);
            }
        } else if self.tokens.len() >= MAX_MEMBERS {
            return Err(RoomError::Full);
        }
        let member = token.member;
        self.tokens.insert(member, (token, statement.clone()));
        Ok(member)
    }

    /// Takes a signed revocation; the member's later messages are refused.
    pub fn revoke(&mut self, statement: &Statement) -> Result<PeerId, RoomError> {
        let revocation: Revocation = statement.open(REVOCATION_DOMAIN)?;
        self.owner_signed(statement, "revocation")?;
        if revocation.room != self.id {
            return Err(RoomError::OtherRoom("revocation"));
        }
        if revocation.member == self.descriptor.owner {
            return Err(RoomError::Invalid("the owner cannot be revoked".into()));
        }
        let member = revocation.member;
        if !self.revoked.contains_key(&member) && self.revoked.len() >= MAX_REVOCATIONS {
            return Err(RoomError::Full);
        }
        let keep_earliest = match self.revoked.get(&member) {
            Some((at, _)) => *at <= revocation.revoked_at_ms,
            None => false,
        };
        if !keep_earliest {
            self.revoked
                .insert(member, (revocation.revoked_at_ms, statement.clone()));
        }
        if let Some((token, _)) = self.tokens.get(&member) {
            if token.issued_at_ms <= revocation.revoked_at_ms {
                self.tokens.remove(&member);
            }
        }
        Ok(member)
    }

    /// Whether `peer` may act in `role` at `at_ms` (a message's arrival).
    pub fn check(&self, peer: &PeerId, role: Role, at_ms: u64) -> Result<(), RoomError> {
        if *peer == self.descriptor.owner {
            return Ok(());
        }
        if let Some((revoked_at, _)) = self.revoked.get(peer) {
            let readmitted = self
                .tokens
                .get(peer)
                .is_some_and(|(t, _)| t.issued_at_ms > *revoked_at);
            if at_ms >= *revoked_at && !readmitted {
                return Err(RoomError::Revoked(*peer));
            }
        }
        match self.descriptor.policy {
            Policy::Open => Ok(()),
            Policy::InviteOnly => {
                let (token, _) = self.tokens.get(peer).ok_or(RoomError::NotMember(*peer))?;
                if token.expires_at_ms <= at_ms {
                    return Err(RoomError::Expired(*peer));
                }
                if !token.roles.allows(role) {
                    return Err(RoomError::RoleMissing { peer: *peer, role });
                }
                Ok(())
            }
        }
    }

    /// The roles of `peer` now (none if it is not a member).
    pub fn roles_of(&self, peer: &PeerId, at_ms: u64) -> Roles {
        let mut roles = Roles::default();
        for role in [Role::Propose, Role::Execute, Role::Observe] {
            if self.check(peer, role, at_ms).is_ok() {
                match role {
                    Role::Propose => roles.propose = true,
                    Role::Execute => roles.execute = true,
                    Role::Observe => roles.observe = true,
                }
            }
        }
        roles
    }

    /// Members holding tokens (invite-only rooms).
    pub fn token_holders(&self) -> impl Iterator<Item = &PeerId> {
        self.tokens.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::LocalSigner;

    fn room(owner: &LocalSigner, policy: Policy) -> Membership {
        let d = RoomDescriptor {
            owner: owner.peer_id(),
            created_at_ms: 1_000,
            nonce: [1; 16],
            name: "lab".into(),
            policy,
        };
        Membership::new(&d.sign(owner).unwrap()).unwrap()
    }

    fn token(
        owner: &LocalSigner,
        room: RoomId,
        member: PeerId,
        roles: &str,
        issued: u64,
    ) -> Statement {
        MembershipToken {
            room,
            member,
            roles: roles.parse().unwrap(),
            issued_at_ms: issued,
            expires_at_ms: issued + 10_000,
        }
        .sign(owner)
        .unwrap()
    }

    #[test]
    fn the_room_id_binds_owner_time_and_nonce() {
        let owner = LocalSigner::generate();
        let d = RoomDescriptor {
            owner: owner.peer_id(),
            created_at_ms: 5,
            nonce: [0; 16],
            name: "r".into(),
            policy: Policy::Open,
        };
        let mut other = d.clone();
        other.nonce[0] = 1;
        assert_ne!(d.id(), other.id());
        let mut renamed = d.clone();
        renamed.name = "s".into();
        assert_eq!(d.id(), renamed.id(), "the name is not part of the id");

        // A descriptor naming an owner that did not sign it is refused.
        let thief = LocalSigner::generate();
        let forged = Statement::sign(&thief, DESCRIPTOR_DOMAIN, &d, 5).unwrap();
        assert!(matches!(
            Membership::new(&forged),
            Err(RoomError::NotOwner { .. })
        ));
    }

    #[test]
    fn an_invite_only_room_ignores_peers_without_a_token() {
        let owner = LocalSigner::generate();
        let mut room = room(&owner, Policy::InviteOnly);
        let member = LocalSigner::generate().peer_id();
        let stranger = LocalSigner::generate().peer_id();
        assert_eq!(
            room.check(&stranger, Role::Execute, 2_000),
            Err(RoomError::NotMember(stranger))
        );
        room.add_token(&token(&owner, room.id(), member, "execute", 1_500), 2_000)
            .unwrap();
        room.check(&member, Role::Execute, 2_000).unwrap();
        room.check(&member, Role::Observe, 2_000).unwrap();
        assert!(matches!(
            room.check(&member, Role::Propose, 2_000),
            Err(RoomError::RoleMissing { .. })
        ));
        assert_eq!(
            room.check(&member, Role::Execute, 11_500),
            Err(RoomError::Expired(member))
        );
        // A token the stranger signed for itself is refused.
        let forger = LocalSigner::generate();
        let forged = token(&forger, room.id(), forger.peer_id(), "execute", 1_500);
        assert!(matches!(
            room.add_token(&forged, 2_000),
            Err(RoomError::NotOwner { .. })
        ));
        assert!(room.check(&forger.peer_id(), Role::Execute, 2_000).is_err());
    }

    #[test]
    fn a_revoked_members_later_messages_are_refused() {
        let owner = LocalSigner::generate();
        let mut room = room(&owner, Policy::InviteOnly);
        let member = LocalSigner::generate().peer_id();
        room.add_token(
            &token(&owner, room.id(), member, "propose,execute", 1_500),
            1_600,
        )
        .unwrap();
        let revocation = Revocation {
            room: room.id(),
            member,
            revoked_at_ms: 3_000,
        }
        .sign(&owner)
        .unwrap();
        room.revoke(&revocation).unwrap();
        assert_eq!(
            room.check(&member, Role::Execute, 3_001),
            Err(RoomError::Revoked(member))
        );
        // The old token, handed in again, does not readmit the member.
        assert_eq!(
            room.add_token(&token(&owner, room.id(), member, "execute", 1_500), 3_100),
            Err(RoomError::Revoked(member))
        );
        // Open rooms honour revocations too.
        let mut open = self::room(&owner, Policy::Open);
        let peer = LocalSigner::generate().peer_id();
        open.check(&peer, Role::Propose, 10).unwrap();
        let r = Revocation {
            room: open.id(),
            member: peer,
            revoked_at_ms: 20,
        };
        open.revoke(&r.sign(&owner).unwrap()).unwrap();
        assert_eq!(
            open.check(&peer, Role::Propose, 21),
            Err(RoomError::Revoked(peer))
        );
        // Only the owner revokes.
        let rogue = LocalSigner::generate();
        let r = Revocation {
            room: open.id(),
            member: owner.peer_id(),
            revoked_at_ms: 20,
        };
        assert!(open.revoke(&r.sign(&rogue).unwrap()).is_err());
    }
}
