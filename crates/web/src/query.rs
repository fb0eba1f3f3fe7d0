//! The query string of a request: `a=1&b=x%20y`, percent-decoded, and its
//! typed parameters with errors naming them.

use crate::ApiError;

/// A parsed query string (repeated keys kept in order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `a=1&b=two` (`+` is a space, `%XX` a byte; invalid UTF-8 is
    /// replaced).
    pub fn parse(text: &str) -> Query {
        Query(
            text.split('&')
                .filter(|part| !part.is_empty())
                .map(|part| {
                    let (key, value) = part.split_once('=').unwrap_or((part, ""));
                    (decode(key), decode(value))
                })
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `key` as an integer, if given.
    pub(crate) fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(text) => {
                text.trim().parse::<i64>().map(Some).map_err(|_| {
                    ApiError::BadRequest(format!("{key}={text:?}: expected an integer"))
                })
            }
        }
    }

    /// `key` as an integer, required.
    pub(crate) fn required_int(&self, key: &str) -> Result<i64, ApiError> {
        self.int(key)?
            .ok_or_else(|| ApiError::BadRequest(format!("{key} is required")))
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_keeps_repeats() {
        let q = Query::parse("s=1%3Arss_bytes&s=2:usage_bytes&x=a+b&bad=%zz&end=%4&u=%C3%A9%");
        assert_eq!(
            q.all("s").collect::<Vec<_>>(),
            ["1:rss_bytes", "2:usage_bytes"]
        );
        assert_eq!(q.get("x"), Some("a b"));
        assert_eq!(q.get("bad"), Some("%zz"));
        assert_eq!(q.get("end"), Some("%4"));
        assert_eq!(q.get("u"), Some("é%"));
        assert!(matches!(q.int("x"), Err(ApiError::BadRequest(m)) if m.contains("x=")));
        assert_eq!(Query::parse("at=12").int("at").unwrap(), Some(12));
        assert!(Query::parse("").required_int("at").is_err());
    }
}
