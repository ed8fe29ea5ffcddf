//! Structured JSON logging configured from the Lambda environment.
//!
//! The level comes from `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's advanced logging
//! controls), then `POWERTOOLS_LOG_LEVEL`, then `INFO`. `AWS_LAMBDA_LOG_FORMAT=Text`
//! switches to human-readable lines; anything else, including unset, writes one JSON
//! object per line, which is what CloudWatch Logs Insights queries.

use tracing::level_filters::LevelFilter;

/// The output format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (the default).
    Json,
    /// Plain text, for reading in a terminal.
    Text,
}

/// Logging settings read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// The most verbose level that is written.
    pub level: LevelFilter,
    /// How each line is written.
    pub format: LogFormat,
}

impl LogConfig {
    /// Reads the settings through `var`, so the precedence can be tested without
    /// touching the process environment.
    ///
    /// An unparseable level is ignored in favour of the next source rather than
    /// failing start-up: a typo in a log level must not take a function down.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Self {
        let level = ["AWS_LAMBDA_LOG_LEVEL", "POWERTOOLS_LOG_LEVEL"]
            .into_iter()
            .find_map(|name| var(name).and_then(|value| parse_level(&value)))
            .unwrap_or(LevelFilter::INFO);
        let format = match var("AWS_LAMBDA_LOG_FORMAT") {
            Some(value) if value.eq_ignore_ascii_case("text") => LogFormat::Text,
            _ => LogFormat::Json,
        };
        Self { level, format }
    }

    /// Reads the settings from the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

fn parse_level(value: &str) -> Option<LevelFilter> {
    match value.trim().to_ascii_uppercase().as_str() {
        "TRACE" => Some(LevelFilter::TRACE),
        "DEBUG" => Some(LevelFilter::DEBUG),
        "INFO" => Some(LevelFilter::INFO),
        "WARN" | "WARNING" => Some(LevelFilter::WARN),
        // Lambda's FATAL has no tracing equivalent; ERROR is the closest that still logs.
        "ERROR" | "FATAL" | "CRITICAL" => Some(LevelFilter::ERROR),
        "OFF" => Some(LevelFilter::OFF),
        _ => None,
    }
}

/// Installs the global log subscriber. Call once, at the start of `main`.
///
/// # Errors
/// Fails if a global subscriber is already installed.
pub fn init(config: &LogConfig) -> Result<(), tracing_subscriber::util::TryInitError> {
    use tracing_subscriber::util::SubscriberInitExt;
    let builder = tracing_subscriber::fmt()
        .with_max_level(config.level)
        .with_target(false)
        .without_time();
    match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .finish()
            .try_init(),
        LogFormat::Text => builder.finish().try_init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> LogConfig {
        LogConfig::from_lookup(|name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn defaults_to_info_and_json() {
        assert_eq!(
            config(&[]),
            LogConfig {
                level: LevelFilter::INFO,
                format: LogFormat::Json
            }
        );
    }

    #[test]
    fn lambda_level_wins_over_powertools_level() {
        let c = config(&[
            ("AWS_LAMBDA_LOG_LEVEL", "WARN"),
            ("POWERTOOLS_LOG_LEVEL", "DEBUG"),
        ]);
        assert_eq!(c.level, LevelFilter::WARN);
    }

    #[test]
    fn powertools_level_applies_when_lambda_level_is_absent_or_invalid() {
        assert_eq!(
            config(&[("POWERTOOLS_LOG_LEVEL", "debug")]).level,
            LevelFilter::DEBUG
        );
        let c = config(&[
            ("AWS_LAMBDA_LOG_LEVEL", "LOUD"),
            ("POWERTOOLS_LOG_LEVEL", "error"),
        ]);
        assert_eq!(c.level, LevelFilter::ERROR);
    }

    #[test]
    fn text_format_is_opt_in() {
        assert_eq!(
            config(&[("AWS_LAMBDA_LOG_FORMAT", "Text")]).format,
            LogFormat::Text
        );
        assert_eq!(
            config(&[("AWS_LAMBDA_LOG_FORMAT", "JSON")]).format,
            LogFormat::Json
        );
    }
}
