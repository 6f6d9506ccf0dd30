//! The I/O layer: destination URLs, socket2 multicast sockets, the clock, timers and the
//! drivers that run the sans-IO core. Nothing outside `net` reads a clock or touches a socket.

pub mod clock;
pub mod doorbell;
pub mod engine;
pub mod failover;
pub mod faults;
pub mod http;
pub mod notify;
pub mod priority;
#[cfg(test)]
mod priority_engine_tests;
pub mod recv_socket;
mod ring;
pub mod sockets;
pub mod url;
