//! 24-hex-digit identifiers (ObjectId-like) used by the Atlas and Ops Manager families.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

/// A 12-byte identifier written as 24 lowercase hexadecimal digits, as Atlas ids are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId([u8; 12]);

/// Why a string is not an [`ObjectId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseObjectIdError {
    #[error("must be exactly 24 characters, found {0}")]
    Length(usize),
    #[error("must contain only lowercase hexadecimal digits (0-9, a-f)")]
    NotLowerHex,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl ObjectId {
    /// A new id: 4 bytes of seconds since the epoch, 5 random bytes and a 3-byte counter,
    /// the MongoDB layout, so ids sort roughly by creation time and never collide in one process.
    pub fn generate(unix_seconds: i64) -> Self {
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&(unix_seconds as u32).to_be_bytes());
        let random: [u8; 5] = rand::random();
        bytes[4..9].copy_from_slice(&random);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        bytes[9..].copy_from_slice(&count.to_be_bytes()[1..]);
        ObjectId(bytes)
    }

    pub fn from_bytes(bytes: [u8; 12]) -> Self {
        ObjectId(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 12] {
        &self.0
    }
}

impl FromStr for ObjectId {
    type Err = ParseObjectIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 24 {
            return Err(ParseObjectIdError::Length(s.chars().count()));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ParseObjectIdError::NotLowerHex);
        }
        let mut bytes = [0u8; 12];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| ParseObjectIdError::NotLowerHex)?;
        Ok(ObjectId(bytes))
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0u8; 24];
        hex::encode_to_slice(self.0, &mut text).expect("12 bytes are 24 hex digits");
        f.write_str(std::str::from_utf8(&text).expect("hex digits are ASCII"))
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_documented_example() {
        let id: ObjectId = "32b6e34b3d91647abb20e7b8".parse().unwrap();
        assert_eq!(id.to_string(), "32b6e34b3d91647abb20e7b8");
    }

    #[test]
    fn rejects_uppercase_and_wrong_length() {
        assert_eq!(
            "32B6E34B3D91647ABB20E7B8".parse::<ObjectId>(),
            Err(ParseObjectIdError::NotLowerHex)
        );
        assert_eq!(
            "abc".parse::<ObjectId>(),
            Err(ParseObjectIdError::Length(3))
        );
        assert_eq!(
            "zzzzzzzzzzzzzzzzzzzzzzzz".parse::<ObjectId>(),
            Err(ParseObjectIdError::NotLowerHex)
        );
    }

    #[test]
    fn generated_ids_are_distinct() {
        let a = ObjectId::generate(1_700_000_000);
        let b = ObjectId::generate(1_700_000_000);
        assert_ne!(a, b);
        assert!(a
            .to_string()
            .starts_with(&format!("{:08x}", 1_700_000_000u32)));
    }

    proptest! {
        #[test]
        fn round_trips_any_bytes(bytes in any::<[u8; 12]>()) {
            let id = ObjectId::from_bytes(bytes);
            prop_assert_eq!(id.to_string().parse::<ObjectId>().unwrap(), id);
        }

        #[test]
        fn parse_accepts_exactly_the_spec_pattern(s in "\\PC{0,30}") {
            let matches = s.len() == 24 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            prop_assert_eq!(s.parse::<ObjectId>().is_ok(), matches);
        }
    }
}
