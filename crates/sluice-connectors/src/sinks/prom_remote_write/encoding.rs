//! The remote write 1.0 protobuf messages (prometheus/prompb/remote.proto and types.proto) and the mapping of
//! shaped metrics onto series.

use std::collections::BTreeMap;

use sluice_core::component::Metric;

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

fn sanitize(s: &str, allow_colon: bool) -> String {
    let mut out: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || (allow_colon && c == ':') { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

pub fn sanitize_metric_name(s: &str) -> String {
    sanitize(s, true)
}

pub fn sanitize_label_name(s: &str) -> String {
    let n = sanitize(s, false);
    // Names starting with `__` are reserved for Prometheus itself.
    if n.starts_with("__") { format!("tag{n}") } else { n }
}

/// The request body: the protobuf, snappy-compressed (raw block format, as the spec requires).
pub fn body(req: &WriteRequest) -> Result<Vec<u8>, String> {
    use prost::Message as _;
    snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).map_err(|e| format!("snappy compression failed: {e}"))
}

/// Groups metrics into series (sorted labels), each with its samples sorted by time.
pub fn encode_metrics<'a>(metrics: impl Iterator<Item = &'a Metric>) -> WriteRequest {
    let mut series: BTreeMap<Vec<Label>, BTreeMap<i64, f64>> = BTreeMap::new();
    for m in metrics {
        let mut labels =
            vec![Label { name: "__name__".into(), value: sanitize_metric_name(&m.metric) }, Label { name: "endpoint".into(), value: m.endpoint.clone() }];
        for (k, v) in &m.tags {
            let name = sanitize_label_name(k);
            if name != "endpoint" && !v.is_empty() {
                labels.push(Label { name, value: v.clone() });
            }
        }
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        labels.dedup_by(|a, b| a.name == b.name);
        series.entry(labels).or_default().insert(m.timestamp * 1000, m.value);
    }
    WriteRequest {
        timeseries: series
            .into_iter()
            .map(|(labels, samples)| TimeSeries { labels, samples: samples.into_iter().map(|(timestamp, value)| Sample { value, timestamp }).collect() })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::component::CounterType;

    use super::*;

    fn m(metric: &str, ts: i64, v: f64) -> Metric {
        Metric {
            endpoint: "web-1".into(),
            metric: metric.into(),
            timestamp: ts,
            step: 60,
            value: v,
            counter_type: CounterType::Gauge,
            tags: BTreeMap::from([("region".into(), "eu".into()), ("__x".into(), "y".into())]),
        }
    }

    #[test]
    fn series_are_sorted_and_grouped() {
        let ms = [m("orders.amount", 20, 2.0), m("orders.amount", 10, 1.0), m("orders.amount", 20, 3.0), m("9bad-name", 5, 1.0)];
        let req = encode_metrics(ms.iter());
        assert_eq!(req.timeseries.len(), 2);
        let names: Vec<&str> = req.timeseries.iter().map(|t| t.labels.iter().find(|l| l.name == "__name__").unwrap().value.as_str()).collect();
        assert_eq!(names, ["_9bad_name", "orders_amount"]);
        let s = &req.timeseries[1];
        assert!(s.labels.windows(2).all(|w| w[0].name < w[1].name), "labels sorted");
        assert!(s.labels.iter().any(|l| l.name == "tag__x"));
        assert_eq!(s.samples, vec![Sample { value: 1.0, timestamp: 10_000 }, Sample { value: 3.0, timestamp: 20_000 }]);
    }
}
