//! The Prometheus text exposition format 0.0.4 (what `/metrics` of
//! client_golang serves), tolerating the OpenMetrics bits seen in the wild:
//! `# EOF`, `# UNIT`, `_created` series, float-second timestamps and exemplars
//! (`# {...} v` after a value, skipped).
//!
//! [`parse_promtext`] turns the text into [`MetricFamily`]s (name, type, help and
//! their samples with labels). Histograms and summaries stay generic: their
//! `_bucket`, `_sum`, `_count` (and `quantile`-labelled) samples sit in their
//! family. [`GoMetrics`] and [`ProcessMetrics`] pick the `go_*` and `process_*`
//! series client_golang exposes.
//!
//! Bounded: [`PromTextLimits`] caps the line length and the number of samples
//! and labels; going past a cap is an error naming it, never a silent cut.

mod go;
mod line;

pub use go::{GcDurationSummary, GoMetrics, ProcessMetrics};

use line::{parse_line, Line};
use std::collections::HashMap;
use std::fmt;

/// A Prometheus text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PromTextError {
    /// The input being parsed (file name or URL).
    pub input: String,
    /// The 1-based line number, when the problem is on one line.
    pub line: Option<usize>,
    /// What is wrong, in words.
    pub reason: String,
}

impl fmt::Display for PromTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} line {}: {}", self.input, line, self.reason),
            None => write!(f, "{}: {}", self.input, self.reason),
        }
    }
}

/// Caps that keep a hostile or runaway exposition from eating memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromTextLimits {
    /// The longest line, in bytes.
    pub max_line_bytes: usize,
    /// The most samples (series) in the whole text.
    pub max_samples: usize,
    /// The most labels on one sample.
    pub max_labels_per_sample: usize,
}

impl Default for PromTextLimits {
    /// 1 MiB lines, 1,000,000 samples, 128 labels per sample.
    fn default() -> Self {
        PromTextLimits {
            max_line_bytes: 1 << 20,
            max_samples: 1_000_000,
            max_labels_per_sample: 128,
        }
    }
}

/// The `# TYPE` of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `summary`.
    Summary,
    /// `histogram`.
    Histogram,
    /// `gaugehistogram` (OpenMetrics).
    GaugeHistogram,
    /// `info` (OpenMetrics).
    Info,
    /// `stateset` (OpenMetrics).
    StateSet,
    /// `untyped`, `unknown`, or no `# TYPE` line.
    Untyped,
}

impl MetricType {
    fn parse(kind: &str) -> Option<MetricType> {
        Some(match kind {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "summary" => MetricType::Summary,
            "histogram" => MetricType::Histogram,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            "untyped" | "unknown" => MetricType::Untyped,
            _ => return None,
        })
    }

    /// The sample-name suffixes a family of this type may use besides its own name.
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            MetricType::Counter => &["_total", "_created"],
            MetricType::Summary => &["_sum", "_count", "_created"],
            MetricType::Histogram => &["_bucket", "_sum", "_count", "_created"],
            MetricType::GaugeHistogram => &["_bucket", "_gsum", "_gcount"],
            MetricType::Info => &["_info"],
            MetricType::Gauge | MetricType::StateSet | MetricType::Untyped => &[],
        }
    }
}

/// A label of a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// The label name.
    pub name: String,
    /// The value, with escapes undone.
    pub value: String,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The full sample name (`go_gc_duration_seconds_sum`).
    pub name: String,
    /// Its labels, in the order written.
    pub labels: Vec<Label>,
    /// The value (may be NaN or infinite).
    pub value: f64,
    /// The timestamp in milliseconds since the epoch, when one is written.
    pub timestamp_ms: Option<i64>,
    /// The 1-based line it was read from.
    pub line: usize,
}

impl Sample {
    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    }
}

/// A metric family: the samples sharing one `# TYPE`/`# HELP` name.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily {
    /// The family name (`go_gc_duration_seconds`).
    pub name: String,
    /// Its type ([`MetricType::Untyped`] without a `# TYPE` line).
    pub metric_type: MetricType,
    /// The `# HELP` text, escapes undone.
    pub help: Option<String>,
    /// Its samples, in order.
    pub samples: Vec<Sample>,
}

/// A whole exposition: its families in the order they first appear.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exposition {
    /// The families.
    pub families: Vec<MetricFamily>,
    index: HashMap<String, usize>,
}

impl Exposition {
    /// The family called `name`.
    pub fn family(&self, name: &str) -> Option<&MetricFamily> {
        self.index.get(name).map(|&i| &self.families[i])
    }

    /// Every sample, family by family.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.families.iter().flat_map(|f| f.samples.iter())
    }

    /// The first sample whose name is `name` and which has every label of `labels`.
    pub fn sample(&self, name: &str, labels: &[(&str, &str)]) -> Option<&Sample> {
        self.samples()
            .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
    }

    /// The value of the first sample named `name` (whatever its labels).
    pub fn value(&self, name: &str) -> Option<f64> {
        self.sample(name, &[]).map(|s| s.value)
    }

    /// The number of samples.
    pub fn sample_count(&self) -> usize {
        self.families.iter().map(|f| f.samples.len()).sum()
    }

    /// The family index for a new `# HELP`/`# TYPE`/sample called `name`.
    fn family_index(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.families.push(MetricFamily {
            name: name.to_string(),
            metric_type: MetricType::Untyped,
            help: None,
            samples: Vec::new(),
        });
        self.index.insert(name.to_string(), self.families.len() - 1);
        self.families.len() - 1
    }

    /// The family a sample called `name` belongs to: the family of that exact
    /// name, else the typed family whose name plus a suffix of its type gives
    /// `name`, else a new untyped family.
    fn family_of_sample(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        for (base, _) in name.match_indices('_').map(|(i, _)| name.split_at(i)) {
            if let Some(&i) = self.index.get(base) {
                let suffix = &name[base.len()..];
                if self.families[i].metric_type.suffixes().contains(&suffix) {
                    return i;
                }
            }
        }
        self.family_index(name)
    }
}

/// Reads a text exposition with the default [`PromTextLimits`].
pub fn parse_promtext(input: &str, bytes: &[u8]) -> Result<Exposition, PromTextError> {
    parse_promtext_with_limits(input, bytes, &PromTextLimits::default())
}

/// Reads a text exposition. `input` names it in errors.
///
/// Errors (each with its line): a line that is not UTF-8 or longer than the
/// limit, a sample that cannot be read, an unknown `# TYPE`, two different
/// `# TYPE`s for one name, more samples than the limit. An empty text is an
/// error too: a `/metrics` endpoint always exposes something.
pub fn parse_promtext_with_limits(
    input: &str,
    bytes: &[u8],
    limits: &PromTextLimits,
) -> Result<Exposition, PromTextError> {
    let mut exposition = Exposition::default();
    let mut samples = 0usize;
    for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line_no = index + 1;
        let error = |reason: String| PromTextError {
            input: input.to_string(),
            line: Some(line_no),
            reason,
        };
        if raw.len() > limits.max_line_bytes {
            return Err(error(format!(
                "line is {} bytes long, more than the {} allowed",
                raw.len(),
                limits.max_line_bytes
            )));
        }
        let text = std::str::from_utf8(raw).map_err(|e| error(format!("not UTF-8: {e}")))?;
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.trim().is_empty() {
            continue;
        }
        match parse_line(text.trim_start(), limits.max_labels_per_sample).map_err(error)? {
            Line::Eof => break,
            Line::Comment => {}
            Line::Help { name, text } => {
                let i = exposition.family_index(&name);
                exposition.families[i].help.get_or_insert(text);
            }
            Line::Type { name, kind } => {
                let kind = MetricType::parse(&kind)
                    .ok_or_else(|| error(format!("unknown metric type {kind:?} for {name}")))?;
                let i = exposition.family_index(&name);
                let family = &mut exposition.families[i];
                if family.metric_type != MetricType::Untyped && family.metric_type != kind {
                    return Err(error(format!(
                        "second # TYPE for {name}: {kind:?} after {:?}",
                        family.metric_type
                    )));
                }
                family.metric_type = kind;
            }
            Line::Sample {
                name,
                labels,
                value,
                timestamp_ms,
            } => {
                samples += 1;
                if samples > limits.max_samples {
                    return Err(error(format!(
                        "more than {} samples (the limit)",
                        limits.max_samples
                    )));
                }
                let i = exposition.family_of_sample(&name);
                exposition.families[i].samples.push(Sample {
                    name,
                    labels,
                    value,
                    timestamp_ms,
                    line: line_no,
                });
            }
        }
    }
    if exposition.families.is_empty() {
        return Err(PromTextError {
            input: input.to_string(),
            line: None,
            reason: "no metrics in it (empty, or only comments)".to_string(),
        });
    }
    Ok(exposition)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP go_gc_duration_seconds A summary.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 4.2783e-05
go_gc_duration_seconds{quantile="1"} 0.001586928
go_gc_duration_seconds_sum 0.002988419
go_gc_duration_seconds_count 5
# TYPE http_requests counter
http_requests_total{code="200"} 10
http_requests_created{code="200"} 1.7e9
# TYPE lat histogram
lat_bucket{le="+Inf"} 3
lat_sum 1
lat_count 3
stray_metric 7
# EOF
"#;

    #[test]
    fn samples_land_in_their_families() {
        let e = parse_promtext("t", TEXT.as_bytes()).unwrap();
        let names: Vec<_> = e.families.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "go_gc_duration_seconds",
                "http_requests",
                "lat",
                "stray_metric"
            ]
        );
        let gc = e.family("go_gc_duration_seconds").unwrap();
        assert_eq!(gc.metric_type, MetricType::Summary);
        assert_eq!(gc.help.as_deref(), Some("A summary."));
        assert_eq!(gc.samples.len(), 4);
        assert_eq!(e.family("http_requests").unwrap().samples.len(), 2);
        assert_eq!(e.family("lat").unwrap().samples.len(), 3);
        assert_eq!(
            e.family("stray_metric").unwrap().metric_type,
            MetricType::Untyped
        );
        assert_eq!(
            e.sample("go_gc_duration_seconds", &[("quantile", "1")])
                .unwrap()
                .value,
            0.001586928
        );
        assert_eq!(e.sample_count(), 10);
    }

    #[test]
    fn limits_and_errors_name_the_line() {
        let limits = PromTextLimits {
            max_samples: 3,
            ..PromTextLimits::default()
        };
        let err = parse_promtext_with_limits("m", TEXT.as_bytes(), &limits).unwrap_err();
        assert_eq!(err.line, Some(6));
        assert!(err.to_string().contains("more than 3 samples"), "{err}");
        let err = parse_promtext("m", b"# TYPE a gauge\n# TYPE a counter\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "m line 2: second # TYPE for a: Counter after Gauge"
        );
        let err = parse_promtext("m", b"# TYPE a weird\n").unwrap_err();
        assert!(err.reason.contains("unknown metric type"), "{err}");
        assert!(parse_promtext("m", b"").unwrap_err().line.is_none());
        let err = parse_promtext("m", b"a 1\nb \xff\n").unwrap_err();
        assert_eq!(err.line, Some(2));
    }
}
