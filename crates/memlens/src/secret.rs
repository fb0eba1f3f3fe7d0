//! Secrets in the config (passwords): `--print-config` shows that one is
//! set, never its value, as Prometheus shows its own (`<secret>`).

/// Serializes a set secret as `"<secret>"` (for `serialize_with`).
pub fn serialize<S: serde::Serializer>(
    secret: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_str("<secret>"),
        None => serializer.serialize_none(),
    }
}
