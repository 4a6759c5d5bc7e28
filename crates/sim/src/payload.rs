//! The workload's payload format: an ASCII header with run, sequence number,
//! publisher and publish timestamp, padded to the requested size. ASCII so
//! that the same bytes pass through the daemon's text-only control socket in
//! process mode. Pure.

use rand::Rng;

/// First bytes of every valid payload.
pub const MAGIC: &str = "CVS1";
/// Smallest payload that holds the longest header.
pub const MIN_SIZE: usize = 64;
/// Padding byte.
const PAD: u8 = b'.';

/// What a valid payload says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Random id of the run (so that runs never share message ids).
    pub run: u32,
    /// Sequence number within the run.
    pub seq: u32,
    /// Index of the publishing node.
    pub publisher: u32,
    /// Publish time in microseconds on the run's clock.
    pub sent_us: u64,
}

/// Why bytes are not a valid payload.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    /// The size asked for cannot hold the header.
    #[error("payload size {size} is below the minimum of {MIN_SIZE} bytes")]
    TooSmall {
        /// Requested size.
        size: usize,
    },
    /// The bytes do not start with the magic and four numbers.
    #[error("not a simulator payload: {0}")]
    Malformed(&'static str),
    /// A valid payload of another run.
    #[error("payload of run {found:08x}, expected {expected:08x}")]
    ForeignRun {
        /// Run id found.
        found: u32,
        /// Our run id.
        expected: u32,
    },
}

/// Encodes `header` padded to exactly `size` bytes.
pub fn encode(header: &Header, size: usize) -> Result<Vec<u8>, PayloadError> {
    if size < MIN_SIZE {
        return Err(PayloadError::TooSmall { size });
    }
    let mut bytes = format!(
        "{MAGIC} {:08x} {} {} {} ",
        header.run, header.seq, header.publisher, header.sent_us
    )
    .into_bytes();
    debug_assert!(bytes.len() <= MIN_SIZE);
    bytes.resize(size, PAD);
    Ok(bytes)
}

/// Decodes a payload of run `run`.
pub fn decode(bytes: &[u8], run: u32) -> Result<Header, PayloadError> {
    let head = &bytes[..bytes.len().min(MIN_SIZE)];
    let text = std::str::from_utf8(head)
        .or_else(|e| std::str::from_utf8(&head[..e.valid_up_to()]))
        .map_err(|_| PayloadError::Malformed("not text"))?;
    let mut fields = text.split(' ');
    if fields.next() != Some(MAGIC) {
        return Err(PayloadError::Malformed("no magic"));
    }
    let found = fields
        .next()
        .and_then(|f| u32::from_str_radix(f, 16).ok())
        .ok_or(PayloadError::Malformed("bad run id"))?;
    let mut number = |what| {
        fields
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or(PayloadError::Malformed(what))
    };
    let seq = number("bad sequence number")?;
    let publisher = number("bad publisher")?;
    let sent_us = number("bad timestamp")?;
    if fields.next().is_none() {
        return Err(PayloadError::Malformed("truncated header"));
    }
    if found != run {
        return Err(PayloadError::ForeignRun {
            found,
            expected: run,
        });
    }
    Ok(Header {
        run,
        seq: u32::try_from(seq).map_err(|_| PayloadError::Malformed("bad sequence number"))?,
        publisher: u32::try_from(publisher)
            .map_err(|_| PayloadError::Malformed("bad publisher"))?,
        sent_us,
    })
}

/// `size` random lowercase letters: the right size, never a valid payload,
/// and still text for the control socket.
pub fn malformed(size: usize, rng: &mut impl Rng) -> Vec<u8> {
    (0..size).map(|_| rng.gen_range(b'a'..=b'z')).collect()
}

/// An oversized message of `size` bytes.
pub fn oversized(size: usize) -> Vec<u8> {
    vec![b'X'; size]
}

#[cfg(test)]
mod tests {
    use rand::{rngs::StdRng, SeedableRng};

    use super::*;

    #[test]
    fn round_trip_at_exact_size() {
        let h = Header {
            run: 0xdead_beef,
            seq: u32::MAX,
            publisher: 999,
            sent_us: u64::MAX,
        };
        for size in [MIN_SIZE, 1024, 70_000] {
            let bytes = encode(&h, size).unwrap();
            assert_eq!(bytes.len(), size);
            assert_eq!(decode(&bytes, h.run).unwrap(), h);
        }
    }

    #[test]
    fn too_small_is_refused() {
        let h = Header {
            run: 1,
            seq: 1,
            publisher: 1,
            sent_us: 1,
        };
        assert_eq!(
            encode(&h, MIN_SIZE - 1),
            Err(PayloadError::TooSmall { size: MIN_SIZE - 1 })
        );
    }

    #[test]
    fn garbage_and_other_runs_are_rejected() {
        let mut rng = StdRng::seed_from_u64(1);
        assert!(decode(&malformed(1024, &mut rng), 1).is_err());
        assert!(decode(&oversized(100), 1).is_err());
        assert!(decode(b"", 1).is_err());
        assert!(decode(b"CVS1 00000001 5", 1).is_err());
        let h = Header {
            run: 2,
            seq: 1,
            publisher: 0,
            sent_us: 10,
        };
        let bytes = encode(&h, 128).unwrap();
        assert_eq!(
            decode(&bytes, 1),
            Err(PayloadError::ForeignRun {
                found: 2,
                expected: 1
            })
        );
        let mut binary = bytes.clone();
        binary[3] = 0xff;
        assert!(decode(&binary, 2).is_err());
    }
}
