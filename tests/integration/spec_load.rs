//! Reading the spec from S3 once per warm process: a conditional GET with the cached ETag
//! (moto answers 304 as S3 does, `moto/s3/responses.py` `If-None-Match`), a new revision
//! the moment the object changes, and nothing cached from an invalid write.

use platform_tests::{aws, create_buckets, unique};
use signoz_control::spec::{EXAMPLE_SPEC, SpecError, SpecLocation, load_spec};

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, text: &str) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(text.as_bytes().to_vec().into())
        .send()
        .await
        .expect("put spec");
}

#[tokio::test]
async fn the_spec_is_downloaded_again_only_when_it_changed() {
    let s3 = signoz_control::aws::s3_client(&aws().await);
    let bucket = unique("spec");
    create_buckets(&s3, &[&bucket]).await;
    let location = SpecLocation::S3 {
        bucket: bucket.clone(),
        key: "platform.yaml".into(),
    };
    put(&s3, &bucket, "platform.yaml", EXAMPLE_SPEC).await;

    let first = load_spec(&location, &s3).await.expect("first load");
    assert!(
        !first.unchanged,
        "a process's first load downloads the spec"
    );
    let second = load_spec(&location, &s3).await.expect("second load");
    assert!(
        second.unchanged,
        "an unchanged spec is answered 304 and reused"
    );
    assert_eq!(second.revision, first.revision);

    let edited = EXAMPLE_SPEC.replace("rotation_days: 30", "rotation_days: 31");
    assert_ne!(edited, EXAMPLE_SPEC, "the edit changes the example");
    put(&s3, &bucket, "platform.yaml", &edited).await;
    let third = load_spec(&location, &s3).await.expect("load after a write");
    assert!(
        !third.unchanged,
        "a written spec is read at once, never the cached one"
    );
    assert_ne!(third.revision.etag, first.revision.etag);
    assert_ne!(
        format!("{:?}", third.spec),
        format!("{:?}", first.spec),
        "the new revision's content is used"
    );

    put(&s3, &bucket, "platform.yaml", "name: [").await;
    let invalid = load_spec(&location, &s3).await;
    assert!(
        matches!(invalid, Err(SpecError::Invalid(_))),
        "an invalid write is reported, not masked by the cache: {invalid:?}"
    );
    put(&s3, &bucket, "platform.yaml", &edited).await;
    let back = load_spec(&location, &s3).await.expect("load after the fix");
    assert_eq!(back.revision.etag, third.revision.etag);
    assert!(
        back.unchanged,
        "the last valid revision is still the cached one"
    );
}
