//! Credentials that can never lock SigNoz out, nor be turned against other roles:
//! objects made before provisioning, users still in use, failures after setSecret, a
//! hand-off that cannot go backwards, the deputy checks, `PUBLIC`'s rights, the secret's
//! JSON structure, the DSN a libpq client accepts from the Secret as written, and the
//! RDS-managed master's AWSPENDING. Run on PostgreSQL 15 and 18 (tests/bin/test.sh).

use std::time::Duration;

use tracing::instrument::WithSubscriber;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use platform_tests::database::superuser;
use platform_tests::fault_proxy::{Fault, FaultProxy, Match, Times};
use platform_tests::kube::{TestCluster, client_from, write_identity_kubeconfig};
use serde_json::{Value, json};
use signoz_control::cluster::secret::CREDENTIALS_VERSION_ANNOTATION;
use signoz_control::cluster::sync::sync_cluster;
use signoz_control::credentials::rotation::probe_table;
use signoz_control::credentials::secret_store::{AWSCURRENT, AWSPENDING, Version};
use signoz_control::credentials::values::AppSecret;
use signoz_control::credentials::{ClusterAccess, Deadline, Error, SecretStore};
use signoz_control::events::RotationStep;
use signoz_control::spec::RotationStrategy;

use super::{Platform, STEPS, postgres_verifier};

/// The bun migrator's bookkeeping, as SigNoz runs it at every start (SigNoz/signoz
/// `pkg/sqlmigrator/migrator.go`: bun's `migrate.Migrator` with tables `migration` and
/// `migration_lock`; `Init` creates both if missing, `Lock` inserts a row, each migration
/// runs, is recorded, and the lock row is deleted), around one migration's statements.
async fn run_signoz_migration(client: &tokio_postgres::Client, name: &str, statements: &str) {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS migration (id BIGSERIAL NOT NULL, name VARCHAR, group_id BIGINT,
               migrated_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, PRIMARY KEY (id));
             CREATE TABLE IF NOT EXISTS migration_lock (id BIGSERIAL NOT NULL, table_name VARCHAR,
               PRIMARY KEY (id), UNIQUE (table_name));
             INSERT INTO migration_lock (table_name) VALUES ('migration')",
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: bun's init and lock: {e}"));
    client
        .batch_execute(statements)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    client
        .execute(
            "INSERT INTO migration (name, group_id)
             VALUES ($1, (SELECT COALESCE(max(group_id), 0) + 1 FROM migration))",
            &[&name],
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: record: {e}"));
    client
        .batch_execute("DELETE FROM migration_lock WHERE table_name = 'migration'")
        .await
        .unwrap_or_else(|e| panic!("{name}: unlock: {e}"));
}

/// Objects in SigNoz's schema not owned by `owner`, as `name owned by role`.
async fn not_owned_by(su_in_db: &tokio_postgres::Client, owner: &str) -> Vec<String> {
    su_in_db
        .query(
            "SELECT c.relname::text || ' owned by ' || pg_get_userbyid(c.relowner)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'v')
               AND pg_get_userbyid(c.relowner) <> $1 ORDER BY 1",
            &[&owner],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A superuser connection to the platform's database.
async fn superuser_in(p: &Platform) -> tokio_postgres::Client {
    let admin = &p.admin;
    platform_tests::database::admin_tls(admin)
        .connect(
            &signoz_control::credentials::values::Endpoint {
                host: admin.host.clone(),
                port: admin.port,
            },
            &p.spec.database.database_name,
            &admin.user,
            &signoz_control::credentials::values::Password::new(admin.password.clone()),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_made_before_provisioning_are_handed_to_the_owner_and_two_migrations_in_a_row_work()
{
    let p = Platform::new(RotationStrategy::AlternatingUsers, None).await;
    let db = p.spec.database.clone();
    // An adopted SigNoz database (say, migrated from the chart's bundled PostgreSQL): the
    // master made the owner role earlier (on PostgreSQL 16+ that leaves it ADMIN OPTION
    // only), the database is the master's, and SigNoz's tables belong to the first login
    // (created before its SET ROLE) and to the master (restored by it).
    let master = p.master("postgres").await;
    for statement in [
        format!("CREATE ROLE \"{}\" NOLOGIN", db.owner_role),
        format!("CREATE ROLE \"{}\" LOGIN", db.username),
        format!("CREATE DATABASE \"{}\"", db.database_name),
    ] {
        master.batch_execute(&statement).await.unwrap();
    }
    drop(master);
    let su = superuser_in(&p).await;
    su.batch_execute(&format!(
        "CREATE TABLE organizations (id TEXT PRIMARY KEY, name TEXT NOT NULL);
         INSERT INTO organizations VALUES ('org-1', 'acme');
         CREATE TABLE rules (id SERIAL PRIMARY KEY, org_id TEXT NOT NULL, data TEXT);
         INSERT INTO rules (org_id, data) VALUES ('org-1', 'alert');
         ALTER TABLE organizations OWNER TO \"{app}\";
         ALTER TABLE rules OWNER TO \"{master}\";",
        app = db.username,
        master = p.master_user
    ))
    .await
    .unwrap();

    p.provision().await;
    assert_eq!(
        not_owned_by(&su, &db.owner_role).await,
        Vec::<String>::new(),
        "provisioning hands every SigNoz object to the owner role"
    );
    // Least privilege: PUBLIC may neither connect nor create; a stranger cannot get in.
    let public: (bool, bool, bool) = {
        let row = su
            .query_one(
                "SELECT has_database_privilege('public', current_database(), 'CONNECT'),
                        has_database_privilege('public', current_database(), 'TEMPORARY'),
                        has_schema_privilege('public', 'public', 'CREATE')",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    };
    assert_eq!(
        public,
        (false, false, false),
        "PUBLIC keeps (CONNECT, TEMPORARY, CREATE)"
    );
    let stranger = format!("{}_stranger", db.username);
    su.batch_execute(&format!(
        "CREATE ROLE \"{stranger}\" LOGIN PASSWORD '{}'",
        postgres_verifier("Stranger-pw-1")
    ))
    .await
    .unwrap();
    let refused = p
        .login(&AppSecret {
            username: stranger.clone(),
            password: signoz_control::credentials::values::Password::new("Stranger-pw-1"),
            ..p.current().await
        })
        .await;
    assert!(
        matches!(&refused, Err(Error::Database { sqlstate, .. }) if sqlstate == "42501"),
        "a role without grants connects to SigNoz's database: {refused:?}"
    );

    // SigNoz starts on the first login and migrates; the next start, after a rotation,
    // runs on the other login and alters what the first one (and the adoption) made.
    let first = p.current().await;
    run_signoz_migration(
        &p.login(&first).await.unwrap(),
        "004_add_saved_views",
        "CREATE TABLE IF NOT EXISTS saved_views (id TEXT PRIMARY KEY,
           org_id TEXT NOT NULL REFERENCES organizations (id), data TEXT NOT NULL);
         INSERT INTO saved_views VALUES ('v-1', 'org-1', '{}');
         INSERT INTO rules (org_id, data) VALUES ('org-1', 'by the first login')",
    )
    .await;
    p.rotate().await;
    let second = p.current().await;
    assert_ne!(second.username, first.username);
    run_signoz_migration(
        &p.login(&second).await.unwrap(),
        "045_add_indexes",
        "ALTER TABLE saved_views ADD COLUMN created_at TIMESTAMPTZ;
         CREATE INDEX IF NOT EXISTS idx_saved_views_org ON saved_views (org_id);
         ALTER TABLE organizations ADD COLUMN display_name TEXT;
         UPDATE organizations SET display_name = name;
         INSERT INTO rules (org_id, data) VALUES ('org-1', 'by the second login')",
    )
    .await;
    p.rotate().await;
    let third = p.current().await;
    assert_eq!(third.username, first.username);
    let rows: i64 = p
        .login(&third)
        .await
        .unwrap()
        .query_one(
            "SELECT (SELECT count(*) FROM rules) + (SELECT count(*) FROM migration)
                    + (SELECT count(*) FROM saved_views WHERE created_at IS NULL)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 3 + 2 + 1);
    assert_eq!(
        not_owned_by(&su, &db.owner_role).await,
        Vec::<String>::new()
    );

    // A table the master cannot hand over (its role is not the master's to act as):
    // testSecret proves the pending user can use the existing tables, not only new ones.
    let legacy = format!("{}_legacy", db.username);
    su.batch_execute(&format!(
        "CREATE ROLE \"{legacy}\" NOLOGIN; CREATE TABLE legacy_dashboards (id int);
         ALTER TABLE legacy_dashboards OWNER TO \"{legacy}\""
    ))
    .await
    .unwrap();
    let token = p.start_rotation().await;
    p.step(RotationStep::CreateSecret, &token).await.unwrap();
    let refused = p.step(RotationStep::SetSecret, &token).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Refused { reason } if reason.contains("legacy_dashboards")),
        "{refused:?}"
    );
    // Had setSecret run before the table appeared, testSecret refuses it by name.
    su.batch_execute(&format!(
        "ALTER TABLE legacy_dashboards OWNER TO \"{}\"",
        db.owner_role
    ))
    .await
    .unwrap();
    p.step(RotationStep::SetSecret, &token).await.unwrap();
    su.batch_execute(&format!(
        "ALTER TABLE legacy_dashboards OWNER TO \"{legacy}\""
    ))
    .await
    .unwrap();
    let probe = p.step(RotationStep::TestSecret, &token).await.unwrap_err();
    assert!(
        matches!(&probe, Error::ProbeFailed { reason, .. } if reason.contains("legacy_dashboards")),
        "{probe:?}"
    );
    su.batch_execute(&format!(
        "DROP TABLE legacy_dashboards; DROP ROLE \"{legacy}\"; DROP ROLE \"{stranger}\""
    ))
    .await
    .unwrap();
    p.step(RotationStep::TestSecret, &token).await.unwrap();
    p.step(RotationStep::FinishSecret, &token).await.unwrap();
    drop(su);
    p.cleanup().await;
}

/// An identity the cluster knows but grants nothing: a hand-off as it fails with 403.
async fn unauthorised_client() -> kube::Client {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nobody.kubeconfig");
    write_identity_kubeconfig(&path, "nobody", &[]);
    client_from(&path).await
}

/// The user the cluster's Secret hands to SigNoz, and its version annotation.
async fn handed_off(cluster: &TestCluster, p: &Platform) -> (String, String) {
    let secret = Api::<Secret>::namespaced(cluster.admin.clone(), &p.spec.cluster.namespace)
        .get(&p.spec.database.kubernetes_secret.name)
        .await
        .unwrap();
    let dsn = &secret.data.unwrap()[&p.spec.database.kubernetes_secret.dsn_key].0;
    let url = url::Url::parse(std::str::from_utf8(dsn).unwrap()).unwrap();
    let version = secret.metadata.annotations.unwrap()[CREDENTIALS_VERSION_ANNOTATION].clone();
    (url.username().to_string(), version)
}

/// sync-cluster's reconcile, as its own identity, with the DSN it read from Secrets Manager.
async fn sync_as_sync_cluster(
    cluster: &TestCluster,
    p: &Platform,
    dsn: &signoz_control::cluster::sync::DsnSource,
) -> signoz_control::cluster::sync::SyncReport {
    let client = cluster.client(signoz_control::cluster::FUNCTION).await;
    sync_cluster(&client, &p.spec, Some(dsn), false)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_secret_never_changes_the_password_of_a_user_sessions_or_the_cluster_still_use() {
    let mut p = Platform::new(RotationStrategy::AlternatingUsers, None).await;
    let cluster = p.on_cluster().await;
    p.provision().await;
    let base = p.current().await;
    let initial = signoz_control::cluster::read_dsn(&p.sm, &p.spec)
        .await
        .unwrap()
        .unwrap();
    sync_as_sync_cluster(&cluster, &p, &initial).await;
    // A SigNoz pod on the first user that no restart reached.
    let pod = p.login(&base).await.unwrap();

    // Rotation 1 goes to the clone, but its hand-off is refused (RBAC): the cluster's
    // Secret still names the first user.
    let rotate_credentials = p.ctx.cluster.clone();
    let token = p.start_rotation().await;
    for step in &STEPS[..3] {
        p.step(*step, &token).await.unwrap();
    }
    p.ctx.cluster = ClusterAccess::Client(unauthorised_client().await);
    let failed = p
        .step(RotationStep::FinishSecret, &token)
        .await
        .unwrap_err();
    assert!(matches!(failed, Error::Cluster(_)), "{failed:?}");
    p.ctx.cluster = rotate_credentials;
    assert_eq!(handed_off(&cluster, &p).await.0, base.username);

    // Rotation 2 would change the first user's password: refused while anything uses it.
    let token2 = p.start_rotation().await;
    p.step(RotationStep::CreateSecret, &token2).await.unwrap();
    let in_session = p.step(RotationStep::SetSecret, &token2).await.unwrap_err();
    assert!(
        matches!(&in_session, Error::InUse { check: "pg_stat_activity", user, .. } if *user == base.username),
        "{in_session:?}"
    );
    assert!(in_session.retryable());
    assert!(
        in_session.to_string().contains("pg_stat_activity"),
        "{in_session}"
    );
    drop(pod);
    let named = p.step(RotationStep::SetSecret, &token2).await.unwrap_err();
    assert!(
        matches!(
            &named,
            Error::InUse {
                check: "cluster Secret",
                ..
            }
        ),
        "{named:?}"
    );
    assert!(named.retryable());
    p.login(&base)
        .await
        .expect("the first user's password was not changed while in use");

    // sync-cluster hands AWSCURRENT (the clone) over; the rotation goes through.
    let current = signoz_control::cluster::read_dsn(&p.sm, &p.spec)
        .await
        .unwrap()
        .unwrap();
    sync_as_sync_cluster(&cluster, &p, &current).await;
    assert_eq!(
        handed_off(&cluster, &p).await,
        (format!("{}_clone", base.username), token.clone())
    );
    for step in &STEPS[1..] {
        p.step(*step, &token2).await.unwrap();
    }
    let after = p.current().await;
    assert_eq!(after.username, base.username);
    p.login(&after).await.unwrap();
    assert_eq!(
        handed_off(&cluster, &p).await,
        (base.username.clone(), token2)
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_cluster_never_puts_an_older_dsn_over_the_one_finish_secret_handed_over() {
    let mut p = Platform::new(RotationStrategy::AlternatingUsers, None).await;
    let cluster = p.on_cluster().await;
    p.provision().await;
    let first_version = p
        .versions()
        .await
        .version_with(AWSCURRENT)
        .unwrap()
        .to_string();
    // sync-cluster reads AWSCURRENT, and is slow; meanwhile a rotation finishes.
    let stale = signoz_control::cluster::read_dsn(&p.sm, &p.spec)
        .await
        .unwrap()
        .unwrap();
    let token = p.rotate().await;
    let clone = format!("{}_clone", p.spec.database.username);
    assert_eq!(
        handed_off(&cluster, &p).await,
        (clone.clone(), token.clone())
    );
    let statefulsets =
        Api::<StatefulSet>::namespaced(cluster.admin.clone(), &p.spec.cluster.namespace);
    let restarted_for = |sts: StatefulSet| {
        sts.spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()["signoz-control-plane/restarted-for"]
            .clone()
    };
    let before = restarted_for(statefulsets.get("signoz").await.unwrap());

    let report = sync_as_sync_cluster(&cluster, &p, &stale).await;
    assert_eq!(
        handed_off(&cluster, &p).await,
        (clone.clone(), token.clone()),
        "the older DSN went back into the Secret"
    );
    assert_eq!(
        restarted_for(statefulsets.get("signoz").await.unwrap()),
        before,
        "SigNoz restarted onto the older DSN: {:?}",
        report.restarted
    );
    assert!(report.failure().is_none(), "{:?}", report.failed);

    // An operator moves AWSCURRENT back: the authority says the older version is current
    // again, so the guard lets it through.
    p.ctx
        .secrets
        .move_stage(
            p.app_secret(),
            AWSCURRENT,
            Some(&first_version),
            Some(&token),
        )
        .await
        .unwrap();
    sync_as_sync_cluster(&cluster, &p, &stale).await;
    assert_eq!(
        handed_off(&cluster, &p).await,
        (p.spec.database.username.clone(), first_version)
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_secret_moves_awscurrent_only_to_credentials_that_log_in() {
    let p = Platform::new(RotationStrategy::AlternatingUsers, None).await;
    p.provision().await;
    let before = p.current().await;
    let token = p.start_rotation().await;
    p.step(RotationStep::CreateSecret, &token).await.unwrap();
    // setSecret never ran (or failed): the clone's password is not AWSPENDING's.
    let refused = p
        .step(RotationStep::FinishSecret, &token)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::Authentication { .. }),
        "{refused:?}"
    );
    assert_eq!(
        p.current().await,
        before,
        "AWSCURRENT moved to credentials that do not log in"
    );
    assert!(
        p.secret_at(Version::IdAtStage(&token, AWSPENDING))
            .await
            .is_some(),
        "AWSPENDING stays for the retry"
    );
    for step in &STEPS[1..] {
        p.step(*step, &token).await.unwrap();
    }
    p.login(&p.current().await).await.unwrap();
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_secret_acting_as_the_master_changes_only_the_roles_the_spec_names() {
    let p = Platform::new(RotationStrategy::AlternatingUsers, None).await;
    p.provision().await;
    let su = superuser(&p.admin).await;
    let victim = format!("{}_victim", p.spec.database.username);
    su.batch_execute(&format!(
        "CREATE ROLE \"{victim}\" LOGIN PASSWORD '{}'",
        postgres_verifier("Victim-pw-1")
    ))
    .await
    .unwrap();
    let current = p.current().await;
    let victim_login = AppSecret {
        username: victim.clone(),
        password: signoz_control::credentials::values::Password::new("Victim-pw-1"),
        dbname: "postgres".into(),
        ..current.clone()
    };
    // Someone allowed to PutSecretValue stages AWSPENDING values that point the master
    // at another role, another database, another server.
    let pending_values = [
        ("username", json!({"username": victim})),
        ("username", json!({"username": p.master_user})),
        ("dbname", json!({"dbname": "postgres"})),
        ("host", json!({"host": "localhost"})),
        ("port", json!({"port": p.admin.port + 1})),
    ];
    for (field, change) in pending_values {
        let token = p.start_rotation().await;
        let mut value: Value = serde_json::from_str(&current.to_json()).unwrap();
        value["username"] = format!("{}_clone", p.spec.database.username).into();
        for (k, v) in change.as_object().unwrap() {
            value[k] = v.clone();
        }
        p.sm.put_secret_value()
            .secret_id(p.app_secret())
            .client_request_token(&token)
            .secret_string(value.to_string())
            .version_stages(AWSPENDING)
            .send()
            .await
            .unwrap();
        for step in [
            RotationStep::SetSecret,
            RotationStep::TestSecret,
            RotationStep::FinishSecret,
        ] {
            let err = p.step(step, &token).await.unwrap_err();
            assert!(
                matches!(&err, Error::Refused { reason } if reason.contains(field)),
                "{step} with another {field}: {err:?}"
            );
        }
        // Leave the pending version so the next start_rotation begins afresh.
        p.ctx
            .secrets
            .move_stage(p.app_secret(), AWSPENDING, None, Some(&token))
            .await
            .unwrap();
    }
    p.login(&victim_login)
        .await
        .expect("the victim's password was changed by our master");

    // A rotation request for another secret (one that rotates with this function too).
    let other = format!("{}-other", p.app_secret());
    p.sm.create_secret()
        .name(&other)
        .secret_string(current.to_json())
        .send()
        .await
        .unwrap();
    let token = p.start_rotation_of(&other).await;
    let err = signoz_control::credentials::run_rotation_step(
        &p.ctx,
        &p.spec,
        &signoz_control::events::RotationRequest {
            step: RotationStep::CreateSecret,
            secret_id: other.clone(),
            token,
            rotation_token: None,
        },
        Deadline::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Refused { reason } if reason.contains("not the spec's app secret")),
        "{err:?}"
    );
    su.batch_execute(&format!("DROP ROLE \"{victim}\""))
        .await
        .unwrap();
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_secret_keeps_aws_structure_and_unknown_keys_through_rotations() {
    let p = Platform::new(RotationStrategy::AlternatingUsers, None).await;
    p.provision().await;
    let provisioned: Value = serde_json::from_str(
        &p.ctx
            .secrets
            .read(p.app_secret(), Version::Stage(AWSCURRENT))
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(provisioned["engine"], "postgres");
    assert_eq!(
        provisioned["dbInstanceIdentifier"],
        p.spec.database.instance_identifier
    );
    assert_eq!(provisioned["masterarn"], p.spec.database.master_secret_arn);
    // The operator's keys (a replica, a note) and a port given as text, as AWS allows.
    let mut value = provisioned.clone();
    value["replicas"] = json!([{"host": "replica.local", "port": 5432}]);
    value["owner_team"] = json!("observability");
    value["port"] = json!(p.admin.port.to_string());
    p.sm.put_secret_value()
        .secret_id(p.app_secret())
        .secret_string(value.to_string())
        .send()
        .await
        .unwrap();
    p.rotate().await;
    p.rotate().await;
    let text = p
        .ctx
        .secrets
        .read(p.app_secret(), Version::Stage(AWSCURRENT))
        .await
        .unwrap()
        .unwrap();
    let rotated: Value = serde_json::from_str(&text).unwrap();
    for key in [
        "replicas",
        "owner_team",
        "dbInstanceIdentifier",
        "masterarn",
        "engine",
        "host",
        "dbname",
    ] {
        assert_eq!(rotated[key], value[key], "{key} did not survive: {text}");
    }
    let nulls: Vec<&String> = rotated
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.is_null())
        .map(|(k, _)| k)
        .collect();
    assert!(nulls.is_empty(), "null written for {nulls:?}");
    p.login(&p.current().await).await.unwrap();
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_libpq_client_logs_in_with_the_dsn_and_ca_bundle_from_the_secret_as_written() {
    let mut p = Platform::new(RotationStrategy::AlternatingUsers, None).await;
    // Where the pod would mount the CA key (chart `signoz.additionalVolumeMounts`).
    let mount = tempfile::tempdir().unwrap();
    p.spec.database.kubernetes_secret.ca_mount_path = mount.path().display().to_string();
    std::fs::write(p.spec_file.path(), platform_tests::kube::spec_yaml(&p.spec)).unwrap();
    let cluster = p.on_cluster().await;
    p.provision().await;
    p.rotate().await;
    let secret = Api::<Secret>::namespaced(cluster.admin.clone(), &p.spec.cluster.namespace)
        .get(&p.spec.database.kubernetes_secret.name)
        .await
        .unwrap();
    let data = secret.data.unwrap();
    let keys = &p.spec.database.kubernetes_secret;
    // What the kubelet projects: the CA key's bytes at <mountPath>/<path>.
    std::fs::write(mount.path().join(&keys.ca_key), &data[&keys.ca_key].0).unwrap();
    let dsn = String::from_utf8(data[&keys.dsn_key].0.clone()).unwrap();
    assert!(
        dsn.contains("sslmode=verify-full"),
        "{}",
        dsn.split('@').nth(1).unwrap_or("")
    );
    // psql is libpq, whose URI rules pgx follows for sslmode and sslrootcert.
    let out = std::process::Command::new("psql")
        .arg(&dsn)
        .args([
            "-XAt",
            "-F",
            " ",
            "-c",
            // pg_stat_ssl shows a session to its own user, not to the role it SET ROLEs to.
            "SET ROLE NONE; SELECT session_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", mount.path())
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql refused the DSN: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("SET\n{}_clone t", p.spec.database.username),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the bundle where sslrootcert points, verify-full refuses: it is that file.
    std::fs::remove_file(mount.path().join(&keys.ca_key)).unwrap();
    let without = std::process::Command::new("psql")
        .arg(&dsn)
        .args(["-XAtc", "SELECT 1"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", mount.path())
        .output()
        .unwrap();
    assert!(!without.status.success());
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_user_rotation_interrupted_after_any_step_resumes_and_awscurrent_always_logs_in() {
    let mut p = Platform::new(RotationStrategy::SingleUser, None).await;
    let _cluster = p.on_cluster().await;
    p.provision().await;
    let rotate_credentials = p.ctx.cluster.clone();
    let direct = p.ctx.secrets.clone();
    let proxy = FaultProxy::start(&platform_tests::stack_var("AWS_ENDPOINT_URL")).await;
    let through_proxy = aws_sdk_secretsmanager::config::Builder::from(&p.ctx.sdk)
        .endpoint_url(&proxy.url)
        .build();
    // Secrets Manager calls the next step only after a step succeeded: an interruption
    // after step k is step k+1 failing (and Secrets Manager resuming from the start).
    for interrupted_after in 0..STEPS.len() {
        let token = p.start_rotation().await;
        for step in &STEPS[..interrupted_after] {
            p.step(*step, &token).await.unwrap();
        }
        let failing = STEPS[interrupted_after];
        let su = superuser_in(&p).await;
        let failed = match failing {
            // Secrets Manager fails to store the pending version.
            RotationStep::CreateSecret => {
                p.ctx.secrets = SecretStore::new(aws_sdk_secretsmanager::Client::from_conf(
                    through_proxy.clone(),
                ));
                proxy.inject(
                    Match::operation("secretsmanager.PutSecretValue"),
                    Fault::InternalError,
                    Times::always(),
                );
                let failed = p.step(failing, &token).await.map(|_| ());
                proxy.heal();
                p.ctx.secrets = direct.clone();
                failed
            }
            // Too little time left for a database attempt.
            RotationStep::SetSecret => p
                .step_of(
                    &p.spec,
                    failing,
                    &token,
                    Deadline::after(Duration::from_millis(700)),
                )
                .await
                .map(|_| ()),
            // The probe cannot do SigNoz's work: a table in its way that it cannot drop.
            RotationStep::TestSecret => {
                su.batch_execute(&format!(
                    "CREATE TABLE public.\"{}\" (id int)",
                    probe_table(&token)
                ))
                .await
                .unwrap();
                let failed = p.step(failing, &token).await.map(|_| ());
                su.batch_execute(&format!("DROP TABLE public.\"{}\"", probe_table(&token)))
                    .await
                    .unwrap();
                failed
            }
            // Secrets Manager fails to move AWSCURRENT, then the hand-off is refused.
            RotationStep::FinishSecret => {
                p.ctx.secrets = SecretStore::new(aws_sdk_secretsmanager::Client::from_conf(
                    through_proxy.clone(),
                ));
                proxy.inject(
                    Match::operation("secretsmanager.UpdateSecretVersionStage"),
                    Fault::InternalError,
                    Times::always(),
                );
                let moving = p.step(failing, &token).await.map(|_| ());
                proxy.heal();
                p.ctx.secrets = direct.clone();
                assert!(moving.is_err(), "finishSecret with AWSCURRENT not moving");
                p.login(&p.current().await)
                    .await
                    .expect("AWSCURRENT logs in after finishSecret failed to move it");
                // Once more from the start, now with the hand-off refused by RBAC.
                for step in &STEPS[..3] {
                    p.step(*step, &token).await.unwrap();
                }
                p.ctx.cluster = ClusterAccess::Client(unauthorised_client().await);
                let handoff = p.step(failing, &token).await.map(|_| ());
                p.ctx.cluster = rotate_credentials.clone();
                handoff
            }
        };
        assert!(failed.is_err(), "{failing} was to fail");
        p.login(&p.current().await)
            .await
            .unwrap_or_else(|e| panic!("AWSCURRENT does not log in after {failing} failed: {e}"));
        // Secrets Manager resumes: every step again, from the start. Single user has one
        // window, from setSecret to finishSecret, where the database holds AWSPENDING.
        for step in STEPS {
            p.step(step, &token).await.unwrap();
            let in_window = matches!(step, RotationStep::SetSecret | RotationStep::TestSecret)
                && p.versions().await.has_stage(&token, AWSPENDING);
            let holder = if in_window {
                p.secret_at(Version::IdAtStage(&token, AWSPENDING))
                    .await
                    .unwrap()
            } else {
                p.current().await
            };
            p.login(&holder).await.unwrap_or_else(|e| {
                panic!("after {step} (resumed after {failing}), neither AWSCURRENT nor, in the window, AWSPENDING logs in: {e}")
            });
        }
        let versions = p.versions().await;
        assert_eq!(versions.version_with(AWSCURRENT), Some(token.as_str()));
    }
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rds_managed_master_caught_between_its_pending_and_current_values_logs_in_with_pending()
{
    let name = format!("rds!{}", platform_tests::unique("db"));
    let p = Platform::new(RotationStrategy::AlternatingUsers, Some(name)).await;
    p.provision().await;
    let token = p.start_rotation().await;
    p.step(RotationStep::CreateSecret, &token).await.unwrap();
    // RDS's own rotation: the new password is AWSPENDING and already in the database;
    // AWSCURRENT still holds the old one.
    let new_master = format!("Pending{}", token.replace('-', ""));
    p.sm.put_secret_value()
        .secret_id(&p.spec.database.master_secret_arn)
        .secret_string(
            json!({"username": p.master_user, "password": new_master,
                   "host": p.admin.host, "port": p.admin.port})
            .to_string(),
        )
        .version_stages(AWSPENDING)
        .send()
        .await
        .unwrap();
    p.set_master_password_in_database(&new_master).await;
    let log = super::LogCapture::default();
    p.step(RotationStep::SetSecret, &token)
        .with_subscriber(log.subscriber())
        .await
        .expect("logged in with the master secret's AWSPENDING");
    let lines = log.text();
    assert!(
        lines.contains("master logged in with the RDS-managed secret's AWSPENDING"),
        "{lines}"
    );
    assert!(
        !lines.contains("re-reading"),
        "paused and re-read instead of trying AWSPENDING at once"
    );
    p.step(RotationStep::TestSecret, &token).await.unwrap();
    p.step(RotationStep::FinishSecret, &token).await.unwrap();
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enforced_posture_fails_provisioning_on_a_finding_before_anything_is_made() {
    let p = Platform::new(RotationStrategy::AlternatingUsers, None).await;
    let mut spec = p.spec.clone();
    spec.database.posture.enforce = true;
    let err =
        signoz_control::credentials::provision_database(&p.ctx, &spec, false, Deadline::default())
            .await
            .unwrap_err();
    let Error::PostureFindings { findings, .. } = &err else {
        panic!("{err:?}");
    };
    let checks: Vec<&str> = findings
        .iter()
        .map(|f| f.split(':').next().unwrap())
        .collect();
    // moto's instance: its default parameter group sets neither rds.force_ssl nor
    // password_encryption, and its CA is "rds-ca-default".
    for check in ["force_ssl", "password_encryption", "ca_certificate"] {
        assert!(checks.contains(&check), "{check} not among {checks:?}");
    }
    assert!(!checks.contains(&"publicly_accessible"), "{checks:?}");
    // The deployment made the app secret, empty: provisioning wrote no value into it.
    assert!(
        p.ctx
            .secrets
            .read(p.app_secret(), Version::Stage(AWSCURRENT))
            .await
            .unwrap()
            .is_none(),
        "the app secret got a value anyway"
    );
    let owner: Option<tokio_postgres::Row> = superuser(&p.admin)
        .await
        .query_opt(
            "SELECT 1 FROM pg_roles WHERE rolname = $1",
            &[&spec.database.owner_role],
        )
        .await
        .unwrap();
    assert!(owner.is_none(), "roles were made anyway");
    // Not enforced: the same findings are reported and provisioning goes on.
    let outcome = p.provision().await;
    if let Some(outcome) = outcome {
        assert!(outcome.findings.iter().any(|f| !f.ok));
    }
    p.cleanup().await;
}
