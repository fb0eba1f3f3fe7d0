//! Credentials from a MySQL client option file (`~/.my.cnf`): the `[client]`
//! group's `user`, `password`, `socket`, `host`, `port`.

/// What the `[client]` group gave (each key optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientOptions {
    /// `user`.
    pub user: Option<String>,
    /// `password`.
    pub password: Option<String>,
    /// `socket`.
    pub socket: Option<String>,
    /// `host`.
    pub host: Option<String>,
    /// `port`.
    pub port: Option<u16>,
}

/// Parses an option file's text; only the `[client]` group is read (other groups,
/// `[mysql]` too, are ignored). Quotes around values are removed. A bad `port` is an error
/// naming the line.
pub fn parse_client_options(text: &str) -> Result<ClientOptions, String> {
    let mut out = ClientOptions::default();
    let mut in_client = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(group) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_client = group.trim() == "client";
            continue;
        }
        if !in_client {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        let key = key.trim().replace('-', "_");
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value)
            .to_string();
        match key.as_str() {
            "user" => out.user = Some(value),
            "password" => out.password = Some(value),
            "socket" => out.socket = Some(value),
            "host" => out.host = Some(value),
            "port" => {
                out.port =
                    Some(value.parse().map_err(|_| {
                        format!("line {}: port {value:?} is not a port number", n + 1)
                    })?)
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_group_only() {
        let text = "[mysqld]\nuser=mysql\n[client]\nuser = memlens\npassword=\"p w\"\nsocket=/run/mysqld/mysqld.sock\nport=3307\n[mysql]\nuser=other\n";
        let o = parse_client_options(text).unwrap();
        assert_eq!(o.user.as_deref(), Some("memlens"));
        assert_eq!(o.password.as_deref(), Some("p w"));
        assert_eq!(o.socket.as_deref(), Some("/run/mysqld/mysqld.sock"));
        assert_eq!(o.port, Some(3307));
        let err = parse_client_options("[client]\nport=abc\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }
}
