//! The fixed user table (§11): built in, or loaded from a JSON fixture file.
//!
//! Entries are kept exactly as written, because some are invalid on purpose (`nora`, `badphone`)
//! and get-user-data must hand them to the bridge unchanged.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use serde_json::{json, Value};

/// User data objects keyed by their `reference`.
#[derive(Debug, Clone, Default)]
pub struct Users(HashMap<String, Value>);

impl Users {
    /// The five users of the §11 table.
    pub fn builtin() -> Self {
        Self::from_entries(vec![
            json!({"reference": "alice", "email": "alice@example.com", "first_name": "Alice", "last_name": "Martin", "custom_attributes": {"tier": "gold"}}),
            json!({"reference": "bob", "phone": "+33612345678", "first_name": "Bob"}),
            json!({"reference": "carol", "email": "carol@example.org", "phone": "+14155550123", "first_name": "Carol", "last_name": "Smith"}),
            json!({"reference": "nora", "first_name": "Nora"}),
            json!({"reference": "badphone", "phone": "0612345678"}),
        ])
    }

    /// Reads a fixture: a JSON array of objects, each with a string `reference`.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading the user fixture {}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("parsing the user fixture {}", path.display()))
    }

    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        let value: Value = serde_json::from_str(text).context("the fixture is not JSON")?;
        let Value::Array(entries) = value else {
            anyhow::bail!("the fixture must be a JSON array of user data objects");
        };
        for (i, e) in entries.iter().enumerate() {
            if !e.get("reference").is_some_and(Value::is_string) {
                anyhow::bail!("entry {i} of the fixture has no string `reference`");
            }
        }
        Ok(Self::from_entries(entries))
    }

    fn from_entries(entries: Vec<Value>) -> Self {
        let map = entries
            .into_iter()
            .filter_map(|e| e.get("reference").and_then(Value::as_str).map(str::to_owned).map(|r| (r, e)))
            .collect();
        Users(map)
    }

    pub fn get(&self, reference: &str) -> Option<&Value> {
        self.0.get(reference)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_file_matches_the_builtin_table() {
        let text = include_str!("../fixtures/users.json");
        let file = Users::from_json(text).ok().unwrap_or_default();
        let builtin = Users::builtin();
        assert_eq!(file.len(), 5);
        for r in ["alice", "bob", "carol", "nora", "badphone"] {
            assert_eq!(file.get(r), builtin.get(r), "{r}");
        }
    }

    #[test]
    fn fixtures_need_references() {
        assert!(Users::from_json(r#"[{"email":"a@b.c"}]"#).is_err());
        assert!(Users::from_json(r#"{"reference":"x"}"#).is_err());
    }
}
