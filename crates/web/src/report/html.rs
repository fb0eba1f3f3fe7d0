//! The report's page: inlined styles and scripts allowed by their SHA-256
//! in a `<meta>` CSP, the data as gzipped base64 in a `<pre hidden>` (text,
//! never markup: base64 has no `<` or `&`), the heap profile likewise.

use super::encode::{base64, gzip, sha256, unbase64};
use super::Report;
use serde_json::Value;

/// The `id` of the element holding the embedded heap profile (base64 of the
/// gzipped protobuf, as `go tool pprof` reads it).
pub const PROFILE_ELEMENT_ID: &str = "memlens-profile";

const DATA_ELEMENT_ID: &str = "memlens-data";

const STYLES: &[&str] = &[
    include_str!("../../assets/vendor/uplot/uPlot.min.css"),
    include_str!("../../assets/app.css"),
];

const SCRIPTS: &[&str] = &[
    include_str!("../../assets/vendor/uplot/uPlot.iife.min.js"),
    include_str!("../../assets/common.js"),
    include_str!("../../assets/flame.js"),
    include_str!("../../assets/report.js"),
];

const BODY: &str = include_str!("../../assets/report-body.html");

fn hash(text: &str) -> String {
    format!("'sha256-{}'", base64(&sha256(text.as_bytes())))
}

/// The page's Content-Security-Policy: only the inlined scripts and styles
/// (by hash), images from `data:`/`blob:`, no connection, no form, no base.
pub fn content_security_policy() -> String {
    let scripts: Vec<String> = SCRIPTS.iter().map(|s| hash(s)).collect();
    let styles: Vec<String> = STYLES.iter().map(|s| hash(s)).collect();
    format!(
        "default-src 'none'; script-src {}; style-src {}; img-src data: blob:; \
         connect-src 'none'; base-uri 'none'; form-action 'none'",
        scripts.join(" "),
        styles.join(" ")
    )
}

fn escape_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page for `data`, with the heap profile `(id, bytes)` embedded.
pub(super) fn page(title: &str, data: &Value, profile: Option<(i64, &[u8])>) -> Report {
    let packed = base64(&gzip(data.to_string().as_bytes()));
    let profile = profile.map(|(id, bytes)| {
        let gz = if bytes.starts_with(&[0x1f, 0x8b]) {
            bytes.to_vec()
        } else {
            gzip(bytes)
        };
        (id, base64(&gz))
    });
    let mut html = String::with_capacity(packed.len() + 200_000);
    html.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str(&format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\n",
        content_security_policy()
    ));
    html.push_str("<link rel=\"icon\" href=\"data:,\">\n");
    html.push_str(&format!(
        "<title>memlens report: {}</title>\n",
        escape_text(title)
    ));
    for style in STYLES {
        html.push_str(&format!("<style>{style}</style>\n"));
    }
    for script in SCRIPTS {
        html.push_str(&format!("<script>{script}</script>\n"));
    }
    html.push_str("</head>\n<body>\n");
    html.push_str(BODY);
    html.push_str(&format!(
        "<pre hidden id=\"{DATA_ELEMENT_ID}\">{packed}</pre>\n"
    ));
    let profile_bytes = match &profile {
        Some((id, b64)) => {
            html.push_str(&format!(
                "<pre hidden id=\"{PROFILE_ELEMENT_ID}\" data-profile-id=\"{id}\">{b64}</pre>\n"
            ));
            b64.len()
        }
        None => 0,
    };
    html.push_str("</body>\n</html>\n");
    Report {
        html,
        profile_bytes,
        data_bytes: packed.len(),
    }
}

/// The heap profile embedded in a report (gzipped protobuf), read back.
pub fn extract_profile(html: &str) -> Result<Vec<u8>, String> {
    let open = format!("id=\"{PROFILE_ELEMENT_ID}\"");
    let start = html
        .find(&open)
        .ok_or_else(|| "no embedded heap profile in this file (not a memlens report, or no heap profile was kept)".to_string())?;
    let text = &html[start..];
    let body = &text[text.find('>').ok_or("an unterminated profile element")? + 1..];
    let end = body
        .find("</pre>")
        .ok_or("an unterminated profile element")?;
    unbase64(&body[..end]).ok_or_else(|| "the embedded profile is not base64".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_inlined_script_or_style_can_close_its_element_early() {
        for text in SCRIPTS.iter().chain(STYLES) {
            assert!(!text.to_ascii_lowercase().contains("</script"));
            assert!(!text.to_ascii_lowercase().contains("</style"));
        }
    }

    #[test]
    fn the_csp_has_a_hash_per_inlined_script_and_no_unsafe_inline() {
        let csp = content_security_policy();
        assert_eq!(
            csp.matches("'sha256-").count(),
            SCRIPTS.len() + STYLES.len()
        );
        assert!(!csp.contains("unsafe"));
        assert!(csp.contains("connect-src 'none'"));
    }

    #[test]
    fn the_embedded_profile_reads_back_and_strings_stay_text() {
        let data = serde_json::json!({"title": "<script>alert(1)</script>"});
        let report = page(
            "<img src=x onerror=alert(1)>",
            &data,
            Some((7, b"\x1f\x8bprofile")),
        );
        assert_eq!(extract_profile(&report.html).unwrap(), b"\x1f\x8bprofile");
        assert!(!report.html.contains("<img src=x"));
        assert!(!report.html.contains("alert(1)</script>"));
        assert_eq!(report.html.matches("<script>").count(), SCRIPTS.len());
    }
}
