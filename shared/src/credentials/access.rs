//! Planning SigNoz's database access: the owner role, the login roles, their
//! memberships and the database, from what the server has now. Pure: no I/O.

use std::fmt;

/// What the server has now, as far as SigNoz's access is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedAccess {
    pub owner_exists: bool,
    /// The connected master is a member of the owner role (needed to create or
    /// transfer a database owned by it without superuser rights, as on RDS).
    pub master_in_owner: bool,
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
    /// Direct member of the owner role.
    pub member_of_owner: bool,
    /// `ALTER ROLE .. SET role = owner` is in place, so its objects belong to the owner.
    pub defaults_to_owner: bool,
    pub can_connect: bool,
}

/// What SigNoz's access must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredAccess<'a> {
    pub database: &'a str,
    pub owner: &'a str,
    pub logins: &'a [String],
    /// Whether the database may be created (provisioning); rotation only repairs roles.
    pub create_database: bool,
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
        }
    }
}

/// The changes that bring `observed` to `desired`, in an order the server accepts
/// (roles before the database that names them, memberships after both).
pub fn plan_database_access(
    observed: &ObservedAccess,
    desired: &DesiredAccess<'_>,
) -> Vec<AccessChange> {
    let mut changes = Vec::new();
    if !observed.owner_exists {
        changes.push(AccessChange::CreateOwnerRole {
            owner: desired.owner.into(),
        });
    }
    let needs_database_change = match &observed.database_owner {
        None => desired.create_database,
        Some(owner) => owner != desired.owner,
    };
    if needs_database_change && !observed.master_in_owner {
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
    let database_will_exist = observed.database_owner.is_some() || desired.create_database;
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
    changes
}

/// A quoted SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A quoted SQL string literal.
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
