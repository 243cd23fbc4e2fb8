//! `invites admin`: operator commands that create tenants, principals, roles and credentials and
//! print what they created as JSON, so nobody needs SQL. Secrets are printed once and never stored.

use anyhow::Context;
use chrono::Utc;
use clap::{Args, Subcommand};
use invites_domain::{CommunityRole, GroupRole, ObjectId, OrgRole};
use invites_server::credentials::{new_api_key, new_client_id, new_secret, sha256_hex};
use invites_store::Store;
use serde_json::json;

#[derive(Args, Debug)]
pub struct AdminArgs {
    /// Database: an SQLite file path or `sqlite://path` URL, or a `postgres://` URL.
    #[arg(
        long,
        default_value = "invites.db",
        env = "INVITES_DATABASE_URL",
        global = true
    )]
    database_url: String,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Create an organization.
    CreateOrg {
        #[arg(long)]
        name: String,
    },
    /// Create a project (group) in an organization.
    CreateProject {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
    },
    /// Create a user (an Atlas username and a community user).
    CreateUser {
        /// Email address.
        #[arg(long)]
        username: String,
        #[arg(long, default_value = "")]
        real_name: String,
    },
    /// Create a Digest API key in an organization, optionally with org and project roles.
    CreateApiKey {
        #[arg(long)]
        org: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Organization roles, e.g. ORG_OWNER (repeatable).
        #[arg(long = "org-role")]
        org_roles: Vec<String>,
        /// Project roles as PROJECT_ID=ROLE, e.g. 0123...=GROUP_OWNER (repeatable).
        #[arg(long = "project-role")]
        project_roles: Vec<String>,
        /// Addresses or CIDR blocks the key may be used from (repeatable; none means anywhere).
        #[arg(long = "access")]
        access_list: Vec<String>,
    },
    /// Create a service account with a client secret, optionally with roles.
    CreateServiceAccount {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        #[arg(long = "org-role")]
        org_roles: Vec<String>,
        #[arg(long = "project-role")]
        project_roles: Vec<String>,
    },
    /// Grant an organization role to a principal (user, API key or service account id).
    GrantOrgRole {
        #[arg(long)]
        org: String,
        #[arg(long)]
        principal: String,
        #[arg(long)]
        role: String,
    },
    /// Grant a project role to a principal.
    GrantProjectRole {
        #[arg(long)]
        project: String,
        #[arg(long)]
        principal: String,
        #[arg(long)]
        role: String,
    },
    /// Create a community group.
    CreateCommunityGroup {
        #[arg(long)]
        name: String,
    },
    /// Create a course with its creator.
    CreateCourse {
        #[arg(long)]
        name: String,
        #[arg(long)]
        creator_user_id: i64,
    },
    /// Make a user a manager or member of a community group or course.
    SetCommunityRole {
        #[arg(long, conflicts_with = "course", required_unless_present = "course")]
        group: Option<i64>,
        #[arg(long)]
        course: Option<i64>,
        #[arg(long)]
        user_id: i64,
        /// manager or member.
        #[arg(long)]
        role: String,
    },
    /// Load SQL fixture files (e.g. conformance/fixtures/*.sql) into the database, each in one
    /// transaction, after migrating it. Fixtures hold known test credentials: never run this on a
    /// production database.
    LoadFixtures {
        /// SQL files, applied in the order given.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Check the database: SQLite's integrity check (PostgreSQL: that it answers) and the
    /// backend. Exits non-zero when the check fails.
    CheckDatabase,
    /// Issue a Bearer access token for a community user (printed once).
    CreateToken {
        #[arg(long)]
        user_id: Option<i64>,
        #[arg(long, conflicts_with = "user_id", required_unless_present = "user_id")]
        username: Option<String>,
    },
}

fn object_id(what: &str, s: &str) -> anyhow::Result<ObjectId> {
    s.parse()
        .with_context(|| format!("{what} {s:?} is not a 24-hex id"))
}

fn project_role(spec: &str) -> anyhow::Result<(ObjectId, GroupRole)> {
    let (p, r) = spec
        .split_once('=')
        .with_context(|| format!("project role {spec:?} must be PROJECT_ID=ROLE"))?;
    Ok((
        object_id("project", p)?,
        r.parse().with_context(|| format!("in {spec:?}"))?,
    ))
}

/// Organization and project roles given on the command line, checked before anything is written.
struct Grants {
    org_roles: Vec<OrgRole>,
    project_roles: Vec<(ObjectId, GroupRole)>,
}

impl Grants {
    fn parse(org_roles: &[String], project_roles: &[String]) -> anyhow::Result<Self> {
        Ok(Grants {
            org_roles: org_roles
                .iter()
                .map(|r| r.parse())
                .collect::<Result<_, _>>()?,
            project_roles: project_roles
                .iter()
                .map(|s| project_role(s))
                .collect::<Result<_, _>>()?,
        })
    }

    async fn apply(&self, store: &Store, org: ObjectId, principal: ObjectId) -> anyhow::Result<()> {
        for r in &self.org_roles {
            store.grant_org_role(org, principal, *r).await?;
        }
        for (p, r) in &self.project_roles {
            store.grant_project_role(*p, principal, *r).await?;
        }
        Ok(())
    }

    fn org_json(&self) -> serde_json::Value {
        self.org_roles.iter().map(|r| r.as_str()).collect()
    }

    fn project_json(&self) -> serde_json::Value {
        self.project_roles
            .iter()
            .map(|(p, r)| json!({"projectId": p.to_string(), "role": r.as_str()}))
            .collect()
    }
}

fn check_access_entry(entry: &str) -> anyhow::Result<()> {
    if entry.parse::<ipnet::IpNet>().is_ok() || entry.parse::<std::net::IpAddr>().is_ok() {
        Ok(())
    } else {
        anyhow::bail!("access-list entry {entry:?} is neither an IP address nor a CIDR block")
    }
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    // The error names the database and the fix itself (see `Store::open`).
    let store = Store::open(&args.database_url).await?;
    let out = execute(&store, args.command).await;
    store.close().await;
    println!("{}", serde_json::to_string_pretty(&out?)?);
    Ok(())
}

async fn execute(store: &Store, command: AdminCommand) -> anyhow::Result<serde_json::Value> {
    let now = Utc::now();
    Ok(match command {
        AdminCommand::CreateOrg { name } => {
            let o = store.create_org(&name, now).await?;
            json!({"id": o.id.to_string(), "name": o.name})
        }
        AdminCommand::CreateProject { org, name } => {
            let p = store
                .create_project(object_id("org", &org)?, &name, now)
                .await?;
            json!({"id": p.id.to_string(), "orgId": p.org_id.to_string(), "name": p.name})
        }
        AdminCommand::CreateUser {
            username,
            real_name,
        } => {
            anyhow::ensure!(
                invites_domain::invitation::is_valid_username(&username),
                "username {username:?} is not an email address"
            );
            let u = store.create_user(&username, &real_name, now).await?;
            json!({"id": u.id, "principalId": u.principal_id.to_string(), "username": u.username})
        }
        AdminCommand::CreateApiKey {
            org,
            description,
            org_roles,
            project_roles,
            access_list,
        } => {
            let org = object_id("org", &org)?;
            let grants = Grants::parse(&org_roles, &project_roles)?;
            for e in &access_list {
                check_access_entry(e)?;
            }
            let k = new_api_key();
            let rec = store
                .create_api_key(
                    org,
                    &k.public_key,
                    &description,
                    &k.ha1_md5,
                    &k.ha1_sha256,
                    now,
                )
                .await?;
            grants.apply(store, org, rec.principal_id).await?;
            for e in &access_list {
                store.add_access_list_entry(rec.principal_id, e).await?;
            }
            json!({
                "principalId": rec.principal_id.to_string(), "orgId": org.to_string(),
                "publicKey": k.public_key, "privateKey": k.private_key,
                "orgRoles": grants.org_json(), "projectRoles": grants.project_json(),
                "accessList": access_list,
            })
        }
        AdminCommand::CreateServiceAccount {
            org,
            name,
            org_roles,
            project_roles,
        } => {
            let org = object_id("org", &org)?;
            let grants = Grants::parse(&org_roles, &project_roles)?;
            let client_id = new_client_id();
            let secret = new_secret("mdb_sa_sk_");
            let sa = store
                .create_service_account(org, &client_id, &name, &sha256_hex(&secret), now)
                .await?;
            grants.apply(store, org, sa.principal_id).await?;
            json!({
                "principalId": sa.principal_id.to_string(), "orgId": org.to_string(),
                "clientId": client_id, "clientSecret": secret,
                "orgRoles": grants.org_json(), "projectRoles": grants.project_json(),
            })
        }
        AdminCommand::GrantOrgRole {
            org,
            principal,
            role,
        } => {
            let role: OrgRole = role.parse()?;
            store
                .grant_org_role(
                    object_id("org", &org)?,
                    object_id("principal", &principal)?,
                    role,
                )
                .await?;
            json!({"orgId": org, "principalId": principal, "role": role.as_str()})
        }
        AdminCommand::GrantProjectRole {
            project,
            principal,
            role,
        } => {
            let role: GroupRole = role.parse()?;
            store
                .grant_project_role(
                    object_id("project", &project)?,
                    object_id("principal", &principal)?,
                    role,
                )
                .await?;
            json!({"projectId": project, "principalId": principal, "role": role.as_str()})
        }
        AdminCommand::CreateCommunityGroup { name } => {
            let g = store.create_community_group(&name, now).await?;
            json!({"id": g.id, "name": g.name})
        }
        AdminCommand::CreateCourse {
            name,
            creator_user_id,
        } => {
            let c = store.create_course(&name, creator_user_id, now).await?;
            json!({"id": c.id, "name": c.name, "creatorUserId": c.creator_user_id})
        }
        AdminCommand::SetCommunityRole {
            group,
            course,
            user_id,
            role,
        } => {
            let role: CommunityRole = role.parse()?;
            match (group, course) {
                (Some(g), _) => store.set_community_group_role(g, user_id, role).await?,
                (None, Some(c)) => store.set_course_role(c, user_id, role).await?,
                (None, None) => anyhow::bail!("give --group or --course"),
            }
            json!({"groupId": group, "courseId": course, "userId": user_id, "role": role.as_str()})
        }
        AdminCommand::LoadFixtures { files } => {
            let mut loaded = Vec::new();
            for file in files {
                let script = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                store
                    .run_script(&script)
                    .await
                    .with_context(|| format!("loading {}", file.display()))?;
                loaded.push(file.display().to_string());
            }
            json!({"loaded": loaded})
        }
        AdminCommand::CheckDatabase => {
            let verdict = store.integrity_check().await?;
            anyhow::ensure!(verdict == "ok", "integrity check failed: {verdict}");
            json!({"backend": format!("{:?}", store.backend()).to_lowercase(), "integrity": verdict})
        }
        AdminCommand::CreateToken { user_id, username } => {
            let user = match (user_id, username) {
                (_, Some(name)) => store.user_by_username(&name).await?,
                (Some(id), None) => store.user_by_id(id).await?,
                (None, None) => None,
            }
            .context("no such user")?;
            let token = new_secret("cmt_");
            store
                .create_access_token(user.principal_id, &sha256_hex(&token), None, now)
                .await?;
            json!({"userId": user.id, "username": user.username, "token": token})
        }
    })
}
