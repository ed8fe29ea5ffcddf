//! Typed configuration from the environment the template sets.

/// Name of the variable holding the table name.
pub const TABLE_NAME: &str = "TABLE_NAME";
/// Name of the variable holding the order queue's URL.
pub const QUEUE_URL: &str = "QUEUE_URL";

/// A required setting is missing or empty.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {0} must be set (see template.yaml)")]
pub struct MissingSetting(pub &'static str);

/// Reads a required, non-empty variable.
///
/// # Errors
/// [`MissingSetting`] naming the variable.
pub fn required(name: &'static str) -> Result<String, MissingSetting> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(MissingSetting(name)),
    }
}
