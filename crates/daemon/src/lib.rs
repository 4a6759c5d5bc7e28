//! `conclave-daemon`: what the `conclaved` binary adds to the node library:
//! the signing service served on the control socket ([`signing_control`]),
//! agent-task rooms ([`rooms_control`]) and their CLI ([`rooms_cli`]).
#![deny(missing_docs)]

pub mod rooms_cli;
pub mod rooms_control;
pub mod signing_control;
