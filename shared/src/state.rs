//! State that must survive invocations: small JSON documents in S3, written with
//! optimistic concurrency (conditional PutObject: `If-None-Match: *` to create,
//! `If-Match: <etag>` to replace). moto honours both (see the integration tests).

use serde::{Serialize, de::DeserializeOwned};

/// Which version of a document a writer last saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// The document did not exist.
    Absent,
    /// The document's ETag when it was read.
    ETag(String),
}

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Someone else wrote the document since it was read: re-read and retry.
    #[error("state {key} changed since it was read (concurrent writer); retry")]
    Conflict { key: String },
    /// Still conflicting after the retry budget.
    #[error("state {key} kept changing under {attempts} attempts; retry later")]
    Contended { key: String, attempts: u32 },
    /// S3 could not be reached or refused the call; a retry may help.
    #[error("state {key} unavailable: {reason}")]
    Unavailable { key: String, reason: String },
    /// The stored document is not what this code writes; a retry does not help.
    #[error("state {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

/// A prefix of a bucket holding the control plane's state documents.
#[derive(Debug, Clone)]
pub struct StateStore {
    s3: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

const MAX_ATTEMPTS: u32 = 5;

/// Documents this process last found absent, by bucket and key. A missing document costs
/// a GetObject (refused with 403, see [`StateStore::load`]) and then the listing that
/// tells; one found missing before, as most stay (no alarm has fired), is listed first:
/// one call and one round trip while it stays missing, the GetObject once it exists.
static ABSENT: std::sync::Mutex<std::collections::BTreeSet<(String, String)>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn absent() -> std::sync::MutexGuard<'static, std::collections::BTreeSet<(String, String)>> {
    ABSENT.lock().unwrap_or_else(|e| e.into_inner())
}

impl StateStore {
    /// A store at `s3://{bucket}/{prefix}`.
    pub fn new(s3: aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Self {
        StateStore {
            s3,
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    /// The store the spec's `state` section names.
    pub fn for_spec(s3: aws_sdk_s3::Client, spec: &crate::spec::PlatformSpec) -> Self {
        Self::new(s3, &spec.state.bucket, &spec.state.prefix)
    }

    fn object_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Reads a document and the version to pass to [`StateStore::save`].
    pub async fn load<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<(Option<T>, Version), StateError> {
        let unavailable = |reason: String| StateError::Unavailable {
            key: key.into(),
            reason,
        };
        // S3 answers a missing key with 403 unless the caller may list the bucket, and the
        // role may list only the state prefix (an `s3:prefix` condition, absent from a
        // GetObject): the listing tells a missing document from a refused one. Read again
        // once when a concurrent writer created it in between. One this process found
        // missing is listed first ([`ABSENT`]).
        let absent_key = (self.bucket.clone(), self.object_key(key));
        if absent().contains(&absent_key) {
            if !self.exists(key).await.map_err(unavailable)? {
                return Ok((None, Version::Absent));
            }
            absent().remove(&absent_key);
        }
        let found_absent = || {
            absent().insert(absent_key.clone());
            Ok((None, Version::Absent))
        };
        let mut attempts = 0;
        let out = loop {
            attempts += 1;
            match self
                .s3
                .get_object()
                .bucket(&self.bucket)
                .key(self.object_key(key))
                .send()
                .await
            {
                Ok(out) => break out,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                    return found_absent();
                }
                Err(e) if crate::aws::error_code(&e) == Some("AccessDenied") => {
                    if !self.exists(key).await.map_err(unavailable)? {
                        return found_absent();
                    }
                    if attempts > 1 {
                        return Err(unavailable(crate::aws::error_text(&e)));
                    }
                }
                Err(e) => return Err(unavailable(crate::aws::error_text(&e))),
            }
        };
        let etag = out
            .e_tag()
            .ok_or_else(|| unavailable("no ETag on the stored document".into()))?
            .to_string();
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| unavailable(e.to_string()))?
            .into_bytes();
        let value = serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
            key: key.into(),
            reason: e.to_string(),
        })?;
        Ok((Some(value), Version::ETag(etag)))
    }

    /// Whether the document exists, by listing its exact key as a prefix.
    async fn exists(&self, key: &str) -> Result<bool, String> {
        let object_key = self.object_key(key);
        let out = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&object_key)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| crate::aws::error_text(&e))?;
        Ok(out.contents().iter().any(|o| o.key() == Some(&object_key)))
    }

    /// Writes a document only if it is still at `expected`.
    pub async fn save<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        expected: &Version,
    ) -> Result<(), StateError> {
        let body = serde_json::to_vec_pretty(value).map_err(|e| StateError::Corrupt {
            key: key.into(),
            reason: e.to_string(),
        })?;
        let put = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .content_type("application/json")
            .body(body.into());
        let put = match expected {
            Version::Absent => put.if_none_match("*"),
            Version::ETag(etag) => put.if_match(etag),
        };
        match put.send().await {
            Ok(_) => {
                absent().remove(&(self.bucket.clone(), self.object_key(key)));
                Ok(())
            }
            Err(e) => match crate::aws::error_code(&e) {
                // 412 on a failed precondition; 409 when a concurrent conditional write won.
                Some("PreconditionFailed" | "ConditionalRequestConflict") => {
                    Err(StateError::Conflict { key: key.into() })
                }
                _ => Err(StateError::Unavailable {
                    key: key.into(),
                    reason: crate::aws::error_text(&e),
                }),
            },
        }
    }

    /// Writes a report (a plan, a chart) unconditionally: nothing reads it back.
    pub async fn put_report(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StateError> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .content_type(content_type)
            .body(body.into())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| StateError::Unavailable {
                key: key.into(),
                reason: crate::aws::error_text(&e),
            })
    }

    /// Read-modify-write with retries on conflict. `change` gets the current document
    /// and returns the new one, or `None` to leave it as is (no write).
    pub async fn update<T, F>(&self, key: &str, mut change: F) -> Result<Option<T>, StateError>
    where
        T: Serialize + DeserializeOwned + Clone,
        F: FnMut(Option<&T>) -> Option<T>,
    {
        for _ in 0..MAX_ATTEMPTS {
            let (current, version) = self.load::<T>(key).await?;
            let Some(next) = change(current.as_ref()) else {
                return Ok(current);
            };
            match self.save(key, &next, &version).await {
                Ok(()) => return Ok(Some(next)),
                Err(StateError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StateError::Contended {
            key: key.into(),
            attempts: MAX_ATTEMPTS,
        })
    }
}
