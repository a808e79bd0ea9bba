//! Decisions about the delivery objects (ArgoCD Applications, Flux HelmReleases), pure over
//! what the cluster holds: adopting one someone else manages without clobbering it, and
//! refusing a change that would uninstall or re-create SigNoz.
//!
//! Deleting a HelmRelease is `helm uninstall` of SigNoz (collectors, ClickHouse,
//! Zookeeper); renaming the release re-creates every object under new names (new
//! ClickHouse volumes); switching ArgoCD for Flux leaves two tools deploying one release.
//! So the control plane never deletes a delivery object on its own: only the one the spec
//! names in `cluster.delivery.replaces`, after it delivered the replacement.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Error;
use super::objects::DesiredObject;
use crate::spec::PlatformSpec;

/// Key of the delivery record in the state store.
pub const DELIVERY_STATE_KEY: &str = "cluster/delivery.json";

/// What the control plane delivered SigNoz with last: `Kind/namespace/name` and release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub object: String,
    pub release: String,
}

impl std::fmt::Display for DeliveryRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (release {})", self.object, self.release)
    }
}

impl DeliveryRecord {
    /// The record of the delivery the spec wants.
    pub fn wanted(spec: &PlatformSpec) -> Self {
        DeliveryRecord {
            object: super::render::delivery::signoz_delivery(spec).id(),
            release: spec.cluster.delivery.release.clone(),
        }
    }
}

/// What to do with SigNoz's delivery object this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryPlan {
    /// The same delivery as before (or the first one): apply it.
    Apply,
    /// A release rename or a switch of method the spec allows: apply the new delivery,
    /// then delete the old object if it is another one.
    Replace { from: DeliveryRecord },
    /// A release rename or a switch of method the spec does not allow: leave it all.
    Refuse { from: DeliveryRecord },
}

/// The API, namespace and name of a delivery object's `Kind/namespace/name`.
pub fn delivery_object(id: &str) -> Option<(kube::api::ApiResource, &str, &str)> {
    let mut parts = id.splitn(3, '/');
    let resource = match parts.next()? {
        "Application" => super::objects::argocd_application_resource(),
        "HelmRelease" => super::objects::helm_release_resource(),
        _ => return None,
    };
    Some((resource, parts.next()?, parts.next()?))
}

/// Compares what was delivered (the state's record, else the live object's release) with
/// what the spec wants.
#[tracing::instrument(level = "debug", name = "plan.delivery", skip_all)]
pub fn plan_delivery(
    spec: &PlatformSpec,
    recorded: Option<&DeliveryRecord>,
    live: Option<&Value>,
) -> DeliveryPlan {
    let wanted = DeliveryRecord::wanted(spec);
    // Without a record (a lost state document), the live object of the same name tells a
    // release rename.
    let from = match recorded {
        Some(r) => r.clone(),
        None => match live.and_then(helm_release_name) {
            Some(release) => DeliveryRecord {
                object: wanted.object.clone(),
                release,
            },
            None => return DeliveryPlan::Apply,
        },
    };
    if from == wanted {
        return DeliveryPlan::Apply;
    }
    match &spec.cluster.delivery.replaces {
        Some(r) if r.object == from.object && r.release == from.release => {
            DeliveryPlan::Replace { from }
        }
        _ => DeliveryPlan::Refuse { from },
    }
}

/// The error a refused delivery change reports, saying how to allow it.
pub fn refusal(spec: &PlatformSpec, from: &DeliveryRecord) -> Error {
    let wanted = DeliveryRecord::wanted(spec);
    Error::DestructiveDelivery {
        from: format!("{} (release {})", from.object, from.release),
        to: format!("{} (release {})", wanted.object, wanted.release),
        allow: format!(
            "cluster.delivery.replaces: {{ object: {}, release: {} }}",
            from.object, from.release
        ),
    }
}

/// The Helm release name a live delivery object deploys: an Application's
/// `helm.releaseName` (else its name, ArgoCD's default), a HelmRelease's `releaseName`
/// (else `[targetNamespace-]name`, helm-controller's default).
pub fn helm_release_name(live: &Value) -> Option<String> {
    let spec = &live["spec"];
    let name = live["metadata"]["name"].as_str()?;
    let explicit = match live["kind"].as_str()? {
        "Application" => spec["source"]["helm"]["releaseName"].as_str(),
        "HelmRelease" => spec["releaseName"].as_str(),
        _ => return None,
    };
    Some(match (explicit, spec["targetNamespace"].as_str()) {
        (Some(release), _) => release.to_string(),
        (None, Some(ns)) if live["kind"] == "HelmRelease" => format!("{ns}-{name}"),
        (None, _) => name.to_string(),
    })
}

/// What we may write to a delivery object someone else created (an app-of-apps parent,
/// a Flux Kustomization): only the Helm values, or nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Adoption {
    /// The apply body (ArgoCD: `valuesObject` only); `None` for a HelmRelease, whose values
    /// arrive through our ConfigMap once its owner references it.
    pub body: Option<Value>,
    /// What still resets the collector's replicas, for the owner to fix in their manifest.
    pub warnings: Vec<String>,
}

/// Decides how to adopt `live` (not created by us) for `desired`, or refuses with why and
/// how to hand the values over.
pub fn adopt(desired: &DesiredObject, live: &Value) -> Result<Adoption, Error> {
    let refuse = |reason: String| Error::AdoptionRefused {
        object: desired.id(),
        reason,
    };
    let want = &desired.body["spec"];
    let release = helm_release_name(&desired.body).unwrap_or_default();
    if let Some(live_release) = helm_release_name(live)
        && live_release != release
    {
        return Err(refuse(format!(
            "it deploys Helm release {live_release:?} and the spec names {release:?}: the chart names the collector, SigNoz's StatefulSet and ClickHouse's service account from the release"
        )));
    }
    let mut warnings = Vec::new();
    match desired.resource.kind.as_str() {
        "Application" => {
            if live["spec"]["sources"]
                .as_array()
                .is_some_and(|s| !s.is_empty())
            {
                return Err(refuse(
                    "it has several sources (spec.sources): put SigNoz's values in its signoz chart source yourself, or give it one spec.source".into(),
                ));
            }
            let source = &live["spec"]["source"];
            if source["chart"] != want["source"]["chart"] {
                return Err(refuse(format!(
                    "it deploys chart {} from {}, not {}",
                    source["chart"], source["repoURL"], want["source"]["chart"]
                )));
            }
            if source["helm"]["values"]
                .as_str()
                .is_some_and(|v| !v.trim().is_empty())
            {
                // argo-cd docs/user-guide/helm.md: valuesObject takes precedence over values.
                return Err(refuse(
                    "it has inline spec.source.helm.values, which our valuesObject would silently override (ArgoCD gives valuesObject precedence): move them into the platform spec, delete them from the Application in its owner's manifest, and sync again".into(),
                ));
            }
            if let Some(ignored) = want["ignoreDifferences"].as_array() {
                for rule in ignored {
                    let has = live["spec"]["ignoreDifferences"]
                        .as_array()
                        .is_some_and(|l| {
                            l.iter().any(|r| {
                                r["name"] == rule["name"]
                                    && r["jsonPointers"] == rule["jsonPointers"]
                            })
                        });
                    let respected = live["spec"]["syncPolicy"]["syncOptions"]
                        .as_array()
                        .is_some_and(|o| o.iter().any(|o| o == "RespectIgnoreDifferences=true"));
                    if !has || !respected {
                        warnings.push(format!(
                            "every ArgoCD sync resets Deployment {} to the chart's replicaCount: its owner's manifest needs ignoreDifferences {rule} and the sync option RespectIgnoreDifferences=true",
                            rule["name"]
                        ));
                    }
                }
            }
            let body = serde_json::json!({
                "apiVersion": desired.body["apiVersion"],
                "kind": "Application",
                "metadata": { "name": desired.name, "namespace": desired.namespace },
                "spec": { "source": { "helm": { "valuesObject": want["source"]["helm"]["valuesObject"] } } },
            });
            Ok(Adoption {
                body: Some(body),
                warnings,
            })
        }
        "HelmRelease" => {
            let ours = &want["valuesFrom"][0];
            let references = live["spec"]["valuesFrom"].as_array().is_some_and(|v| {
                v.iter()
                    .any(|r| r["kind"] == ours["kind"] && r["name"] == ours["name"])
            });
            if !references {
                return Err(refuse(format!(
                    "we never write a HelmRelease someone else manages: add valuesFrom: [{{kind: ConfigMap, name: {}, valuesKey: {}}}] to it in its owner's manifest to hand the values over",
                    ours["name"].as_str().unwrap_or_default(),
                    ours["valuesKey"].as_str().unwrap_or_default(),
                )));
            }
            if let Some(patches) = want["postRenderers"][0]["kustomize"]["patches"].as_array() {
                let live_patches = live["spec"]["postRenderers"]
                    .as_array()
                    .map(|p| {
                        p.iter()
                            .flat_map(|r| {
                                r["kustomize"]["patches"]
                                    .as_array()
                                    .cloned()
                                    .unwrap_or_default()
                            })
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                for patch in patches {
                    if !live_patches.contains(patch) {
                        warnings.push(format!(
                            "every Flux upgrade resets Deployment {} to the chart's replicaCount: its owner's manifest needs the post-renderer patch {patch}",
                            patch["target"]["name"]
                        ));
                    }
                }
            }
            Ok(Adoption {
                body: None,
                warnings,
            })
        }
        other => Err(refuse(format!("{other} is not a delivery kind"))),
    }
}

/// An Application of ours whose destination another manager set the other way (name vs
/// server): applied, it would name the cluster twice, which ArgoCD refuses.
pub fn destination_clash(desired: &DesiredObject, live: &Value) -> Option<Error> {
    let want = desired.body["spec"]["destination"].as_object()?;
    let have = live["spec"]["destination"].as_object()?;
    let other = ["name", "server"]
        .into_iter()
        .find(|k| !want.contains_key(*k) && have.get(*k).is_some_and(|v| !v.is_null()))?;
    let manager = super::apply::manager_of(live, &["spec", "destination", other])
        .unwrap_or_else(|| "another field manager".into());
    Some(Error::AdoptionRefused {
        object: desired.id(),
        reason: format!(
            "destination.{other} is set by {manager}; with ours the Application would name its cluster twice, which ArgoCD refuses: remove one of them"
        ),
    })
}
