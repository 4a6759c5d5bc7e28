//! `conclave-daemon`: what the `conclaved` binary adds to the node library:
//! the signing service served on the control socket ([`signing_control`]).
#![deny(missing_docs)]

pub mod signing_control;
