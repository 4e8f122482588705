//! Where each source folder lands: explicit rename rules, then special-use roles.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::folder::{FolderInfo, FolderPath, SpecialUse};

/// Folder mapping rules.
///
/// 1. Explicit rules (`Old/Name=New/Name`), longest source prefix first; they also move children.
/// 2. Role mapping (on by default): a source folder with a special-use role lands in the
///    destination folder of the same role whatever its name, children included ("Gesendet"
///    flagged `\Sent` lands in "Sent Items").
/// 3. Otherwise the same segments; the backends encode them (separators never need rules).
///
/// ```
/// use mailmove_core::engine::FolderMapping;
/// use mailmove_core::{FolderInfo, FolderPath, SpecialUse};
/// let mapping = FolderMapping::default().with_rule("Old/Name=New").unwrap();
/// let destination = [FolderInfo::new(FolderPath::parse("Sent Items").with_role(Some(SpecialUse::Sent)))];
/// let resolver = mapping.resolver(&destination);
/// assert_eq!(resolver.map(&FolderPath::parse("Old/Name/x")), FolderPath::parse("New/x"));
/// let sent = FolderPath::parse("Gesendet").with_role(Some(SpecialUse::Sent));
/// assert_eq!(resolver.map(&sent), FolderPath::parse("Sent Items"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FolderMapping {
    /// Explicit prefix rules, source → destination.
    pub rules: Vec<(FolderPath, FolderPath)>,
    /// Whether special-use roles are mapped to the destination's folders of the same role.
    pub map_roles: bool,
}

impl Default for FolderMapping {
    fn default() -> Self {
        FolderMapping { rules: Vec::new(), map_roles: true }
    }
}

impl FolderMapping {
    /// Adds a rule written `Source/Path=Destination/Path`.
    pub fn with_rule(mut self, rule: &str) -> Result<Self> {
        let (from, to) = rule.split_once('=').ok_or_else(|| {
            Error::config(format!("folder mapping {rule:?} must be written 'Source/Name=Destination/Name'"))
        })?;
        let (from, to) = (FolderPath::parse(from.trim()), FolderPath::parse(to.trim()));
        if from.is_root() || to.is_root() {
            return Err(Error::config(format!("folder mapping {rule:?} has an empty side")));
        }
        self.rules.push((from, to));
        Ok(self)
    }

    /// A resolver for one destination, given the destination's folders (for their roles).
    pub fn resolver(&self, destination_folders: &[FolderInfo]) -> MappingResolver {
        let mut roles = HashMap::new();
        for info in destination_folders {
            if let Some(role) = info.path.role() {
                roles.entry(role).or_insert_with(|| info.path.clone());
            }
        }
        let mut rules = self.rules.clone();
        rules.sort_by_key(|(from, _)| std::cmp::Reverse(from.segments().len()));
        MappingResolver { rules, roles, map_roles: self.map_roles, role_prefixes: Vec::new() }
    }
}

/// Maps source folders to destination folders (see [`FolderMapping`]).
#[derive(Debug, Clone)]
pub struct MappingResolver {
    rules: Vec<(FolderPath, FolderPath)>,
    roles: HashMap<SpecialUse, FolderPath>,
    map_roles: bool,
    role_prefixes: Vec<(FolderPath, FolderPath)>,
}

impl MappingResolver {
    /// Registers the source's folders so that children of a role folder follow it.
    pub fn learn_source(&mut self, source_folders: &[FolderInfo]) {
        if !self.map_roles {
            return;
        }
        for info in source_folders {
            if let Some(role) = info.path.role().filter(|role| *role != SpecialUse::Inbox) {
                if let Some(target) = self.roles.get(&role) {
                    self.role_prefixes.push((info.path.clone(), target.clone()));
                }
            }
        }
        self.role_prefixes.sort_by_key(|(from, _)| std::cmp::Reverse(from.segments().len()));
    }

    /// The destination of a source folder. The role travels with it.
    pub fn map(&self, source: &FolderPath) -> FolderPath {
        for (from, to) in &self.rules {
            if let Some(mapped) = source.replace_prefix(from, to) {
                return mapped;
            }
        }
        if source.is_inbox() {
            return FolderPath::inbox();
        }
        if self.map_roles {
            if let Some(role) = source.role() {
                if let Some(target) = self.roles.get(&role) {
                    return target.clone().with_role(Some(role));
                }
            }
            for (from, to) in &self.role_prefixes {
                if let Some(mapped) = source.replace_prefix(from, to) {
                    return mapped;
                }
            }
        }
        source.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let mapping = FolderMapping::default()
            .with_rule("Projects/Old=Archive/Projects")
            .unwrap()
            .with_rule("Projects=Work")
            .unwrap();
        let destination = [
            FolderInfo::new(FolderPath::parse("Sent Items").with_role(Some(SpecialUse::Sent))),
            FolderInfo::new(FolderPath::parse("Deleted Items").with_role(Some(SpecialUse::Trash))),
        ];
        let source = [
            FolderInfo::new(FolderPath::parse("Gesendet").with_role(Some(SpecialUse::Sent))),
            FolderInfo::new(FolderPath::parse("Gesendet/2019")),
        ];
        let mut resolver = mapping.resolver(&destination);
        resolver.learn_source(&source);
        let cases = [
            (FolderPath::parse("Projects/Old/A"), "Archive/Projects/A"),
            (FolderPath::parse("Projects/New"), "Work/New"),
            (FolderPath::parse("inbox"), "INBOX"),
            (FolderPath::parse("Gesendet").with_role(Some(SpecialUse::Sent)), "Sent Items"),
            (FolderPath::parse("Gesendet/2019"), "Sent Items/2019"),
            (FolderPath::parse("Trash").with_role(Some(SpecialUse::Trash)), "Deleted Items"),
            (FolderPath::parse("Drafts").with_role(Some(SpecialUse::Drafts)), "Drafts"),
            (FolderPath::parse("Other/Deep"), "Other/Deep"),
        ];
        for (source, expected) in cases {
            assert_eq!(resolver.map(&source).to_string(), expected, "mapping {source}");
        }
        let plain = FolderMapping { map_roles: false, ..FolderMapping::default() }.resolver(&destination);
        assert_eq!(
            plain.map(&FolderPath::parse("Gesendet").with_role(Some(SpecialUse::Sent))).to_string(),
            "Gesendet"
        );
        assert!(FolderMapping::default().with_rule("no-equals").is_err());
    }
}
