//! `conclave-daemon`: what the `conclaved` binary adds to the node library:
//! the signing service ([`signing_control`]) and the CoinJoin service
//! ([`coinjoin_control`], with its command line in [`coinjoin_cli`]) served
//! on the control socket.
#![deny(missing_docs)]

pub mod coinjoin_cli;
pub mod coinjoin_control;
pub mod signing_control;
