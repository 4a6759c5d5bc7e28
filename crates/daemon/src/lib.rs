//! `conclave-daemon`: what the `conclaved` binary adds to the node library:
//! the signing service ([`signing_control`]), the CoinJoin service
//! ([`coinjoin_control`], with its command line in [`coinjoin_cli`]) and
//! agent-task rooms ([`rooms_control`], with [`rooms_cli`]) served on the
//! control socket, and the configuration check ([`check_config`]).
#![deny(missing_docs)]

pub mod check_config;
pub mod coinjoin_cli;
pub mod coinjoin_control;
pub mod rooms_cli;
pub mod rooms_control;
pub mod signing_control;
