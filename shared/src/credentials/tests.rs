//! Unit tests of the pure decisions: token checks, user alternation, access planning,
//! finishing, the DSN, posture, and that secret values never print.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::Error;
use super::access::{
    AccessChange, DesiredAccess, ForeignObject, ObjectKind, ObservedAccess, ObservedLogin,
    ObservedObjects, plan_database_access, plan_object_access,
};
use super::deadline::{
    DEFAULT_BUDGET, Deadline, MIN_ATTEMPT, REPORT_MARGIN, attempt_timeouts, retry_fits,
};
use super::dsn::signoz_dsn;
use super::postgres::{CaSource, RDS_CA_BUNDLE_ENV, Timeouts};
use super::posture::{InstanceFacts, assess_posture};
use super::rotation::{
    TokenState, check_current_target, check_pending_target, check_secret_is_the_apps, check_token,
    login_roles, next_username, plan_finish,
};
use super::secret_store::SecretVersions;
use super::values::{AppSecret, MasterSecret, Password};
use crate::spec::{Database, DatabaseTls, EXAMPLE_SPEC, RotationStrategy, TlsMode, parse_spec};

fn database(strategy: RotationStrategy) -> Database {
    let mut db = parse_spec(EXAMPLE_SPEC).unwrap().database;
    db.strategy = strategy;
    db
}

fn versions(enabled: bool, stages: &[(&str, &[&str])]) -> SecretVersions {
    SecretVersions {
        arn: "arn:secret".into(),
        rotation_enabled: enabled,
        stages: stages
            .iter()
            .map(|(v, s)| (v.to_string(), s.iter().map(|x| x.to_string()).collect()))
            .collect::<BTreeMap<_, _>>(),
        ..SecretVersions::default()
    }
}

#[test]
fn a_pending_token_proceeds_and_a_current_one_is_a_no_op() {
    let v = versions(true, &[("old", &["AWSCURRENT"]), ("new", &["AWSPENDING"])]);
    assert_eq!(
        check_token("s", Some(&v), "new").unwrap(),
        TokenState::Pending
    );
    assert_eq!(
        check_token("s", Some(&v), "old").unwrap(),
        TokenState::AlreadyCurrent
    );
}

#[test]
fn start_up_checks_reject_disabled_rotation_unknown_tokens_and_unstaged_versions() {
    let v = versions(true, &[("old", &["AWSPREVIOUS"]), ("cur", &["AWSCURRENT"])]);
    assert!(matches!(
        check_token("s", Some(&v), "nope"),
        Err(Error::UnknownToken { .. })
    ));
    assert!(matches!(
        check_token("s", Some(&v), "old"),
        Err(Error::NotPending { .. })
    ));
    let disabled = versions(false, &[("new", &["AWSPENDING"])]);
    assert!(matches!(
        check_token("s", Some(&disabled), "new"),
        Err(Error::RotationDisabled { .. })
    ));
    assert!(matches!(
        check_token("s", None, "new"),
        Err(Error::SecretNotFound { .. })
    ));
}

#[test]
fn alternating_users_swap_between_the_user_and_its_clone_and_single_user_keeps_it() {
    let alt = database(RotationStrategy::AlternatingUsers);
    assert_eq!(next_username(&alt, "signoz_app"), "signoz_app_clone");
    assert_eq!(next_username(&alt, "signoz_app_clone"), "signoz_app");
    assert_eq!(login_roles(&alt), ["signoz_app", "signoz_app_clone"]);
    let single = database(RotationStrategy::SingleUser);
    assert_eq!(next_username(&single, "signoz_app"), "signoz_app");
    assert_eq!(login_roles(&single), ["signoz_app"]);
}

fn desired<'a>(logins: &'a [String], create_database: bool) -> DesiredAccess<'a> {
    DesiredAccess {
        database: "signoz",
        owner: "signoz_owner",
        logins,
        create_database,
        master: "signoz_master",
    }
}

#[test]
fn an_empty_server_gets_owner_then_database_then_logins_with_membership() {
    let logins = vec!["app".to_string()];
    let changes =
        plan_database_access(&ObservedAccess::default(), &desired(&logins, true)).unwrap();
    let sql: Vec<String> = changes.iter().map(AccessChange::sql).collect();
    assert_eq!(
        sql,
        [
            r#"CREATE ROLE "signoz_owner" NOLOGIN"#,
            r#"GRANT "signoz_owner" TO CURRENT_USER"#,
            r#"CREATE DATABASE "signoz" OWNER "signoz_owner""#,
            r#"CREATE ROLE "app" LOGIN"#,
            r#"GRANT "signoz_owner" TO "app""#,
            r#"ALTER ROLE "app" SET role = "signoz_owner""#,
            r#"GRANT CONNECT ON DATABASE "signoz" TO "app""#,
        ]
    );
}

#[test]
fn a_converged_server_needs_nothing_and_a_lost_membership_is_restored() {
    let logins = vec!["app".to_string(), "app_clone".to_string()];
    let mut observed = ObservedAccess {
        owner_exists: true,
        master_acts_as_owner: true,
        database_owner: Some("signoz_owner".into()),
        logins: vec![converged_login("app"), converged_login("app_clone")],
        ..ObservedAccess::default()
    };
    assert!(
        plan_database_access(&observed, &desired(&logins, false))
            .unwrap()
            .is_empty()
    );
    observed.logins[1].member_of_owner = false;
    assert_eq!(
        plan_database_access(&observed, &desired(&logins, false)).unwrap(),
        [AccessChange::GrantOwnerMembership {
            role: "app_clone".into(),
            owner: "signoz_owner".into()
        }]
    );
}

#[test]
fn a_database_owned_by_someone_else_is_transferred_to_the_owner_role() {
    let observed = ObservedAccess {
        owner_exists: true,
        master_acts_as_owner: true,
        database_owner: Some("postgres".into()),
        ..ObservedAccess::default()
    };
    assert_eq!(
        plan_database_access(&observed, &desired(&[], true)).unwrap(),
        [AccessChange::TransferDatabase {
            database: "signoz".into(),
            from: "postgres".into(),
            to: "signoz_owner".into()
        }]
    );
}

fn converged_login(name: &str) -> ObservedLogin {
    ObservedLogin {
        name: name.into(),
        exists: true,
        can_login: true,
        member_of_owner: true,
        defaults_to_owner: true,
        can_connect: true,
        ..ObservedLogin::default()
    }
}

#[test]
fn an_owner_the_master_is_only_an_admin_of_is_granted_before_the_database_is_made() {
    // PostgreSQL 16+: CREATE ROLE leaves its creator ADMIN OPTION only, which counts as
    // membership but lets it neither use the role's rights nor SET ROLE to it.
    let observed = ObservedAccess {
        owner_exists: true,
        master_acts_as_owner: false,
        ..ObservedAccess::default()
    };
    let changes = plan_database_access(&observed, &desired(&[], true)).unwrap();
    assert_eq!(
        changes.iter().map(AccessChange::sql).collect::<Vec<_>>(),
        [
            r#"GRANT "signoz_owner" TO CURRENT_USER"#,
            r#"CREATE DATABASE "signoz" OWNER "signoz_owner""#,
        ]
    );
}

#[test]
fn the_master_a_privileged_role_or_a_reserved_name_is_never_an_app_role() {
    let master = vec!["signoz_master".to_string()];
    let refused = plan_database_access(&ObservedAccess::default(), &desired(&master, true));
    assert_eq!(refused.unwrap_err().reason, "it is the master user");
    for name in ["rds_superuser", "pg_read_all_data", "postgres", "rdsadmin"] {
        let logins = vec![name.to_string()];
        let refused =
            plan_database_access(&ObservedAccess::default(), &desired(&logins, true)).unwrap_err();
        assert_eq!(refused.role, name);
    }
    let logins = vec!["app".to_string()];
    let observed = ObservedAccess {
        owner_exists: true,
        master_acts_as_owner: true,
        database_owner: Some("signoz_owner".into()),
        logins: vec![ObservedLogin {
            privileged: true,
            ..converged_login("app")
        }],
        ..ObservedAccess::default()
    };
    let refused = plan_database_access(&observed, &desired(&logins, false)).unwrap_err();
    assert!(
        refused.reason.contains("superuser or has CREATEROLE"),
        "{refused:?}"
    );
}

#[test]
fn objects_of_logins_are_reassigned_the_masters_handed_over_and_public_loses_its_rights() {
    let logins = vec!["app".to_string(), "app_clone".to_string()];
    let object = |kind, name: &str, owner: &str, acts| ForeignObject {
        kind,
        name: name.into(),
        owner: owner.into(),
        master_acts_as_owner: acts,
    };
    let observed = ObservedObjects {
        public_database_access: true,
        public_creates_in_schema: true,
        owner_creates_in_schema: false,
        foreign: vec![
            object(ObjectKind::Table, r#""public"."dashboards""#, "app", false),
            object(ObjectKind::Sequence, r#""public"."ids""#, "app", false),
            object(
                ObjectKind::Table,
                r#""public"."rules""#,
                "signoz_master",
                true,
            ),
            object(
                ObjectKind::Function,
                r#""public"."f"(integer)"#,
                "signoz_master",
                true,
            ),
        ],
    };
    let seen = [
        ObservedLogin {
            master_acts_as: false,
            ..converged_login("app")
        },
        converged_login("app_clone"),
    ];
    let (changes, stuck) = plan_object_access(&observed, &desired(&logins, false), &seen);
    assert!(stuck.is_empty());
    assert_eq!(
        changes.iter().map(AccessChange::sql).collect::<Vec<_>>(),
        [
            r#"GRANT USAGE, CREATE ON SCHEMA public TO "signoz_owner""#,
            r#"GRANT "app" TO CURRENT_USER"#,
            r#"REASSIGN OWNED BY "app" TO "signoz_owner""#,
            r#"ALTER TABLE "public"."rules" OWNER TO "signoz_owner""#,
            r#"ALTER FUNCTION "public"."f"(integer) OWNER TO "signoz_owner""#,
            r#"REVOKE CONNECT, TEMPORARY ON DATABASE "signoz" FROM PUBLIC"#,
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        ]
    );
    // A role the master cannot act as: nobody here can hand its objects over.
    let foreign = ObservedObjects {
        foreign: vec![object(
            ObjectKind::Table,
            r#""public"."x""#,
            "legacy",
            false,
        )],
        owner_creates_in_schema: true,
        ..ObservedObjects::default()
    };
    let (changes, stuck) = plan_object_access(&foreign, &desired(&logins, false), &seen);
    assert!(changes.is_empty());
    assert_eq!(stuck[0].owner, "legacy");
}

#[test]
fn identifiers_with_quotes_are_escaped() {
    let change = AccessChange::CreateLoginRole {
        role: r#"we"ird"#.into(),
    };
    assert_eq!(change.sql(), r#"CREATE ROLE "we""ird" LOGIN"#);
}

#[test]
fn finishing_moves_current_and_clears_pending_once() {
    let v = versions(true, &[("old", &["AWSCURRENT"]), ("new", &["AWSPENDING"])]);
    let plan = plan_finish(&v, "new");
    assert!(plan.move_current && plan.clear_pending);
    assert_eq!(plan.current_from.as_deref(), Some("old"));
    let done = versions(true, &[("old", &["AWSPREVIOUS"]), ("new", &["AWSCURRENT"])]);
    let plan = plan_finish(&done, "new");
    assert!(!plan.move_current && !plan.clear_pending);
    let half = versions(
        true,
        &[
            ("old", &["AWSPREVIOUS"]),
            ("new", &["AWSCURRENT", "AWSPENDING"]),
        ],
    );
    let plan = plan_finish(&half, "new");
    assert!(!plan.move_current && plan.clear_pending);
}

fn app_secret(username: &str, password: &str) -> AppSecret {
    AppSecret {
        engine: "postgres".into(),
        host: "signoz.abc.eu-west-1.rds.amazonaws.com".into(),
        port: 5432,
        username: username.into(),
        password: Password::new(password),
        dbname: "signoz".into(),
        masterarn: None,
        extra: Default::default(),
    }
}

#[test]
fn the_dsn_round_trips_through_a_url_parser_whatever_the_password() {
    for password in ["Abc123xyz", "p@ss:w/rd?#%&=+ ü'\"", "%41%", "0"] {
        let secret = app_secret("signoz_app_clone", password);
        let dsn = signoz_dsn(&secret, &database(RotationStrategy::AlternatingUsers));
        let url = url::Url::parse(&dsn).unwrap();
        assert_eq!(url.scheme(), "postgres");
        assert_eq!(
            url.host_str(),
            Some("signoz.abc.eu-west-1.rds.amazonaws.com")
        );
        assert_eq!(url.port(), Some(5432));
        assert_eq!(url.path(), "/signoz");
        assert_eq!(percent_decode(url.username()), "signoz_app_clone");
        assert_eq!(percent_decode(url.password().unwrap()), password);
        assert_eq!(
            url.query_pairs().collect::<Vec<_>>(),
            [
                ("sslmode".into(), "verify-full".into()),
                (
                    "sslrootcert".into(),
                    "/etc/signoz-control/database-ca/database-ca.pem".into()
                )
            ]
        );
        assert_eq!(
            super::dsn::decode_userinfo(url.password().unwrap()),
            password
        );
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn secret_values_never_print_in_debug_or_parse_errors() {
    let secret = app_secret("app", "hunter2-very-secret");
    assert!(!format!("{secret:?}").contains("hunter2"));
    let err = AppSecret::parse(
        "s",
        r#"{"engine":"postgres","password":"hunter2-very-secret"}"#,
    )
    .unwrap_err();
    assert!(matches!(err, Error::MalformedSecret { .. }));
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err = MasterSecret::parse("m", r#"{"username": 5, "password": "hunter2-very-secret"}"#)
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err = AppSecret::parse("s", "hunter2-very-secret").unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn the_app_secret_keeps_unknown_keys_writes_no_null_and_defaults_like_aws() {
    let text = r#"{"engine":"postgres","host":"h","username":"u","password":"p",
        "dbInstanceIdentifier":"signoz-metadata","replicas":[{"host":"r"}],"note":null}"#;
    let secret = AppSecret::parse("s", text).unwrap();
    assert_eq!((secret.port, secret.dbname.as_str()), (5432, "postgres"));
    let written: serde_json::Value = serde_json::from_str(&secret.to_json()).unwrap();
    assert_eq!(written["dbInstanceIdentifier"], "signoz-metadata");
    assert_eq!(written["replicas"][0]["host"], "r");
    let nulls: Vec<_> = written
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    assert!(nulls.is_empty(), "null written for {nulls:?}");
    assert!(written.get("masterarn").is_none());
    let mysql = AppSecret::parse(
        "s",
        r#"{"engine":"mysql","host":"h","username":"u","password":"p"}"#,
    )
    .unwrap_err();
    assert!(
        mysql.to_string().contains("must be \"postgres\""),
        "{mysql}"
    );
}

#[test]
fn pending_values_pointing_elsewhere_are_refused_before_the_master_acts() {
    let db = database(RotationStrategy::AlternatingUsers);
    let current = app_secret("signoz_app", "a");
    let fine = app_secret("signoz_app_clone", "b");
    check_pending_target(&db, "s", &current, &fine).unwrap();
    for (field, pending) in [
        ("username", app_secret("postgres", "b")),
        ("username", app_secret("signoz_app", "b")),
        (
            "host",
            AppSecret {
                host: "evil.example".into(),
                ..fine.clone()
            },
        ),
        (
            "port",
            AppSecret {
                port: 6432,
                ..fine.clone()
            },
        ),
        (
            "dbname",
            AppSecret {
                dbname: "postgres".into(),
                ..fine.clone()
            },
        ),
    ] {
        let err = check_pending_target(&db, "s", &current, &pending).unwrap_err();
        assert!(matches!(err, Error::Refused { .. }), "{field}: {err:?}");
        assert!(err.to_string().contains(field), "{err}");
    }
    let foreign = app_secret("someone_else", "a");
    assert!(check_current_target(&db, "s", &foreign).is_err());
    for foreign in [
        "another/secret",
        "arn:aws:secretsmanager:eu-west-1:1:secret:another/secret-AbCdEf",
        // The spec's name as a prefix of another secret's.
        &format!(
            "arn:aws:secretsmanager:eu-west-1:1:secret:{}-x-AbCdEf",
            db.app_secret_name
        ),
    ] {
        assert!(
            matches!(
                check_secret_is_the_apps(&db, foreign),
                Err(Error::Refused { .. })
            ),
            "{foreign}"
        );
    }
    check_secret_is_the_apps(&db, &db.app_secret_name).unwrap();
    let arn = format!(
        "arn:aws:secretsmanager:eu-west-1:1:secret:{}-AbCdEf",
        db.app_secret_name
    );
    check_secret_is_the_apps(&db, &arn).unwrap();
}

#[test]
fn ports_are_accepted_as_numbers_or_text() {
    let text = r#"{"engine":"postgres","host":"h","port":"5433","username":"u","password":"p","dbname":"d"}"#;
    assert_eq!(AppSecret::parse("s", text).unwrap().port, 5433);
    let master = MasterSecret::parse("m", r#"{"username":"u","password":"p"}"#).unwrap();
    assert_eq!(master.endpoint(), None);
}

#[test]
fn posture_reports_each_check_and_multi_az_only_when_required() {
    let facts = InstanceFacts {
        identifier: "db".into(),
        storage_encrypted: true,
        deletion_protection: false,
        multi_az: false,
        parameter_group: Some("default.postgres15".into()),
        force_ssl: Some("0".into()),
        ..InstanceFacts::default()
    };
    let mut db = database(RotationStrategy::SingleUser);
    db.require_multi_az = true;
    db.master_secret_arn = "arn:aws:secretsmanager:eu-west-1:1:secret:rds!db-1".into();
    let facts = InstanceFacts {
        password_encryption: Some("md5".into()),
        publicly_accessible: true,
        ca_certificate: Some("rds-ca-2019".into()),
        master_secret_arn: Some("arn:aws:secretsmanager:eu-west-1:1:secret:rds!db-2".into()),
        ..facts
    };
    let findings = assess_posture(&facts, &db);
    let failed: Vec<_> = findings.iter().filter(|f| !f.ok).map(|f| f.check).collect();
    assert_eq!(
        failed,
        [
            "deletion_protection",
            "force_ssl",
            "password_encryption",
            "publicly_accessible",
            "ca_certificate",
            "master_user_secret",
            "multi_az"
        ]
    );
    db.require_multi_az = false;
    assert_eq!(assess_posture(&facts, &db).len(), 7);
    let good = InstanceFacts {
        deletion_protection: true,
        force_ssl: Some("1".into()),
        password_encryption: Some("scram-sha-256".into()),
        publicly_accessible: false,
        ca_certificate: Some("rds-ca-rsa2048-g1".into()),
        master_secret_arn: Some(db.master_secret_arn.clone()),
        ..facts
    };
    assert!(assess_posture(&good, &db).iter().all(|f| f.ok));
}

#[test]
fn the_shipped_rds_bundle_parses_and_holds_the_rds_root_cas() {
    let roots = CaSource::ShippedRdsBundle.roots().unwrap();
    assert_eq!(
        CaSource::ShippedRdsBundle.roots().unwrap().len(),
        roots.len(),
        "the cached parse is the same bundle"
    );
    assert_eq!(roots.len(), 87, "every unexpired regional RDS root CA");
    let subjects: Vec<Vec<u8>> = roots
        .roots
        .iter()
        .map(|anchor| anchor.subject.as_ref().to_vec())
        .collect();
    let holds = |name: &str| {
        subjects
            .iter()
            .any(|s| s.windows(name.len()).any(|w| w == name.as_bytes()))
    };
    for region in ["eu-west-1", "us-east-1", "ap-southeast-2"] {
        for kind in ["RSA2048 G1", "RSA4096 G1", "ECC384 G1"] {
            let name = format!("Amazon RDS {region} Root CA {kind}");
            assert!(holds(&name), "{name} is missing from the shipped bundle");
        }
    }
    assert!(!holds("2019 CA"), "the expired 2019 CAs are left out");
}

#[test]
fn a_missing_or_empty_ca_file_is_an_error_naming_the_file_and_the_setting() {
    let tls = DatabaseTls {
        mode: TlsMode::VerifyFull,
        ca_file: Some("/nonexistent/rds-ca.pem".into()),
        negotiation: Default::default(),
    };
    let err = CaSource::for_spec(&tls).roots().unwrap_err();
    assert!(matches!(err, Error::CaBundle { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("/nonexistent/rds-ca.pem") && text.contains("database.tls.ca_file"),
        "{text}"
    );
    let empty = std::env::temp_dir().join(format!("empty-ca-{}.pem", std::process::id()));
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let err = CaSource::File {
        path: empty.clone(),
        setting: format!("environment variable {RDS_CA_BUNDLE_ENV}"),
    }
    .roots()
    .unwrap_err();
    std::fs::remove_file(&empty).unwrap();
    let text = err.to_string();
    assert!(
        text.contains("no certificate") && text.contains("RDS_CA_BUNDLE"),
        "{text}"
    );
}

#[test]
fn attempts_shrink_to_the_time_left_and_none_starts_without_room_to_report() {
    let defaults = Timeouts::default();
    assert_eq!(
        attempt_timeouts(defaults, Duration::from_secs(60)),
        Some(defaults),
        "plenty of time: the defaults"
    );
    let cut = attempt_timeouts(defaults, Duration::from_secs(3)).unwrap();
    assert_eq!(cut.connect, Duration::from_millis(2500));
    assert_eq!(cut.statement, Duration::from_millis(2500));
    assert_eq!(
        attempt_timeouts(defaults, REPORT_MARGIN + MIN_ATTEMPT / 2),
        None
    );
    assert_eq!(attempt_timeouts(defaults, Duration::ZERO), None);
}

#[test]
fn a_master_retry_runs_only_if_the_pause_and_an_attempt_still_fit() {
    let pause = Duration::from_secs(1);
    assert!(retry_fits(pause, Duration::from_secs(10)));
    assert!(retry_fits(pause, pause + REPORT_MARGIN + MIN_ATTEMPT));
    assert!(!retry_fits(pause, pause + REPORT_MARGIN));
    assert!(!retry_fits(pause, Duration::from_millis(200)));
}

#[test]
fn lambdas_deadline_becomes_the_time_left_and_an_unset_one_the_default_budget() {
    let in_two_seconds = SystemTime::now() + Duration::from_secs(2);
    let left = Deadline::from_system_time(in_two_seconds).remaining();
    assert!(
        left <= Duration::from_secs(2) && left > Duration::from_millis(1500),
        "{left:?}"
    );
    let passed = SystemTime::now() - Duration::from_secs(1);
    assert_eq!(
        Deadline::from_system_time(passed).remaining(),
        Duration::ZERO
    );
    // lambda_runtime's Context::default() has deadline 0.
    let unset = Deadline::from_system_time(SystemTime::UNIX_EPOCH).remaining();
    assert!(unset > DEFAULT_BUDGET - Duration::from_secs(1), "{unset:?}");
}

#[test]
fn running_out_of_time_is_retryable_and_says_how_much_was_left() {
    let err = Error::DeadlineNear {
        op: "master login retry",
        remaining_ms: 420,
    };
    assert!(err.retryable());
    assert_eq!(
        err.to_string(),
        "not enough time left for master login retry: 420 ms"
    );
}

#[test]
fn generated_passwords_are_letters_and_digits_of_the_length_asked_each_class_in_each() {
    let mut counts = [0usize; 128];
    for length in [20, 32, 40, 4096] {
        let password = Password::generate(length).unwrap();
        let text = password.expose();
        assert_eq!(text.len(), length as usize);
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric()), "{text}");
        assert!(text.bytes().any(|b| b.is_ascii_uppercase()));
        assert!(text.bytes().any(|b| b.is_ascii_lowercase()));
        assert!(text.bytes().any(|b| b.is_ascii_digit()));
        for b in text.bytes() {
            counts[usize::from(b)] += 1;
        }
    }
    assert_ne!(
        Password::generate(32).unwrap(),
        Password::generate(32).unwrap()
    );
    // 4188 draws over 62 symbols, about 67.5 each: every symbol shows, none dominates
    // (a modulo bias or a stuck byte would).
    let seen: Vec<usize> = counts.iter().copied().filter(|c| *c > 0).collect();
    assert_eq!(seen.len(), 62, "{counts:?}");
    assert!(seen.iter().all(|c| (25..=125).contains(c)), "{seen:?}");
}
