//! One SigNoz metadata database per test on the stack's shared PostgreSQL: its own
//! CREATEROLE/CREATEDB master role, a master secret and an RDS instance in moto, and the
//! example spec pointed at them, so credential tests run in parallel.

use serde_json::json;
use signoz_control::credentials::PgTls;
use signoz_control::credentials::Timeouts;
use signoz_control::credentials::values::{Endpoint, Password};
use signoz_control::spec::{
    DatabaseTls, EXAMPLE_SPEC, PlatformSpec, RotationStrategy, SpecLocation, TlsMode, parse_spec,
};

use crate::{PgAdmin, pg_admin, unique};

/// TLS settings that verify the stack's server with its CA.
pub fn admin_tls(admin: &PgAdmin) -> PgTls {
    PgTls::from_spec(
        &DatabaseTls {
            mode: TlsMode::VerifyFull,
            ca_file: Some(admin.ca_file.clone()),
            negotiation: Default::default(),
        },
        Timeouts::default(),
    )
    .expect("the stack's CA file")
}

/// `server_version_num` of the server `admin` reaches.
pub async fn server_version(admin: &PgAdmin) -> i32 {
    superuser(admin)
        .await
        .query_one("SHOW server_version_num", &[])
        .await
        .expect("the server's version")
        .get::<_, String>(0)
        .parse()
        .expect("a number")
}

/// A connection as the stack's superuser to the `postgres` database.
pub async fn superuser(admin: &PgAdmin) -> tokio_postgres::Client {
    let endpoint = Endpoint {
        host: admin.host.clone(),
        port: admin.port,
    };
    admin_tls(admin)
        .connect(
            &endpoint,
            "postgres",
            &admin.user,
            &Password::new(admin.password.clone()),
        )
        .await
        .expect("superuser connection")
}

/// What [`seed_database`] made.
pub struct SeededDatabase {
    /// The example spec with this database's names, master secret and the stack's CA.
    pub spec: PlatformSpec,
    pub admin: PgAdmin,
    pub master_user: String,
    pub master_password: String,
    /// The spec as a file (JSON, which is YAML); deleted on drop.
    pub spec_file: tempfile::NamedTempFile,
}

/// Creates a master role, its secret (named `master_secret_name`, default `<id>/master`),
/// a moto RDS instance and the empty app secret (as the deployment creates it), and
/// returns the spec naming them.
pub async fn seed_database(
    sdk: &aws_config::SdkConfig,
    prefix: &str,
    strategy: RotationStrategy,
    master_secret_name: Option<String>,
) -> SeededDatabase {
    let admin = pg_admin();
    let id = unique(prefix).replace('-', "_");
    let master_user = format!("{id}_master");
    let master_password = format!("MasterPw{}Zq", id.replace('_', ""));
    let verifier = postgres_protocol::password::scram_sha_256(master_password.as_bytes());
    superuser(&admin)
        .await
        .batch_execute(&format!(
            "CREATE ROLE \"{master_user}\" LOGIN CREATEROLE CREATEDB PASSWORD '{verifier}'"
        ))
        .await
        .expect("create the master role");
    let master_arn = aws_sdk_secretsmanager::Client::new(sdk)
        .create_secret()
        .name(master_secret_name.unwrap_or_else(|| format!("{id}/master")))
        .secret_string(
            json!({"username": master_user, "password": master_password,
                   "host": admin.host, "port": admin.port})
            .to_string(),
        )
        .send()
        .await
        .expect("master secret")
        .arn
        .expect("master secret ARN");
    let instance = id.replace('_', "-");
    aws_sdk_rds::Client::new(sdk)
        .create_db_instance()
        .db_instance_identifier(&instance)
        .engine("postgres")
        .db_instance_class("db.t3.micro")
        .allocated_storage(20)
        .master_username("postgres")
        .master_user_password("not-used-locally")
        .storage_encrypted(true)
        .deletion_protection(true)
        .send()
        .await
        .expect("RDS instance");
    let mut spec = parse_spec(EXAMPLE_SPEC).expect("example spec");
    let db = &mut spec.database;
    db.instance_identifier = instance;
    db.database_name = format!("{id}_signoz");
    db.master_secret_arn = master_arn;
    db.app_secret_name = format!("{id}/app");
    db.strategy = strategy;
    db.username = format!("{id}_app");
    db.owner_role = format!("{id}_owner");
    db.tls = DatabaseTls {
        mode: TlsMode::VerifyFull,
        ca_file: Some(admin.ca_file.clone()),
        negotiation: Default::default(),
    };
    let spec_file = tempfile::NamedTempFile::new().expect("temp file");
    let location = SpecLocation::Path(spec_file.path().into());
    crate::Deployment::for_spec(&spec, &location)
        .create_app_secret(&aws_sdk_secretsmanager::Client::new(sdk))
        .await
        .expect("the empty app secret");
    // JSON is YAML, and round-trips the spec exactly.
    std::fs::write(
        spec_file.path(),
        serde_json::to_string(&spec).expect("spec as JSON"),
    )
    .expect("write the spec");
    SeededDatabase {
        spec,
        admin,
        master_user,
        master_password,
        spec_file,
    }
}

/// Drops what a test's database left on the shared server: the database, the login
/// role(s), the owner role and the master role.
pub async fn drop_database(admin: &PgAdmin, spec: &PlatformSpec, master_user: &str) {
    let su = superuser(admin).await;
    let db = &spec.database;
    let _ = su
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            db.database_name
        ))
        .await;
    for role in [
        format!("{}_clone", db.username),
        db.username.clone(),
        db.owner_role.clone(),
        master_user.to_string(),
    ] {
        let _ = su
            .batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\""))
            .await;
    }
}

/// Every password Secrets Manager still holds, under any staging label, for an app
/// secret: the values a log or error must never contain.
pub async fn app_passwords(
    secrets: &signoz_control::credentials::SecretStore,
    secret_id: &str,
) -> Vec<String> {
    use signoz_control::credentials::secret_store::Version;
    use signoz_control::credentials::values::AppSecret;
    let versions = secrets
        .describe(secret_id)
        .await
        .expect("describe the app secret")
        .expect("the app secret exists");
    let mut out = Vec::new();
    for (id, stages) in &versions.stages {
        for stage in stages {
            let read = secrets.read(secret_id, Version::IdAtStage(id, stage)).await;
            if let Some(text) = read.expect("read an app secret version") {
                let secret = AppSecret::parse(secret_id, &text).expect("an app secret");
                out.push(secret.password.expose().to_string());
            }
        }
    }
    out
}
