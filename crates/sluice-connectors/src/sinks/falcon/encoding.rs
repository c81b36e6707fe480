//! The wire format of open-falcon's agent push API: `modules/agent/http/push.go` in open-falcon/falcon-plus
//! decodes a JSON array of `model.MetricValue` (`common/model/metric.go`): `endpoint`, `metric`, `value`,
//! `step`, `counterType`, `tags` (a `k=v,k=v` string) and `timestamp` (Unix seconds).

use serde::Serialize;
use sluice_core::component::Metric;

/// falcon-plus transfer rejects `len(metric) + len(tags) > 510` (`modules/transfer/receiver/rpc/rpc_transfer.go`).
pub const MAX_METRIC_AND_TAGS: usize = 510;

#[derive(Debug, Serialize, PartialEq)]
pub struct FalconSample<'a> {
    pub endpoint: &'a str,
    pub metric: &'a str,
    pub timestamp: i64,
    pub step: u32,
    pub value: f64,
    #[serde(rename = "counterType")]
    pub counter_type: &'static str,
    pub tags: String,
}

impl<'a> FalconSample<'a> {
    pub fn from_metric(m: &'a Metric) -> Self {
        let tags = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        Self { endpoint: &m.endpoint, metric: &m.metric, timestamp: m.timestamp, step: m.step, value: m.value, counter_type: m.counter_type.as_str(), tags }
    }
}

/// What open-falcon would refuse, as a reason; `None` when the sample is acceptable.
pub fn validate(s: &FalconSample<'_>) -> Option<String> {
    if s.metric.is_empty() {
        return Some("empty metric".into());
    }
    if s.endpoint.is_empty() {
        return Some("empty endpoint".into());
    }
    if s.step == 0 {
        return Some("step must be > 0".into());
    }
    if s.metric.len() + s.tags.len() > MAX_METRIC_AND_TAGS {
        return Some(format!("metric and tags are {} bytes; open-falcon accepts at most {MAX_METRIC_AND_TAGS}", s.metric.len() + s.tags.len()));
    }
    if !s.value.is_finite() {
        return Some("value is not a finite number".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_core::component::CounterType;

    use super::*;

    #[test]
    fn encodes_falcon_fields() {
        let m = Metric {
            endpoint: "web1".into(),
            metric: "orders.amount".into(),
            timestamp: 1_700_000_000,
            step: 60,
            value: 9.5,
            counter_type: CounterType::Gauge,
            tags: BTreeMap::from([("region".into(), "eu".into()), ("app".into(), "shop".into())]),
        };
        let json = serde_json::to_value(FalconSample::from_metric(&m)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"endpoint": "web1", "metric": "orders.amount", "timestamp": 1700000000, "step": 60, "value": 9.5, "counterType": "GAUGE", "tags": "app=shop,region=eu"})
        );
        let long = Metric { metric: "m".repeat(511), ..m };
        assert!(validate(&FalconSample::from_metric(&long)).unwrap().contains("510"));
    }
}
