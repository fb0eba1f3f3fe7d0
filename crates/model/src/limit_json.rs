//! JSON form of a [`Limit`]: a number of bytes, or the string `"max"`.

use memlens_linux::cgroup::Limit;
use serde::Serializer;

/// Serializes `Option<Limit>`: `null`, `"max"` or a number of bytes.
pub fn serialize<S: Serializer>(limit: &Option<Limit>, s: S) -> Result<S::Ok, S::Error> {
    match limit {
        None => s.serialize_none(),
        Some(Limit::Max) => s.serialize_str("max"),
        Some(Limit::Bytes(bytes)) => s.serialize_u64(*bytes),
    }
}
