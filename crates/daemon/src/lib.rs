//! `conclave-daemon`: what the `conclaved` and `conclavectl` binaries share
//! beyond the node library: the signing service served on the control socket
//! ([`signing_control`]) and the PSBT file handling of the command line
//! ([`psbt_file`]).
#![deny(missing_docs)]

pub mod psbt_file;
pub mod signing_control;
