//! Room and task ids: BLAKE3 over who made them, when, and a random nonce.
//! Hex in JSON and text, 32 raw bytes in binary encodings.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// An id that is not 64 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {text:?}: expected 64 hex characters")]
pub struct InvalidId {
    /// Which kind of id.
    pub what: &'static str,
    /// What was given.
    pub text: String,
}

macro_rules! id_type {
    ($name:ident, $what:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The id's bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &hex::encode(self.0)[..16])
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let invalid = || InvalidId {
                    what: $what,
                    text: s.to_string(),
                };
                let bytes = hex::decode(s.trim()).map_err(|_| invalid())?;
                Ok(Self(bytes.try_into().map_err(|_| invalid())?))
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_string())
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    String::deserialize(d)?
                        .parse()
                        .map_err(serde::de::Error::custom)
                } else {
                    Ok(Self(<[u8; 32]>::deserialize(d)?))
                }
            }
        }
    };
}

id_type!(
    RoomId,
    "room id",
    "A room's id: BLAKE3 over its owner, creation time and nonce."
);
id_type!(
    TaskId,
    "task id",
    "A task's id: BLAKE3 over its room, proposer, creation time and nonce."
);

/// BLAKE3 (keyed by `context`) over a PeerId, a time and a nonce, plus
/// any extra fields, each length-prefixed.
pub(crate) fn derive_id(context: &str, fields: &[&[u8]], at_ms: u64, nonce: &[u8; 16]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(context);
    for field in fields {
        h.update(&(field.len() as u64).to_le_bytes());
        h.update(field);
    }
    h.update(&at_ms.to_le_bytes());
    h.update(nonce);
    *h.finalize().as_bytes()
}

/// 16 random bytes.
pub fn random_nonce() -> [u8; 16] {
    let mut nonce = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_in_json_and_bytes_in_postcard() {
        let id = TaskId([0xab; 32]);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", "ab".repeat(32)));
        assert_eq!(serde_json::from_str::<TaskId>(&json).unwrap(), id);
        let bin = postcard::to_stdvec(&id).unwrap();
        assert_eq!(bin.len(), 32);
        assert_eq!(postcard::from_bytes::<TaskId>(&bin).unwrap(), id);
        assert!("abc".parse::<RoomId>().is_err());
    }
}
