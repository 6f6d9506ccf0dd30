//! MPEG-2 Transport Stream wire layer (ISO/IEC 13818-1).
//!
//! Views over byte buffers, no I/O, no copies: a [`packet::Packet`] is checked once
//! by `new_checked` and its accessors cannot panic afterwards.

pub mod packet;
pub mod pcr;
pub mod pes;
pub mod psi;
