//! Unit tests of the pure decisions: token checks, user alternation, access planning,
//! finishing, the DSN, posture, and that secret values never print.

use std::collections::BTreeMap;

use super::Error;
use super::access::{
    AccessChange, DesiredAccess, ObservedAccess, ObservedLogin, plan_database_access,
};
use super::dsn::signoz_dsn;
use super::posture::{InstanceFacts, assess_posture};
use super::rotation::{TokenState, check_token, login_roles, next_username, plan_finish};
use super::secret_store::SecretVersions;
use super::values::{AppSecret, MasterSecret, Password};
use crate::spec::{Database, EXAMPLE_SPEC, RotationStrategy, TlsMode, parse_spec};

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
    }
}

#[test]
fn an_empty_server_gets_owner_then_database_then_logins_with_membership() {
    let logins = vec!["app".to_string()];
    let changes = plan_database_access(&ObservedAccess::default(), &desired(&logins, true));
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
    let login = |name: &str, member: bool| ObservedLogin {
        name: name.into(),
        exists: true,
        can_login: true,
        member_of_owner: member,
        defaults_to_owner: true,
        can_connect: true,
    };
    let mut observed = ObservedAccess {
        owner_exists: true,
        master_in_owner: true,
        database_owner: Some("signoz_owner".into()),
        logins: vec![login("app", true), login("app_clone", true)],
    };
    assert!(plan_database_access(&observed, &desired(&logins, false)).is_empty());
    observed.logins[1].member_of_owner = false;
    assert_eq!(
        plan_database_access(&observed, &desired(&logins, false)),
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
        master_in_owner: true,
        database_owner: Some("postgres".into()),
        logins: vec![],
    };
    assert_eq!(
        plan_database_access(&observed, &desired(&[], true)),
        [AccessChange::TransferDatabase {
            database: "signoz".into(),
            from: "postgres".into(),
            to: "signoz_owner".into()
        }]
    );
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
    }
}

#[test]
fn the_dsn_round_trips_through_a_url_parser_whatever_the_password() {
    for password in ["Abc123xyz", "p@ss:w/rd?#%&=+ ü'\"", "%41%", "0"] {
        let secret = app_secret("signoz_app_clone", password);
        let dsn = signoz_dsn(&secret, TlsMode::VerifyFull);
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
            [("sslmode".into(), "verify-full".into())]
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
    let findings = assess_posture(&facts, true);
    let failed: Vec<_> = findings.iter().filter(|f| !f.ok).map(|f| f.check).collect();
    assert_eq!(failed, ["deletion_protection", "force_ssl", "multi_az"]);
    assert_eq!(assess_posture(&facts, false).len(), 3);
}
