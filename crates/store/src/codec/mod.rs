//! Encodings of what the store writes: bit and varint primitives, the value
//! stream of a chunk, head frames and chunk presence runs.

pub mod bits;
pub mod chunk;
pub mod frame;
pub mod values;
