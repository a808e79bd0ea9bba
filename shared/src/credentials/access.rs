//! Planning SigNoz's database access: the owner role, the login roles, their
//! memberships and the database (from the maintenance database), then what lives inside
//! SigNoz's database: who owns its objects and what `PUBLIC` may do there. Pure: no I/O.
//!
//! PostgreSQL 16 changed the role rules: `CREATEROLE` no longer lets a role grant any
//! role, and the creator of a role only gets `ADMIN OPTION` on it, without `INHERIT` or
//! `SET` (see "Role Membership" and `createrole_self_grant` in PostgreSQL's docs). Acting
//! as a role (owning its objects, `ALTER DATABASE .. OWNER`, `REASSIGN OWNED`) needs its
//! privileges and, from 16 on, `SET`: what the `acts_as` observations below record, where
//! plain membership (`pg_has_role(.., 'MEMBER')`, true for the bare ADMIN grant) would not do.

use std::fmt;

/// What the server has now, as far as SigNoz's access is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedAccess {
    pub owner_exists: bool,
    /// The owner role is a superuser or has CREATEROLE, CREATEDB, REPLICATION or
    /// BYPASSRLS: SigNoz's objects must not belong to such a role.
    pub owner_privileged: bool,
    /// The connected master has the owner role's privileges and may `SET ROLE` to it
    /// (needed to create or transfer a database owned by it, to reassign objects to it and
    /// to revoke on its database, without superuser rights, as on RDS).
    pub master_acts_as_owner: bool,
    /// Current owner of SigNoz's database; `None` when it does not exist.
    pub database_owner: Option<String>,
    pub logins: Vec<ObservedLogin>,
}

/// One login role as the server has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedLogin {
    pub name: String,
    pub exists: bool,
    pub can_login: bool,
    /// A superuser, or CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS: never an app user.
    pub privileged: bool,
    /// Has the owner role's privileges and may `SET ROLE` to it.
    pub member_of_owner: bool,
    /// `ALTER ROLE .. SET role = owner` is in place, so its objects belong to the owner.
    pub defaults_to_owner: bool,
    pub can_connect: bool,
    /// The master has this login's privileges (needed to reassign what it owns).
    pub master_acts_as: bool,
}

/// What SigNoz's access must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredAccess<'a> {
    pub database: &'a str,
    pub owner: &'a str,
    pub logins: &'a [String],
    /// Whether the database may be created (provisioning); rotation only repairs roles.
    pub create_database: bool,
    /// The master user's name: never an app user.
    pub master: &'a str,
}

/// Why the planner refuses to touch a role (retry does not help).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub role: String,
    pub reason: String,
}

/// Role names that are PostgreSQL's or RDS's own, or the usual superuser: never SigNoz's.
pub fn reserved_role_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("pg_")
        || lower.starts_with("rds")
        || matches!(
            lower.as_str(),
            "postgres" | "public" | "admin" | "root" | "master"
        )
}

/// One change to the server. Passwords are set separately, as verifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessChange {
    CreateOwnerRole {
        owner: String,
    },
    GrantOwnerToMaster {
        owner: String,
    },
    CreateDatabase {
        database: String,
        owner: String,
    },
    TransferDatabase {
        database: String,
        from: String,
        to: String,
    },
    CreateLoginRole {
        role: String,
    },
    EnableLogin {
        role: String,
    },
    GrantOwnerMembership {
        role: String,
        owner: String,
    },
    DefaultToOwner {
        role: String,
        owner: String,
    },
    GrantConnect {
        role: String,
        database: String,
    },
    /// Lets the master act as a login, so it can reassign what the login owns.
    GrantLoginToMaster {
        role: String,
    },
    /// In SigNoz's database: everything the login owns there becomes the owner's.
    ReassignOwned {
        from: String,
        to: String,
    },
    /// In SigNoz's database: one object owned by someone else (the master, say, after a
    /// restore) becomes the owner's. Never `REASSIGN OWNED` for those: it would also move
    /// what they own elsewhere (other databases).
    AlterOwner {
        object: ForeignObject,
        to: String,
    },
    /// In SigNoz's database: the owner may use and create in schema `public` (a schema
    /// kept from PostgreSQL 14 or earlier belongs to the bootstrap superuser).
    GrantSchemaToOwner {
        owner: String,
    },
    /// Nobody but the owner (and its logins) connects or makes temporary tables.
    RevokeDatabaseFromPublic {
        database: String,
    },
    /// In SigNoz's database: `PUBLIC` may not create in schema `public` (the default
    /// before PostgreSQL 15).
    RevokeSchemaCreateFromPublic,
}

/// The kinds of objects whose owner matters to SigNoz's migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Schema,
    Table,
    View,
    MaterializedView,
    Sequence,
    ForeignTable,
    Function,
    Procedure,
    Type,
}

impl ObjectKind {
    /// The keyword of `ALTER <kind> .. OWNER TO`.
    pub fn keyword(self) -> &'static str {
        match self {
            ObjectKind::Schema => "SCHEMA",
            ObjectKind::Table => "TABLE",
            ObjectKind::View => "VIEW",
            ObjectKind::MaterializedView => "MATERIALIZED VIEW",
            ObjectKind::Sequence => "SEQUENCE",
            ObjectKind::ForeignTable => "FOREIGN TABLE",
            ObjectKind::Function => "FUNCTION",
            ObjectKind::Procedure => "PROCEDURE",
            ObjectKind::Type => "TYPE",
        }
    }

    /// The kind from the catalogue code the observation query returns.
    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "schema" => ObjectKind::Schema,
            "r" | "p" => ObjectKind::Table,
            "v" => ObjectKind::View,
            "m" => ObjectKind::MaterializedView,
            "S" => ObjectKind::Sequence,
            "f" => ObjectKind::ForeignTable,
            "function" => ObjectKind::Function,
            "procedure" => ObjectKind::Procedure,
            "type" => ObjectKind::Type,
            _ => return None,
        })
    }
}

/// An object in SigNoz's database that the owner role does not own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignObject {
    pub kind: ObjectKind,
    /// Its identity as SQL, quoted by the server (`"public"."dashboards"`, or with the
    /// argument types for a function).
    pub name: String,
    pub owner: String,
    /// The master has the owning role's privileges (it can hand the object over).
    pub master_acts_as_owner: bool,
}

/// What the server has inside SigNoz's database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedObjects {
    /// `PUBLIC` may connect to SigNoz's database or create temporary tables in it.
    pub public_database_access: bool,
    /// `PUBLIC` may create in schema `public`.
    pub public_creates_in_schema: bool,
    /// The owner role may use and create in schema `public`.
    pub owner_creates_in_schema: bool,
    pub foreign: Vec<ForeignObject>,
}

impl fmt::Display for AccessChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessChange::CreateOwnerRole { owner } => {
                write!(f, "create NOLOGIN owner role {owner}")
            }
            AccessChange::GrantOwnerToMaster { owner } => {
                write!(f, "make the master a member of {owner}")
            }
            AccessChange::CreateDatabase { database, owner } => {
                write!(f, "create database {database} owned by {owner}")
            }
            AccessChange::TransferDatabase { database, from, to } => {
                write!(f, "transfer database {database} from {from} to {to}")
            }
            AccessChange::CreateLoginRole { role } => write!(f, "create login role {role}"),
            AccessChange::EnableLogin { role } => write!(f, "allow {role} to log in"),
            AccessChange::GrantOwnerMembership { role, owner } => {
                write!(f, "make {role} a member of {owner}")
            }
            AccessChange::DefaultToOwner { role, owner } => {
                write!(f, "make {role} SET ROLE {owner} on login")
            }
            AccessChange::GrantConnect { role, database } => {
                write!(f, "grant {role} CONNECT on {database}")
            }
            AccessChange::GrantLoginToMaster { role } => {
                write!(f, "let the master act as {role}")
            }
            AccessChange::ReassignOwned { from, to } => {
                write!(f, "reassign everything {from} owns to {to}")
            }
            AccessChange::AlterOwner { object, to } => write!(
                f,
                "hand {} {} from {} to {to}",
                object.kind.keyword().to_lowercase(),
                object.name,
                object.owner
            ),
            AccessChange::GrantSchemaToOwner { owner } => {
                write!(f, "grant {owner} USAGE and CREATE on schema public")
            }
            AccessChange::RevokeDatabaseFromPublic { database } => {
                write!(f, "revoke CONNECT and TEMPORARY on {database} from PUBLIC")
            }
            AccessChange::RevokeSchemaCreateFromPublic => {
                write!(f, "revoke CREATE on schema public from PUBLIC")
            }
        }
    }
}

impl AccessChange {
    /// The SQL statement making this change.
    pub fn sql(&self) -> String {
        match self {
            AccessChange::CreateOwnerRole { owner } => {
                format!("CREATE ROLE {} NOLOGIN", ident(owner))
            }
            AccessChange::GrantOwnerToMaster { owner } => {
                format!("GRANT {} TO CURRENT_USER", ident(owner))
            }
            AccessChange::CreateDatabase { database, owner } => {
                format!("CREATE DATABASE {} OWNER {}", ident(database), ident(owner))
            }
            AccessChange::TransferDatabase { database, to, .. } => {
                format!("ALTER DATABASE {} OWNER TO {}", ident(database), ident(to))
            }
            AccessChange::CreateLoginRole { role } => format!("CREATE ROLE {} LOGIN", ident(role)),
            AccessChange::EnableLogin { role } => format!("ALTER ROLE {} LOGIN", ident(role)),
            AccessChange::GrantOwnerMembership { role, owner } => {
                format!("GRANT {} TO {}", ident(owner), ident(role))
            }
            AccessChange::DefaultToOwner { role, owner } => {
                format!("ALTER ROLE {} SET role = {}", ident(role), ident(owner))
            }
            AccessChange::GrantConnect { role, database } => {
                format!(
                    "GRANT CONNECT ON DATABASE {} TO {}",
                    ident(database),
                    ident(role)
                )
            }
            AccessChange::GrantLoginToMaster { role } => {
                format!("GRANT {} TO CURRENT_USER", ident(role))
            }
            AccessChange::ReassignOwned { from, to } => {
                format!("REASSIGN OWNED BY {} TO {}", ident(from), ident(to))
            }
            AccessChange::AlterOwner { object, to } => format!(
                "ALTER {} {} OWNER TO {}",
                object.kind.keyword(),
                object.name,
                ident(to)
            ),
            AccessChange::GrantSchemaToOwner { owner } => {
                format!("GRANT USAGE, CREATE ON SCHEMA public TO {}", ident(owner))
            }
            AccessChange::RevokeDatabaseFromPublic { database } => format!(
                "REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC",
                ident(database)
            ),
            AccessChange::RevokeSchemaCreateFromPublic => {
                "REVOKE CREATE ON SCHEMA public FROM PUBLIC".into()
            }
        }
    }
}

/// The role and database changes that bring `observed` to `desired`, in an order the
/// server accepts (roles before the database that names them, memberships after both);
/// refused when a role SigNoz would use is the master's or privileged.
#[tracing::instrument(level = "debug", name = "plan.database_access", skip_all)]
pub fn plan_database_access(
    observed: &ObservedAccess,
    desired: &DesiredAccess<'_>,
) -> Result<Vec<AccessChange>, Refusal> {
    refuse_unsafe_roles(observed, desired)?;
    let mut changes = Vec::new();
    if !observed.owner_exists {
        changes.push(AccessChange::CreateOwnerRole {
            owner: desired.owner.into(),
        });
    }
    let database_will_exist = observed.database_owner.is_some() || desired.create_database;
    // The master acts as the owner for every database-level change and for what happens
    // inside SigNoz's database afterwards.
    if database_will_exist && !observed.master_acts_as_owner {
        changes.push(AccessChange::GrantOwnerToMaster {
            owner: desired.owner.into(),
        });
    }
    match &observed.database_owner {
        None if desired.create_database => changes.push(AccessChange::CreateDatabase {
            database: desired.database.into(),
            owner: desired.owner.into(),
        }),
        Some(owner) if owner != desired.owner => changes.push(AccessChange::TransferDatabase {
            database: desired.database.into(),
            from: owner.clone(),
            to: desired.owner.into(),
        }),
        _ => {}
    }
    for name in desired.logins {
        let seen = observed.logins.iter().find(|l| &l.name == name);
        let fresh = ObservedLogin::default();
        let login = seen.filter(|l| l.exists).unwrap_or(&fresh);
        let role = name.clone();
        if !login.exists {
            changes.push(AccessChange::CreateLoginRole { role: role.clone() });
        } else if !login.can_login {
            changes.push(AccessChange::EnableLogin { role: role.clone() });
        }
        if !login.member_of_owner {
            changes.push(AccessChange::GrantOwnerMembership {
                role: role.clone(),
                owner: desired.owner.into(),
            });
        }
        if !login.defaults_to_owner {
            changes.push(AccessChange::DefaultToOwner {
                role: role.clone(),
                owner: desired.owner.into(),
            });
        }
        if !login.can_connect && database_will_exist {
            changes.push(AccessChange::GrantConnect {
                role,
                database: desired.database.into(),
            });
        }
    }
    Ok(changes)
}

fn refuse_unsafe_roles(
    observed: &ObservedAccess,
    desired: &DesiredAccess<'_>,
) -> Result<(), Refusal> {
    let refuse = |role: &str, reason: &str| {
        Err(Refusal {
            role: role.into(),
            reason: reason.into(),
        })
    };
    for name in desired
        .logins
        .iter()
        .map(String::as_str)
        .chain([desired.owner])
    {
        if name == desired.master {
            return refuse(name, "it is the master user");
        }
        if reserved_role_name(name) {
            return refuse(
                name,
                "the name is reserved for PostgreSQL's or RDS's own roles",
            );
        }
    }
    if desired.logins.iter().any(|l| l == desired.owner) {
        return refuse(desired.owner, "the owner role must not be a login role");
    }
    if observed.owner_exists && observed.owner_privileged {
        return refuse(
            desired.owner,
            "it is a superuser or has CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS",
        );
    }
    if let Some(login) = observed.logins.iter().find(|l| l.exists && l.privileged) {
        return refuse(
            &login.name,
            "it is a superuser or has CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS",
        );
    }
    Ok(())
}

/// The changes inside SigNoz's database: what SigNoz's logins own is reassigned to the
/// owner, what the master (or a role it can act as) owns is handed over object by
/// object, and `PUBLIC` loses CONNECT, TEMPORARY and CREATE. Objects owned by a role the
/// master cannot act as are returned apart: nobody here can hand them over.
#[tracing::instrument(level = "debug", name = "plan.object_access", skip_all)]
pub fn plan_object_access(
    observed: &ObservedObjects,
    desired: &DesiredAccess<'_>,
    logins: &[ObservedLogin],
) -> (Vec<AccessChange>, Vec<ForeignObject>) {
    let mut changes = Vec::new();
    let mut stuck = Vec::new();
    if !observed.owner_creates_in_schema {
        changes.push(AccessChange::GrantSchemaToOwner {
            owner: desired.owner.into(),
        });
    }
    let mut reassigned: Vec<&str> = Vec::new();
    for object in &observed.foreign {
        if let Some(login) = desired.logins.iter().find(|l| **l == object.owner) {
            if !reassigned.contains(&login.as_str()) {
                reassigned.push(login);
                let acts = logins.iter().any(|l| &l.name == login && l.master_acts_as);
                if !acts {
                    changes.push(AccessChange::GrantLoginToMaster {
                        role: login.clone(),
                    });
                }
                changes.push(AccessChange::ReassignOwned {
                    from: login.clone(),
                    to: desired.owner.into(),
                });
            }
        } else if object.master_acts_as_owner {
            changes.push(AccessChange::AlterOwner {
                object: object.clone(),
                to: desired.owner.into(),
            });
        } else {
            stuck.push(object.clone());
        }
    }
    if observed.public_database_access {
        changes.push(AccessChange::RevokeDatabaseFromPublic {
            database: desired.database.into(),
        });
    }
    if observed.public_creates_in_schema {
        changes.push(AccessChange::RevokeSchemaCreateFromPublic);
    }
    (changes, stuck)
}

/// A quoted SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A quoted SQL string literal.
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
