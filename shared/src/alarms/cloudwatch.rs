//! CloudWatch `DescribeAlarms`: the current state of the alarms a policy remembers, so a
//! revert is decided from what CloudWatch says now (an alarm left in INSUFFICIENT_DATA,
//! or deleted, sends no further event) and a sustained ALARM keeps escalating.
//!
//! Spoken in CloudWatch's AWS JSON 1.0 protocol (`X-Amz-Target:
//! GraniteServiceVersion20100801.DescribeAlarms`), which CloudWatch serves next to
//! RPCv2-CBOR and Query (botocore's model lists all three). The Rust SDK speaks only
//! CBOR, which moto (the local stand-in) does not serve; JSON works against both.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::Error;
use crate::events::AlarmState;

/// An alarm as CloudWatch reports it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentAlarm {
    pub state: AlarmState,
    /// When it entered that state (`StateUpdatedTimestamp`).
    pub since: Timestamp,
}

/// The current state of each named alarm that exists; a deleted alarm is absent.
pub type CurrentAlarms = BTreeMap<String, CurrentAlarm>;

/// Names per `DescribeAlarms` call (the API's `AlarmNames` limit).
const NAMES_PER_CALL: usize = 100;

/// The HTTPS client of CloudWatch: AWS's roots (and `AWS_CA_BUNDLE`), as the SDK's.
pub fn http_client() -> Result<reqwest::Client, Error> {
    let failed = |detail: String| Error::CloudWatch { detail };
    let mut certs = reqwest::Certificate::from_pem_bundle(crate::aws::AMAZON_TRUST_SERVICES_PEM)
        .map_err(|e| failed(e.to_string()))?;
    if let Some(path) = std::env::var_os(crate::aws::CA_BUNDLE_ENV).filter(|v| !v.is_empty()) {
        let pem = std::fs::read(&path)
            .map_err(|e| failed(format!("{}: {e}", std::path::Path::new(&path).display())))?;
        certs.extend(
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| failed(e.to_string()))?,
        );
    }
    reqwest::Client::builder()
        .tls_certs_only(certs)
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| failed(e.to_string()))
}

fn timestamp(value: &Value) -> Option<Timestamp> {
    match value {
        Value::Number(n) => Timestamp::from_millisecond((n.as_f64()? * 1000.0).round() as i64).ok(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn state(value: &Value) -> Option<AlarmState> {
    match value.as_str()? {
        "OK" => Some(AlarmState::Ok),
        "ALARM" => Some(AlarmState::Alarm),
        "INSUFFICIENT_DATA" => Some(AlarmState::InsufficientData),
        _ => None,
    }
}

/// The alarms of one `DescribeAlarms` answer (metric and composite).
fn parse(answer: &Value) -> CurrentAlarms {
    ["MetricAlarms", "CompositeAlarms"]
        .iter()
        .filter_map(|kind| answer[kind].as_array())
        .flatten()
        .filter_map(|a| {
            Some((
                a["AlarmName"].as_str()?.to_string(),
                CurrentAlarm {
                    state: state(&a["StateValue"])?,
                    since: timestamp(&a["StateUpdatedTimestamp"])?,
                },
            ))
        })
        .collect()
}

/// CloudWatch's `DescribeAlarms` for `names`, signed with the function's credentials.
pub async fn describe_alarms(
    http: &reqwest::Client,
    sdk: &aws_config::SdkConfig,
    names: &[String],
) -> Result<CurrentAlarms, Error> {
    let failed = |detail: String| Error::CloudWatch { detail };
    let region = sdk
        .region()
        .map(|r| r.as_ref().to_string())
        .ok_or_else(|| failed("no AWS region configured".into()))?;
    let endpoint = sdk
        .endpoint_url()
        .map(str::to_string)
        .unwrap_or_else(|| format!("https://monitoring.{region}.amazonaws.com"));
    let url =
        url::Url::parse(&endpoint).map_err(|e| failed(format!("endpoint {endpoint}: {e}")))?;
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let provider = sdk
        .credentials_provider()
        .ok_or_else(|| failed("no AWS credentials provider configured".into()))?;
    use aws_credential_types::provider::ProvideCredentials;
    let credentials = provider
        .provide_credentials()
        .await
        .map_err(|e| failed(format!("cannot load AWS credentials: {e}")))?;
    let identity = credentials.into();
    let mut found = CurrentAlarms::new();
    for chunk in names.chunks(NAMES_PER_CALL) {
        let body = json!({
            "AlarmNames": chunk,
            "AlarmTypes": ["MetricAlarm", "CompositeAlarm"],
            "MaxRecords": NAMES_PER_CALL,
        })
        .to_string();
        let headers = [
            ("host", host.as_str()),
            ("content-type", "application/x-amz-json-1.0"),
            (
                "x-amz-target",
                "GraniteServiceVersion20100801.DescribeAlarms",
            ),
        ];
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&region)
            .name("monitoring")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| failed(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| failed(e.to_string()))?;
        let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
            .map_err(|e| failed(e.to_string()))?
            .into_parts();
        let mut request = http
            .describe_alarms(url.clone())
            .header("content-type", headers[1].1)
            .header("x-amz-target", headers[2].1);
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| failed(e.without_url().to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| failed(e.without_url().to_string()))?;
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let code = answer["__type"].as_str().unwrap_or("error");
            let message = answer["message"]
                .as_str()
                .or_else(|| answer["Message"].as_str())
                .map(str::to_string)
                .unwrap_or_else(|| text.chars().take(300).collect());
            return Err(failed(format!(
                "DescribeAlarms: HTTP {status} {code}: {message}"
            )));
        }
        found.extend(parse(&answer));
    }
    Ok(found)
}

/// A POST to CloudWatch named for the operation, so the IAM check of the infrastructure
/// tests maps it to `cloudwatch:DescribeAlarms`.
trait DescribeAlarmsRequest {
    fn describe_alarms(&self, url: url::Url) -> reqwest::RequestBuilder;
}

impl DescribeAlarmsRequest for reqwest::Client {
    fn describe_alarms(&self, url: url::Url) -> reqwest::RequestBuilder {
        self.post(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_alarm_kinds_and_both_timestamp_spellings_are_read() {
        let answer = json!({
            "MetricAlarms": [
                {"AlarmName": "a", "StateValue": "ALARM", "StateUpdatedTimestamp": 1_764_000_000.5},
                {"AlarmName": "b", "StateValue": "INSUFFICIENT_DATA", "StateUpdatedTimestamp": "2025-11-24T16:00:00Z"},
                {"AlarmName": "c", "StateValue": "SOMETHING_NEW", "StateUpdatedTimestamp": 1}
            ],
            "CompositeAlarms": [{"AlarmName": "d", "StateValue": "OK", "StateUpdatedTimestamp": 1_764_000_000}]
        });
        let found = parse(&answer);
        assert_eq!(found.len(), 3, "an unknown state is left out: {found:?}");
        assert_eq!(found["a"].state, AlarmState::Alarm);
        assert_eq!(found["a"].since.as_millisecond(), 1_764_000_000_500);
        assert_eq!(found["b"].state, AlarmState::InsufficientData);
        assert_eq!(found["d"].state, AlarmState::Ok);
    }
}
