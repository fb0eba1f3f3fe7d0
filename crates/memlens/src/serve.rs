//! `memlens serve --data DIR`: the web dashboard over a recorded history
//! (also one an agent is writing), without the agent. Read-only; loopback by
//! default, a bearer token required off loopback (as `watch --listen`).

use crate::watch::{default_data_dir, signals};
use anyhow::{bail, Context};
use memlens_export::exporter::{listen_addr, read_token};
use memlens_web::server::{self, ServerConfig};
use std::path::PathBuf;
use std::time::Duration;

/// Options of `memlens serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The history's directory [default: /var/lib/memlens for root,
    /// ~/.local/state/memlens otherwise].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// Serve on PORT (loopback) or HOST:PORT; port 0 picks a free one.
    #[arg(long, value_name = "[HOST:]PORT", default_value = "127.0.0.1:9465")]
    pub listen: String,

    /// A file holding the bearer token (required off loopback): API clients
    /// send `Authorization: Bearer TOKEN`, a browser signs in once at /login.
    #[arg(long, value_name = "FILE")]
    pub bearer_token_file: Option<PathBuf>,
}

/// Serves until SIGINT / SIGTERM.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let data = args.data.clone().unwrap_or_else(default_data_dir);
    if !data.join(memlens_store::DB_FILE).exists() {
        bail!(
            "{}: no history here (expected {} written by `memlens watch --data DIR`)",
            data.display(),
            memlens_store::DB_FILE
        );
    }
    // Refuse a history this version cannot read now rather than on every request.
    memlens_store::Store::open_read_only(&data)
        .with_context(|| format!("cannot read the history in {}", data.display()))?;
    let addr = listen_addr(&args.listen).map_err(anyhow::Error::msg)?;
    let token = read_token(args.bearer_token_file.as_deref())?;
    if !addr.ip().is_loopback() && token.is_none() {
        bail!(
            "refusing to serve on {addr}: it is not a loopback address and no bearer token \
             is set (--bearer-token-file FILE, or listen on 127.0.0.1)"
        );
    }
    signals::install().context("cannot install the SIGINT/SIGTERM handler")?;
    let bound = server::start(ServerConfig {
        addr,
        token,
        metrics: None,
        data_dir: Some(data.clone()),
    })
    .with_context(|| format!("cannot listen on {addr}"))?;
    println!(
        "memlens: serving the history in {} on http://{bound}/",
        data.display()
    );
    while !signals::stop_requested() {
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}
