//! `memlens query "SQL"`: read-only SQL over the history's views
//! (`samples`, `entities`, `series`, `profiles`; see docs/history.md), as a
//! table, JSON or CSV.

use crate::watch::default_data_dir;
use anyhow::Context;
use memlens_store::{QueryResult, Store, Value};
use std::io::Write;
use std::path::PathBuf;

/// Options of `memlens query`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// One read-only SQL statement, e.g.
    /// "SELECT metric, count(*) FROM samples GROUP BY metric".
    #[arg(value_name = "SQL")]
    pub sql: String,

    /// The history's directory (as given to `memlens watch --data`).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// An array of objects, one per row.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,

    /// CSV with a header line (RFC 4180 quoting).
    #[arg(long)]
    pub csv: bool,
}

/// Runs `memlens query`.
pub fn run(args: &QueryArgs) -> anyhow::Result<()> {
    let dir = args.data.clone().unwrap_or_else(default_data_dir);
    let store = Store::open_read_only(&dir)
        .with_context(|| format!("cannot read the history in {}", dir.display()))?;
    let result = store.query(&args.sql)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        write_json(&mut out, &result)?;
    } else if args.csv {
        write_csv(&mut out, &result)?;
    } else {
        write_table(&mut out, &result)?;
    }
    out.flush()?;
    Ok(())
}

fn json_value(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => serde_json::Value::from(*i),
        Value::Real(f) => serde_json::Number::from_f64(*f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::Text(t) => serde_json::Value::from(t.as_str()),
        Value::Blob(b) => serde_json::Value::from(format!("<{} bytes>", b.len())),
    }
}

fn text_value(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(t) => t.clone(),
        Value::Blob(b) => format!("<{} bytes>", b.len()),
    }
}

fn write_json(out: &mut impl Write, result: &QueryResult) -> anyhow::Result<()> {
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = result
        .rows
        .iter()
        .map(|row| {
            result
                .columns
                .iter()
                .cloned()
                .zip(row.iter().map(json_value))
                .collect()
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &rows)?;
    writeln!(out)?;
    Ok(())
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn write_csv(out: &mut impl Write, result: &QueryResult) -> std::io::Result<()> {
    let header: Vec<String> = result.columns.iter().map(|c| csv_field(c)).collect();
    writeln!(out, "{}", header.join(","))?;
    for row in &result.rows {
        let fields: Vec<String> = row.iter().map(|v| csv_field(&text_value(v))).collect();
        writeln!(out, "{}", fields.join(","))?;
    }
    Ok(())
}

fn write_table(out: &mut impl Write, result: &QueryResult) -> std::io::Result<()> {
    const MAX_WIDTH: usize = 60;
    let cells: Vec<Vec<String>> = result
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| {
                    let text = text_value(v).replace('\n', " ");
                    match text.char_indices().nth(MAX_WIDTH) {
                        Some((cut, _)) => format!("{}…", &text[..cut]),
                        None => text,
                    }
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = result
        .columns
        .iter()
        .enumerate()
        .map(|(i, name)| {
            cells
                .iter()
                .map(|row| row[i].chars().count())
                .chain([name.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |out: &mut dyn Write, values: &[String]| -> std::io::Result<()> {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        writeln!(out, "{}", padded.join("  ").trim_end())
    };
    line(out, &result.columns)?;
    for row in &cells {
        line(out, row)?;
    }
    writeln!(out, "({} rows)", result.rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        let result = QueryResult {
            columns: vec!["pid".into(), "cmd".into()],
            rows: vec![vec![Value::Integer(7), Value::Text("a, b".into())]],
        };
        let mut out = Vec::new();
        write_csv(&mut out, &result).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "pid,cmd\n7,\"a, b\"\n");
        let mut out = Vec::new();
        write_json(&mut out, &result).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0]["cmd"], "a, b");
        assert_eq!(v[0]["pid"], 7);
    }
}
