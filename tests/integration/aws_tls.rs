//! The AWS SDK's HTTPS client trusts Amazon Trust Services' roots, not the system store,
//! plus the CAs of `AWS_CA_BUNDLE`: checked against moto behind a TLS terminator whose
//! certificate comes from a CA of its own.

use std::path::Path;

use aws_config::retry::RetryConfig;
use aws_sdk_s3::error::SdkError;
use platform_tests::tls_front::TlsFront;
use platform_tests::{create_buckets, stack_var, unique};
use signoz_control::aws::{sdk_config_trusting, trust_store};

/// An S3 client reaching `endpoint` with the given extra CA bundle, one attempt per call.
async fn s3_via(endpoint: &str, ca_bundle: Option<&Path>) -> aws_sdk_s3::Client {
    signoz_control::runtime::install_crypto();
    let sdk = sdk_config_trusting(trust_store(ca_bundle).expect("trust store"))
        .await
        .expect("SDK configuration");
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .endpoint_url(endpoint)
            .force_path_style(true)
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .build(),
    )
}

#[tokio::test]
async fn sdk_refuses_a_ca_it_was_not_given_and_accepts_it_from_the_bundle() {
    let front = TlsFront::start(&stack_var("AWS_ENDPOINT_URL")).await;

    // Amazon Trust Services' roots only: the front's certificate is refused in the handshake.
    let s3 = s3_via(&front.url, None).await;
    let err = s3.list_buckets().send().await.expect_err("untrusted CA");
    assert!(
        matches!(err, SdkError::DispatchFailure(_)),
        "expected a TLS dispatch failure, got {err:?}"
    );
    assert!(
        format!("{:?}", err).contains("UnknownIssuer"),
        "the refusal names the unknown issuer: {err:?}"
    );
    assert_eq!(
        front.await_handshake_failures(1).await,
        1,
        "one refused handshake"
    );

    // The front's CA through AWS_CA_BUNDLE: real S3 calls to moto over verified TLS.
    let dir = tempfile::tempdir().expect("temporary directory");
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, &front.ca_pem).expect("write the CA bundle");
    let s3 = s3_via(&front.url, Some(&bundle)).await;
    let bucket = unique("tls-front");
    create_buckets(&s3, &[&bucket]).await;
    let listed = s3.list_buckets().send().await.expect("list over TLS");
    assert!(
        listed.buckets().iter().any(|b| b.name() == Some(&bucket)),
        "the bucket made over TLS is listed"
    );
    s3.delete_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("delete over TLS");
    assert_eq!(
        front.handshake_failures(),
        1,
        "no further refused handshake"
    );
}
