//! The one error shape of the API: `{"error": CODE, "message": ..., "details"?: ...}`
//! with a real HTTP status.

use serde::Serialize;

/// An API failure that knows its status, machine-readable code and message.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable, machine-readable code (`UPPER_SNAKE_CASE`).
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// Structured extras (the field that failed, the allowed methods...).
    pub details: Option<serde_json::Value>,
    /// Seconds after which a retry may succeed (`Retry-After`), for transient failures.
    pub retry_after_seconds: Option<u32>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a serde_json::Value>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after_seconds: None,
        }
    }

    /// Marks the failure transient: answered with `Retry-After: seconds`.
    #[must_use]
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// Adds details.
    #[must_use]
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 400 for a path or body field that breaks its rules.
    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Self {
        Self::new(400, "VALIDATION_FAILED", reason.to_string())
            .with_details(serde_json::json!({ "field": field }))
    }

    /// 404 for a missing resource.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(404, code, message)
    }

    /// 500 without internals: the cause is logged, not returned.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            500,
            "INTERNAL",
            "the request could not be completed; retry later",
        )
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::to_string(&Body {
            error: self.code,
            message: &self.message,
            details: self.details.as_ref(),
        })
        .unwrap_or_else(|_| format!(r#"{{"error":"{}","message":""}}"#, self.code))
    }
}

impl From<serde_json::Error> for ApiError {
    /// Syntax errors are `MALFORMED_JSON`; well-formed JSON of the wrong shape (a
    /// missing field, a string for a number) is `INVALID_BODY`. Both are 400 and both
    /// name the problem and where it is.
    fn from(error: serde_json::Error) -> Self {
        use serde_json::error::Category;
        let code = match error.classify() {
            Category::Syntax | Category::Eof | Category::Io => "MALFORMED_JSON",
            Category::Data => "INVALID_BODY",
        };
        Self::new(400, code, format!("request body: {error}"))
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        Self::internal(&error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_documented_shape() {
        let e = ApiError::invalid("user_id", "too long");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error":"VALIDATION_FAILED","message":"too long","details":{"field":"user_id"}})
        );
        let v: serde_json::Value =
            serde_json::from_str(&ApiError::not_found("X", "gone").body()).unwrap();
        assert!(v.get("details").is_none());
    }

    #[test]
    fn json_errors_are_classified() {
        let syntax = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        assert_eq!(ApiError::from(syntax).code, "MALFORMED_JSON");
        let data = serde_json::from_str::<u8>(r#""x""#).unwrap_err();
        assert_eq!(ApiError::from(data).code, "INVALID_BODY");
    }
}
