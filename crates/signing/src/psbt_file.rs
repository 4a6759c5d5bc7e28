//! PSBT files as wallets write them: binary (BIP-174 magic `psbt\xff`) or
//! base64 text.

use base64::Engine;

/// The magic bytes every binary PSBT starts with.
const MAGIC: &[u8] = b"psbt\xff";

/// Why a file is not a PSBT.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PsbtFileError {
    /// Neither binary PSBT nor base64 of one.
    #[error("not a PSBT: expected binary (starting with psbt\\xff) or base64 text")]
    NotPsbt,
}

/// The binary PSBT in `contents` (binary or base64).
pub fn decode(contents: &[u8]) -> Result<Vec<u8>, PsbtFileError> {
    if contents.starts_with(MAGIC) {
        return Ok(contents.to_vec());
    }
    let text: Vec<u8> = contents
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| PsbtFileError::NotPsbt)?;
    if bytes.starts_with(MAGIC) {
        Ok(bytes)
    } else {
        Err(PsbtFileError::NotPsbt)
    }
}

/// Base64 of binary data (how PSBTs cross the control socket).
pub fn to_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Binary data from base64.
pub fn from_base64(text: &str) -> Result<Vec<u8>, PsbtFileError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| PsbtFileError::NotPsbt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_base64_files_decode_to_the_same_psbt() {
        let binary = b"psbt\xff\x01\x00rest".to_vec();
        assert_eq!(decode(&binary).unwrap(), binary);
        let text = format!("{}\n", to_base64(&binary));
        assert_eq!(decode(text.as_bytes()).unwrap(), binary);
        assert_eq!(from_base64(&to_base64(&binary)).unwrap(), binary);
    }

    #[test]
    fn other_files_are_refused() {
        assert_eq!(decode(b"hello"), Err(PsbtFileError::NotPsbt));
        assert_eq!(
            decode(to_base64(b"not a psbt").as_bytes()),
            Err(PsbtFileError::NotPsbt)
        );
        assert_eq!(decode(b""), Err(PsbtFileError::NotPsbt));
    }
}
