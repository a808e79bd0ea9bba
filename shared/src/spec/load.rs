//! Reading the spec: from a path or `s3://bucket/key`, strictly, with every problem at once.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::model::PlatformSpec;
use super::validate::{Problem, validate};

/// Environment variable naming the spec: a local path or `s3://bucket/key`.
pub const SPEC_ENV: &str = "PLATFORM_SPEC";

/// Why a spec could not be used. Nothing is written anywhere when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{SPEC_ENV} is not set: give a local path or s3://bucket/key")]
    NotConfigured,
    #[error("invalid spec location {0:?}: expected a path or s3://bucket/key")]
    BadLocation(String),
    #[error("cannot read spec {location}: {reason}")]
    Unreadable { location: String, reason: String },
    #[error("invalid platform spec ({} problem{}):\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, render(.0))]
    Invalid(Vec<Problem>),
}

impl SpecError {
    /// The individual problems of an invalid spec (empty for I/O errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            SpecError::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

fn render(problems: &[Problem]) -> String {
    let mut out = String::new();
    for p in problems {
        let _ = writeln!(out, "  - {p}");
    }
    out.trim_end().to_string()
}

/// Where a spec lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecLocation {
    Path(std::path::PathBuf),
    S3 { bucket: String, key: String },
}

impl SpecLocation {
    /// Parses a path or `s3://bucket/key`.
    pub fn parse(value: &str) -> Result<Self, SpecError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(SpecError::BadLocation(value.into()));
        }
        match value.strip_prefix("s3://") {
            None => Ok(SpecLocation::Path(value.into())),
            Some(rest) => match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                    Ok(SpecLocation::S3 {
                        bucket: bucket.into(),
                        key: key.into(),
                    })
                }
                _ => Err(SpecError::BadLocation(value.into())),
            },
        }
    }

    /// Reads the location from `PLATFORM_SPEC`.
    pub fn from_env() -> Result<Self, SpecError> {
        Self::parse(&std::env::var(SPEC_ENV).map_err(|_| SpecError::NotConfigured)?)
    }
}

impl std::fmt::Display for SpecLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpecLocation::Path(p) => write!(f, "{}", p.display()),
            SpecLocation::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

/// Which revision of the spec a run acted on, so later steps can tell what changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpecRevision {
    pub location: String,
    /// S3 ETag, or the SHA-256 of a local file.
    pub etag: String,
    /// S3 version id when the config bucket is versioned.
    pub version_id: Option<String>,
}

/// A validated spec and the revision it came from.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    pub spec: PlatformSpec,
    pub revision: SpecRevision,
    /// True when this process already held this revision (S3 answered 304 Not Modified,
    /// or the file's digest was unchanged), so nothing was downloaded or parsed again.
    pub unchanged: bool,
}

/// The last spec each location yielded in this process. A warm Lambda keeps it across
/// invocations; every load still asks S3 (`If-None-Match` with the cached ETag), so a
/// spec written a moment ago is never missed: S3 is strongly consistent and a changed
/// object has a new ETag.
static CACHE: std::sync::Mutex<Vec<(String, LoadedSpec)>> = std::sync::Mutex::new(Vec::new());

fn cached(location: &str) -> Option<LoadedSpec> {
    let cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .iter()
        .find(|(at, _)| at == location)
        .map(|(_, loaded)| loaded.clone())
}

/// The spec this process last loaded from `location`, without asking the source: a hint
/// for work that may start before the load answers, never what a run acts on.
pub fn last_loaded(location: &SpecLocation) -> Option<PlatformSpec> {
    cached(&location.to_string()).map(|loaded| loaded.spec)
}

fn remember(location: String, loaded: &LoadedSpec) {
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.retain(|(at, _)| *at != location);
    cache.push((location, loaded.clone()));
}

/// Reads and validates the spec at `location`, reusing this process's copy when the
/// source says it has not changed.
#[tracing::instrument(level = "debug", name = "spec.load", skip_all,
    fields(spec.location = %location, spec.etag = tracing::field::Empty))]
pub async fn load_spec(
    location: &SpecLocation,
    s3: &aws_sdk_s3::Client,
) -> Result<LoadedSpec, SpecError> {
    let loaded = read_spec(location, s3).await?;
    tracing::Span::current().record("spec.etag", loaded.revision.etag.as_str());
    crate::telemetry::spec_loaded(&loaded.spec);
    Ok(loaded)
}

async fn read_spec(
    location: &SpecLocation,
    s3: &aws_sdk_s3::Client,
) -> Result<LoadedSpec, SpecError> {
    let name = location.to_string();
    let unreadable = |reason: String| SpecError::Unreadable {
        location: name.clone(),
        reason,
    };
    let previous = cached(&name);
    let unchanged = |previous: LoadedSpec| LoadedSpec {
        unchanged: true,
        ..previous
    };
    let (text, etag, version_id) = match location {
        SpecLocation::Path(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
            let etag = hex(&Sha256::digest(text.as_bytes()));
            if let Some(previous) = previous.filter(|p| p.revision.etag == etag) {
                return Ok(unchanged(previous));
            }
            (text, etag, None)
        }
        SpecLocation::S3 { bucket, key } => {
            let sent = s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .set_if_none_match(
                    previous
                        .as_ref()
                        .map(|p| format!("\"{}\"", p.revision.etag)),
                )
                .send()
                .await;
            let out = match sent {
                Ok(out) => out,
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 304) => {
                    if let Some(previous) = previous {
                        return Ok(unchanged(previous));
                    }
                    return Err(unreadable(
                        "S3 answered 304 to an unconditional read".into(),
                    ));
                }
                Err(e) => return Err(unreadable(crate::aws::error_text(&e))),
            };
            let etag = out
                .e_tag()
                .unwrap_or_default()
                .trim_matches('"')
                .to_string();
            let version_id = out.version_id().map(str::to_string);
            let bytes = out
                .body
                .collect()
                .await
                .map_err(|e| unreadable(e.to_string()))?
                .into_bytes();
            let text =
                String::from_utf8(bytes.to_vec()).map_err(|_| unreadable("not UTF-8".into()))?;
            (text, etag, version_id)
        }
    };
    let loaded = LoadedSpec {
        spec: parse_spec(&text)?,
        revision: SpecRevision {
            location: name.clone(),
            etag,
            version_id,
        },
        unchanged: false,
    };
    remember(name, &loaded);
    Ok(loaded)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Parses and validates a spec document: unknown keys, type errors and rule violations
/// are all reported together.
pub fn parse_spec(text: &str) -> Result<PlatformSpec, SpecError> {
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    let de = serde_norway::Deserializer::from_str(text);
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(ignored_path(&path));
    let ignored = serde_ignored::Deserializer::new(de, &mut record);
    let parsed: Result<PlatformSpec, _> = serde_path_to_error::deserialize(ignored);
    problems.extend(unknown.into_iter().map(|path| Problem {
        path,
        message: "unknown key".into(),
    }));
    match parsed {
        Ok(spec) => {
            problems.extend(validate(&spec));
            if problems.is_empty() {
                Ok(spec)
            } else {
                Err(SpecError::Invalid(problems))
            }
        }
        Err(e) => {
            let path = error_path(e.path());
            let message = e.inner().to_string();
            // serde_norway already prefixes its message with the path; keep one.
            let message = message
                .strip_prefix(&format!("{path}: "))
                .map_or(message.clone(), str::to_string);
            let path = if path.is_empty() {
                "(document)".into()
            } else {
                path
            };
            problems.push(Problem { path, message });
            Err(SpecError::Invalid(problems))
        }
    }
}

/// `a.b[0].c` from serde_ignored's path.
fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        // An empty key would leave the problem without a path.
        Path::Map { parent, key } if key.is_empty() => join(ignored_path(parent), "\"\""),
        Path::Map { parent, key } => join(ignored_path(parent), key),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

/// `a.b[0].c` from serde_path_to_error's path.
fn error_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter().fold(String::new(), |acc, seg| match seg {
        Segment::Seq { index } => format!("{acc}[{index}]"),
        Segment::Map { key } => join(acc, key),
        Segment::Enum { variant } => join(acc, variant),
        Segment::Unknown => acc,
    })
}

fn join(parent: String, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}
