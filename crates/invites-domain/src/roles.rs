//! Roles that principals hold in organizations, projects, community groups and courses.

use std::fmt;
use std::str::FromStr;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownRole;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownRole(s.to_owned())),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A role name that is not one of the known values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}")]
pub struct UnknownRole(pub String);

string_enum!(
    /// Organization-level roles, exactly the enum of the Atlas specification.
    OrgRole {
        Owner = "ORG_OWNER",
        Member = "ORG_MEMBER",
        GroupCreator = "ORG_GROUP_CREATOR",
        BillingAdmin = "ORG_BILLING_ADMIN",
        BillingReadOnly = "ORG_BILLING_READ_ONLY",
        StreamProcessingAdmin = "ORG_STREAM_PROCESSING_ADMIN",
        ReadOnly = "ORG_READ_ONLY",
    }
);

string_enum!(
    /// Project (group) roles of Atlas and Ops Manager.
    GroupRole {
        Owner = "GROUP_OWNER",
        UserAdmin = "GROUP_USER_ADMIN",
        ClusterManager = "GROUP_CLUSTER_MANAGER",
        DataAccessAdmin = "GROUP_DATA_ACCESS_ADMIN",
        DataAccessReadWrite = "GROUP_DATA_ACCESS_READ_WRITE",
        DataAccessReadOnly = "GROUP_DATA_ACCESS_READ_ONLY",
        DatabaseAccessAdmin = "GROUP_DATABASE_ACCESS_ADMIN",
        BackupManager = "GROUP_BACKUP_MANAGER",
        ObservabilityViewer = "GROUP_OBSERVABILITY_VIEWER",
        SearchIndexEditor = "GROUP_SEARCH_INDEX_EDITOR",
        StreamProcessingOwner = "GROUP_STREAM_PROCESSING_OWNER",
        ReadOnly = "GROUP_READ_ONLY",
        MonitoringAdmin = "GROUP_MONITORING_ADMIN",
        BackupAdmin = "GROUP_BACKUP_ADMIN",
        AutomationAdmin = "GROUP_AUTOMATION_ADMIN",
    }
);

string_enum!(
    /// Roles in a community group or course. A course's creator is recorded on the course itself.
    CommunityRole {
        Manager = "manager",
        Member = "member",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_round_trips_through_its_spelling() {
        for r in OrgRole::ALL {
            assert_eq!(r.as_str().parse::<OrgRole>().unwrap(), *r);
        }
        for r in GroupRole::ALL {
            assert_eq!(r.as_str().parse::<GroupRole>().unwrap(), *r);
        }
        for r in CommunityRole::ALL {
            assert_eq!(r.as_str().parse::<CommunityRole>().unwrap(), *r);
        }
    }

    #[test]
    fn unknown_roles_are_named() {
        assert_eq!(
            "ORG_GOD".parse::<OrgRole>(),
            Err(UnknownRole("ORG_GOD".into()))
        );
    }
}
