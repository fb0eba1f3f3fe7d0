//! The messages of the Prometheus remote-write 1.0 protocol (`prompb`:
//! `WriteRequest`, `TimeSeries`, `Label`, `Sample`), written by hand from the
//! public field numbers, and the request body: protobuf, then snappy block
//! compression.

/// `prometheus.WriteRequest`: the body of one POST (field 3, metadata, is
/// not sent).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series of this request.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`: one series' labels and samples (exemplars and
/// histograms, fields 3 and 4, are not sent).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Sorted by name; `__name__` is the metric name.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// In ascending time order.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// The label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its value (never empty: an empty value means no label).
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// The POST body of `request`: its protobuf encoding, snappy-compressed
/// (block format, as remote write 1.0 requires).
pub fn encode_body(request: &WriteRequest) -> Result<Vec<u8>, snap::Error> {
    let raw = prost::Message::encode_to_vec(request);
    snap::raw::Encoder::new().compress_vec(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn field_numbers_match_the_wire_format() {
        let request = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label {
                    name: "a".into(),
                    value: "b".into(),
                }],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 2,
                }],
            }],
        };
        let bytes = request.encode_to_vec();
        // timeseries (1, LEN) { labels (1, LEN) { name (1) "a", value (2) "b" },
        // samples (2, LEN) { value (1, I64) 1.0, timestamp (2, VARINT) 2 } }
        let mut want = vec![
            0x0a, 21, 0x0a, 6, 0x0a, 1, b'a', 0x12, 1, b'b', 0x12, 11, 0x09,
        ];
        want.extend_from_slice(&1.0f64.to_le_bytes());
        want.extend_from_slice(&[0x10, 2]);
        assert_eq!(bytes, want);
        let body = encode_body(&request).unwrap();
        let back = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        assert_eq!(WriteRequest::decode(back.as_slice()).unwrap(), request);
    }
}
