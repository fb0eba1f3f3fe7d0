//! Encodings of what the store writes: bit and varint primitives
//! ([`bits`]), the value stream of a chunk ([`values`]: exact scaled
//! integers with delta-of-delta codes, Gorilla XOR for other floats), chunks
//! with their presence runs and the shared group timestamps ([`chunk`]), and
//! head frames ([`frame`]: one committed instant, values coded against the
//! series' previous value in the head). All decoders return an error, never
//! panic, on any input.

pub mod bits;
pub mod chunk;
pub mod frame;
pub mod values;
