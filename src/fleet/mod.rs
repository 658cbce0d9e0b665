//! The fleet channel (DESIGN §5): MQTT 3.1.1 to the fleet controller.
//!
//! - [`session`]: the sans-IO MQTT client session (pure core: no I/O, no
//!   clock, no threads).
//! - [`transport`]: `mqtt://` (TCP) and `mqtts://` (rustls, ring provider)
//!   byte streams on the [`crate::reactor`]. Opens one TCP socket per
//!   connection; reads the CA, client certificate and key files (or the
//!   system roots) on every connect.

pub mod session;
pub mod transport;

#[cfg(test)]
pub(crate) mod test_broker;
