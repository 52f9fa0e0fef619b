//! The permission policy: what each role may do.
//!
//! The policy is configuration, applied at request time rather than baked
//! into stored documents, so a policy change takes effect without a rebuild.
//! [`PermissionTable`] pre-serializes the permissions for every combination of
//! role, active flag and owner approval, so the read path only copies bytes.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::event::Role;
use crate::fold::AccessFacts;

/// Actions the frontend may offer a user (the `permissions` object).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Permissions {
    pub can_book_classes: bool,
    pub can_teach: bool,
    pub can_manage_shaalas: bool,
    pub max_bookings_per_day: u32,
}

/// Role permissions plus the owner-approval rule. Serialized form is the
/// policy file (`ROLE_PERMISSIONS_FILE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PermissionPolicy {
    /// While true, `canManageShaalas` needs the owner's approval
    /// (`SHAALA_OWNER_APPROVAL_REQUIRED`).
    #[serde(default = "default_true")]
    pub owner_approval_required: bool,
    pub roles: BTreeMap<Role, Permissions>,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read permission policy file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid permission policy file {path}: {source}")]
    Parse { path: String, source: serde_json::Error },
}

impl Default for PermissionPolicy {
    fn default() -> Self {
        let roles = BTreeMap::from([
            (
                Role::Student,
                Permissions {
                    can_book_classes: true,
                    can_teach: false,
                    can_manage_shaalas: false,
                    max_bookings_per_day: 3,
                },
            ),
            (
                Role::Teacher,
                Permissions {
                    can_book_classes: true,
                    can_teach: true,
                    can_manage_shaalas: false,
                    max_bookings_per_day: 5,
                },
            ),
            (
                Role::ShaalaOwner,
                Permissions {
                    can_book_classes: true,
                    can_teach: true,
                    can_manage_shaalas: true,
                    max_bookings_per_day: 10,
                },
            ),
        ]);
        Self {
            owner_approval_required: true,
            roles,
        }
    }
}

impl PermissionPolicy {
    /// Reads a policy file (JSON, the serialized form of this type). Roles the
    /// file leaves out get no permissions.
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| PolicyError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// Permissions of a user: none while inactive; managing shaalas needs
    /// owner approval while that rule is on.
    pub fn permissions_for(&self, access: AccessFacts) -> Permissions {
        if !access.is_active {
            return Permissions::default();
        }
        let mut permissions = self.roles.get(&access.role).copied().unwrap_or_default();
        if self.owner_approval_required && !access.owner_approved {
            permissions.can_manage_shaalas = false;
        }
        permissions
    }
}

/// Pre-serialized `permissions` JSON for every access combination.
#[derive(Debug, Clone)]
pub struct PermissionTable {
    policy: PermissionPolicy,
    fragments: Vec<Bytes>,
}

impl PermissionTable {
    pub fn new(policy: PermissionPolicy) -> Self {
        let mut fragments = Vec::with_capacity(Role::ALL.len() * 4);
        for role in Role::ALL {
            for is_active in [false, true] {
                for owner_approved in [false, true] {
                    let access = AccessFacts {
                        role,
                        is_active,
                        owner_approved,
                    };
                    let json =
                        serde_json::to_vec(&policy.permissions_for(access)).expect("permissions serialize");
                    fragments.push(Bytes::from(json));
                }
            }
        }
        Self { policy, fragments }
    }

    pub fn policy(&self) -> &PermissionPolicy {
        &self.policy
    }

    /// Returns the `permissions` JSON object for `access`.
    pub fn fragment(&self, access: AccessFacts) -> &Bytes {
        let role_index = Role::ALL
            .iter()
            .position(|role| *role == access.role)
            .expect("Role::ALL lists every role");
        let index = role_index * 4 + usize::from(access.is_active) * 2 + usize::from(access.owner_approved);
        &self.fragments[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(role: Role, is_active: bool, owner_approved: bool) -> AccessFacts {
        AccessFacts {
            role,
            is_active,
            owner_approved,
        }
    }

    #[test]
    fn default_roles_match_documented_limits() {
        let policy = PermissionPolicy::default();
        let student = policy.permissions_for(access(Role::Student, true, false));
        assert!(student.can_book_classes);
        assert!(!student.can_teach);
        assert_eq!(student.max_bookings_per_day, 3);

        let teacher = policy.permissions_for(access(Role::Teacher, true, false));
        assert!(teacher.can_teach);
        assert_eq!(teacher.max_bookings_per_day, 5);

        let owner = policy.permissions_for(access(Role::ShaalaOwner, true, true));
        assert!(owner.can_manage_shaalas);
        assert_eq!(owner.max_bookings_per_day, 10);
    }

    #[test]
    fn inactive_user_has_no_permissions() {
        let policy = PermissionPolicy::default();
        let permissions = policy.permissions_for(access(Role::ShaalaOwner, false, true));
        assert_eq!(permissions, Permissions::default());
    }

    #[test]
    fn unapproved_owner_cannot_manage_shaalas() {
        let policy = PermissionPolicy::default();
        let permissions = policy.permissions_for(access(Role::ShaalaOwner, true, false));
        assert!(!permissions.can_manage_shaalas);
        assert!(permissions.can_teach);
    }

    #[test]
    fn approval_rule_can_be_switched_off() {
        let policy = PermissionPolicy {
            owner_approval_required: false,
            ..PermissionPolicy::default()
        };
        let permissions = policy.permissions_for(access(Role::ShaalaOwner, true, false));
        assert!(permissions.can_manage_shaalas);
    }

    #[test]
    fn policy_file_overrides_roles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        std::fs::write(
            &path,
            r#"{"ownerApprovalRequired": false, "roles": {"student": {"canBookClasses": true, "canTeach": false, "canManageShaalas": false, "maxBookingsPerDay": 7}}}"#,
        )
        .unwrap();
        let policy = PermissionPolicy::from_file(&path).unwrap();
        assert_eq!(
            policy
                .permissions_for(access(Role::Student, true, false))
                .max_bookings_per_day,
            7
        );
        // A role the file leaves out gets nothing.
        assert_eq!(
            policy.permissions_for(access(Role::Teacher, true, false)),
            Permissions::default()
        );
    }

    #[test]
    fn policy_file_with_unknown_field_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        std::fs::write(&path, r#"{"roles": {}, "canFly": true}"#).unwrap();
        let error = PermissionPolicy::from_file(&path).unwrap_err().to_string();
        assert!(error.contains("policy.json"), "{error}");
        assert!(error.contains("canFly"), "{error}");
    }

    #[test]
    fn table_fragment_matches_policy() {
        let table = PermissionTable::new(PermissionPolicy::default());
        for role in Role::ALL {
            for is_active in [false, true] {
                for owner_approved in [false, true] {
                    let facts = access(role, is_active, owner_approved);
                    let parsed: Permissions = serde_json::from_slice(table.fragment(facts)).unwrap();
                    assert_eq!(parsed, table.policy().permissions_for(facts));
                }
            }
        }
    }
}
