//! What the notifiers send (pure: JSON out).
//!
//! - [`alertmanager`]: the body of Alertmanager's `POST /api/v2/alerts`, a
//!   list of `{labels, annotations, startsAt, endsAt, generatorURL}`; the
//!   evidence and the profiles' commands go into annotations (`evidence`,
//!   `profiles`), since Alertmanager keeps only strings, and the agent's
//!   dashboard page of the target, when it serves one, as `generatorURL`
//!   and the `dashboard` annotation;
//! - [`webhook`]: memlens's webhook body (docs/alerts.md), one change with
//!   its alert's evidence as numbers with units.

use super::state::{Alert, Change};
use serde_json::{json, Value};

/// `ms` since the Unix epoch as RFC 3339 UTC (`2026-12-06T05:04:03.210Z`).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// The evidence as one line: `name=value unit, ...`.
pub fn evidence_text(alert: &Alert) -> String {
    alert
        .condition
        .evidence
        .iter()
        .map(|q| {
            let value = if q.value.fract() == 0.0 && q.value.abs() < 1e15 {
                format!("{}", q.value as i64)
            } else {
                format!("{:.4}", q.value)
            };
            format!(
                "{}={value}{}{}",
                q.name,
                if q.unit.is_empty() { "" } else { " " },
                q.unit
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The profiles' commands as one line: `heap: memlens profiles --id 3; ...`.
pub fn profiles_text(alert: &Alert) -> String {
    alert
        .condition
        .profiles
        .iter()
        .map(|p| format!("{}: {}", p.kind, p.command()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Alertmanager's alert objects: firing ones with `endsAt` at `ends_at_ms`
/// (a few re-send intervals ahead: Alertmanager resolves them by itself if
/// the agent dies), resolved ones with their resolution time.
pub fn alertmanager<'a>(alerts: impl IntoIterator<Item = &'a Alert>, ends_at_ms: i64) -> Value {
    let list: Vec<Value> = alerts
        .into_iter()
        .map(|a| {
            let mut annotations = a.condition.annotations.clone();
            let evidence = evidence_text(a);
            if !evidence.is_empty() {
                annotations.insert("evidence".into(), evidence);
            }
            let profiles = profiles_text(a);
            if !profiles.is_empty() {
                annotations.insert("profiles".into(), profiles);
            }
            if let Some(url) = &a.condition.dashboard_url {
                annotations.insert("dashboard".into(), url.clone());
            }
            let starts = a.firing_since_ms.unwrap_or(a.active_since_ms);
            let mut alert = json!({
                "labels": a.labels(),
                "annotations": annotations,
                "startsAt": rfc3339(starts),
                "endsAt": rfc3339(a.resolved_at_ms.unwrap_or(ends_at_ms)),
            });
            if let Some(url) = &a.condition.dashboard_url {
                alert["generatorURL"] = json!(url);
            }
            alert
        })
        .collect();
    Value::Array(list)
}

/// The webhook body of one change (docs/alerts.md, "Built-in alerting").
pub fn webhook(change: &Change, sender: &str) -> Value {
    let (status, a) = match change {
        Change::Fired(a) => ("firing", a),
        Change::Inhibited(a) => ("inhibited", a),
        Change::Resolved(a) => ("resolved", a),
    };
    let evidence: Vec<Value> = a
        .condition
        .evidence
        .iter()
        .map(|q| json!({"name": q.name, "value": q.value, "unit": q.unit}))
        .collect();
    let profiles: Vec<Value> = a
        .condition
        .profiles
        .iter()
        .map(|p| json!({"id": p.id, "kind": p.kind, "ts_ms": p.ts_ms, "command": p.command()}))
        .collect();
    json!({
        "version": 1,
        "sender": sender,
        "status": status,
        "alert": {
            "labels": a.labels(),
            "annotations": a.condition.annotations,
            "evidence": evidence,
            "profiles": profiles,
            "dashboard_url": a.condition.dashboard_url,
            "starts_at": a.firing_since_ms.map(rfc3339),
            "ends_at": a.resolved_at_ms.map(rfc3339),
            "inhibited_by": a.inhibited_by,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // `date -u -d @1796533443.21 +%FT%T.%3NZ`
        assert_eq!(rfc3339(1_796_533_443_210), "2026-12-06T05:04:03.210Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
