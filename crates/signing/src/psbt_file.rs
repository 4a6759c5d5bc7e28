//! PSBT files as wallets write them: binary (BIP-174 magic `psbt\xff`) or
//! base64 text.

use base64::Engine;

/// The magic bytes every binary PSBT starts with.
const MAGIC: &[u8] = b"psbt\xff";

/// Largest PSBT file read: base64 of the largest PSBT a session carries
/// (the node's 1 MiB message limit) with room to spare.
pub const MAX_FILE_BYTES: u64 = 2 << 20;

/// Why a file is not a PSBT.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PsbtFileError {
    /// Neither binary PSBT nor base64 of one.
    #[error("not a PSBT: expected binary (starting with psbt\\xff) or base64 text")]
    NotPsbt,
    /// A file that holds no PSBT.
    #[error("{0} is not a PSBT (binary starting with psbt\\xff, or base64 text); export the transaction from your wallet as a PSBT")]
    NotPsbtFile(String),
    /// A device, a folder or a pipe, not a file.
    #[error("{0} is not a regular file; choose the PSBT file your wallet saved")]
    NotAFile(String),
    /// Larger than any PSBT a session can carry.
    #[error("{path} is larger than {MAX_FILE_BYTES} bytes, more than any PSBT a session can carry; choose the PSBT file your wallet saved")]
    TooLarge {
        /// The file.
        path: String,
    },
    /// The file could not be read.
    #[error("cannot read {path}: {reason}; check the path and its permissions")]
    Unreadable {
        /// The file.
        path: String,
        /// The system's reason.
        reason: String,
    },
}

/// Reads the PSBT file at `path`: a regular file of at most
/// [`MAX_FILE_BYTES`] (checked on the opened file, and the read stops past
/// the limit whatever its size claims), binary or base64.
pub fn read(path: &std::path::Path) -> Result<Vec<u8>, PsbtFileError> {
    use std::io::Read as _;
    let shown = path.display().to_string();
    let unreadable = |e: std::io::Error| PsbtFileError::Unreadable {
        path: shown.clone(),
        reason: e.to_string(),
    };
    // Looked at before opening too: opening a named pipe would wait for a
    // writer.
    if !std::fs::metadata(path).map_err(unreadable)?.is_file() {
        return Err(PsbtFileError::NotAFile(shown));
    }
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(PsbtFileError::NotAFile(shown));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(PsbtFileError::TooLarge { path: shown });
    }
    let mut contents = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut contents)
        .map_err(unreadable)?;
    if contents.len() as u64 > MAX_FILE_BYTES {
        return Err(PsbtFileError::TooLarge { path: shown });
    }
    decode(&contents).map_err(|_| PsbtFileError::NotPsbtFile(shown))
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

    #[test]
    fn only_a_regular_file_of_bounded_size_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let binary = b"psbt\xff\x01\x00rest".to_vec();
        let good = dir.path().join("tx.psbt");
        std::fs::write(&good, to_base64(&binary)).unwrap();
        assert_eq!(read(&good).unwrap(), binary);
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello").unwrap();
        assert!(matches!(read(&text), Err(PsbtFileError::NotPsbtFile(_))));

        // A device that never ends: refused at once, not read.
        assert!(matches!(
            read(std::path::Path::new("/dev/zero")),
            Err(PsbtFileError::NotAFile(_))
        ));
        assert!(matches!(read(dir.path()), Err(PsbtFileError::NotAFile(_))));
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            assert!(matches!(read(&fifo), Err(PsbtFileError::NotAFile(_))));
        }
        let big = dir.path().join("big.psbt");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(MAX_FILE_BYTES + 1).unwrap();
        let err = read(&big).unwrap_err();
        assert!(matches!(err, PsbtFileError::TooLarge { .. }));
        assert!(err
            .to_string()
            .ends_with("choose the PSBT file your wallet saved"));
        let missing = read(&dir.path().join("missing.psbt")).unwrap_err();
        assert!(missing
            .to_string()
            .ends_with("check the path and its permissions"));
    }
}
