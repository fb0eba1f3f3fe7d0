//! The pages and their assets, embedded in the binary (`include_bytes!`):
//! no CDN, no build step. The chart library is uPlot, vendored from npm
//! (`assets/vendor/uplot/`: its LICENSE and VERSION next to it): 51 KB
//! minified, no dependencies, draws 100k points on a canvas in a few ms and
//! syncs cursors across charts, which is what aligned time charts need.

use crate::Response;

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../assets/overview.html"),
    },
    Asset {
        path: "/process",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../assets/process.html"),
    },
    Asset {
        path: "/profiles",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../assets/profiles.html"),
    },
    Asset {
        path: "/assets/flame.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/flame.js"),
    },
    Asset {
        path: "/assets/profiles.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/profiles.js"),
    },
    Asset {
        path: "/assets/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/app.css"),
    },
    Asset {
        path: "/assets/common.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/common.js"),
    },
    Asset {
        path: "/assets/overview.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/overview.js"),
    },
    Asset {
        path: "/assets/process.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/process.js"),
    },
    Asset {
        path: "/assets/uplot.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/vendor/uplot/uPlot.iife.min.js"),
    },
    Asset {
        path: "/assets/uplot.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/vendor/uplot/uPlot.min.css"),
    },
    Asset {
        path: "/assets/uplot-LICENSE.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../assets/vendor/uplot/LICENSE"),
    },
];

/// The login page (off loopback, before the cookie is set).
pub const LOGIN_PAGE: &[u8] = include_bytes!("../assets/login.html");

/// The embedded file served at `path`, if there is one.
pub(crate) fn page_or_asset(path: &str) -> Option<Response> {
    ASSETS.iter().find(|a| a.path == path).map(|a| Response {
        status: 200,
        content_type: a.content_type,
        body: a.body.to_vec(),
        headers: vec![("Cache-Control", "no-cache".to_string())],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_page_has_an_inline_script_or_handler() {
        for a in ASSETS
            .iter()
            .filter(|a| a.content_type.starts_with("text/html"))
        {
            let text = std::str::from_utf8(a.body).unwrap();
            for tag in text.split("<script").skip(1) {
                let open = &tag[..tag.find('>').unwrap()];
                assert!(open.contains("src="), "{}: inline script {open}", a.path);
            }
            let handler = text.split(" on").skip(1).any(|rest| {
                let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
                !name.is_empty() && rest[name.len()..].starts_with('=')
            });
            assert!(!handler, "{}: an inline event handler", a.path);
            assert!(!text.contains("style="), "{}: an inline style", a.path);
        }
    }

    #[test]
    fn scripts_never_parse_html_from_data() {
        for a in ASSETS
            .iter()
            .filter(|a| a.path.ends_with(".js") && !a.path.contains("uplot"))
        {
            let text = std::str::from_utf8(a.body).unwrap();
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!text.contains(sink), "{} uses {sink}", a.path);
            }
        }
    }
}
