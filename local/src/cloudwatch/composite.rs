//! Composite alarm rules: `ALARM(name)`, `OK(name)`, `INSUFFICIENT_DATA(name)`,
//! `TRUE`, `FALSE`, `AND`, `OR`, `NOT` and parentheses, as the CloudWatch user guide
//! defines them ("Creating a composite alarm"). A name may be quoted; an alarm is
//! named by its name or its ARN. The composite is in ALARM while its rule is true and
//! OK otherwise.

use super::alarm::AlarmState;

/// A rule the plane cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("composite alarm rule {rule:?}: {reason}")]
pub struct RuleError {
    rule: String,
    reason: String,
}

/// A parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlarmRule {
    /// `TRUE` / `FALSE`.
    Constant(bool),
    /// `STATE(alarm)`: true while the alarm is in `STATE`.
    Is(AlarmState, String),
    /// `NOT r`.
    Not(Box<AlarmRule>),
    /// `a AND b`.
    And(Box<AlarmRule>, Box<AlarmRule>),
    /// `a OR b`.
    Or(Box<AlarmRule>, Box<AlarmRule>),
}

impl AlarmRule {
    /// Reads a rule.
    ///
    /// # Errors
    /// [`RuleError`] naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, RuleError> {
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            text,
            tokens,
            at: 0,
        };
        let rule = parser.or()?;
        if parser.at < parser.tokens.len() {
            return Err(parser.error("unexpected text after the rule"));
        }
        Ok(rule)
    }

    /// The alarms the rule names.
    pub fn alarms(&self) -> Vec<&str> {
        match self {
            Self::Constant(_) => Vec::new(),
            Self::Is(_, name) => vec![name.as_str()],
            Self::Not(r) => r.alarms(),
            Self::And(a, b) | Self::Or(a, b) => {
                let mut names = a.alarms();
                names.extend(b.alarms());
                names
            }
        }
    }

    /// Whether the rule holds, given each alarm's state.
    pub fn holds(&self, state_of: &dyn Fn(&str) -> Option<AlarmState>) -> bool {
        match self {
            Self::Constant(value) => *value,
            Self::Is(state, name) => state_of(name) == Some(*state),
            Self::Not(r) => !r.holds(state_of),
            Self::And(a, b) => a.holds(state_of) && b.holds(state_of),
            Self::Or(a, b) => a.holds(state_of) || b.holds(state_of),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<Token>, RuleError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '"' | '\'' => {
                chars.next();
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some(end) if end == c => break,
                        Some(other) => name.push(other),
                        None => {
                            return Err(RuleError {
                                rule: text.to_owned(),
                                reason: "an unterminated quoted name".to_owned(),
                            });
                        }
                    }
                }
                tokens.push(Token::Quoted(name));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    at: usize,
}

impl Parser<'_> {
    fn error(&self, reason: &str) -> RuleError {
        RuleError {
            rule: self.text.to_owned(),
            reason: format!("{reason} (token {})", self.at + 1),
        }
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w == word) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<AlarmRule, RuleError> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            left = AlarmRule::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<AlarmRule, RuleError> {
        let mut left = self.not()?;
        while self.keyword("AND") {
            left = AlarmRule::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<AlarmRule, RuleError> {
        if self.keyword("NOT") {
            return Ok(AlarmRule::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<AlarmRule, RuleError> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        match token {
            Some(Token::Open) => {
                let inner = self.or()?;
                if self.tokens.get(self.at) != Some(&Token::Close) {
                    return Err(self.error("missing ')'"));
                }
                self.at += 1;
                Ok(inner)
            }
            Some(Token::Word(word)) => {
                let state = match word.as_str() {
                    "TRUE" => return Ok(AlarmRule::Constant(true)),
                    "FALSE" => return Ok(AlarmRule::Constant(false)),
                    "ALARM" => AlarmState::Alarm,
                    "OK" => AlarmState::Ok,
                    "INSUFFICIENT_DATA" => AlarmState::InsufficientData,
                    other => {
                        self.at -= 1;
                        return Err(self.error(&format!(
                            "{other} is not a function the plane implements (ALARM, OK, INSUFFICIENT_DATA, TRUE, FALSE)"
                        )));
                    }
                };
                if self.tokens.get(self.at) != Some(&Token::Open) {
                    return Err(self.error(&format!("{word} needs '(' and an alarm name")));
                }
                self.at += 1;
                let name = match self.tokens.get(self.at).cloned() {
                    Some(Token::Quoted(name) | Token::Word(name)) => name,
                    _ => return Err(self.error("expected an alarm name")),
                };
                self.at += 1;
                if self.tokens.get(self.at) != Some(&Token::Close) {
                    return Err(self.error("missing ')' after the alarm name"));
                }
                self.at += 1;
                Ok(AlarmRule::Is(state, name))
            }
            _ => {
                self.at -= 1;
                Err(self.error("expected ALARM(...), OK(...), INSUFFICIENT_DATA(...), NOT or '('"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_combine_states_with_and_or_not() {
        let rule = AlarmRule::parse(
            r#"ALARM("a") OR (ALARM(b) AND NOT OK('c')) OR INSUFFICIENT_DATA("d") AND FALSE"#,
        )
        .unwrap();
        assert_eq!(rule.alarms(), ["a", "b", "c", "d"]);
        let with = |states: &'static [(&'static str, AlarmState)]| {
            move |name: &str| states.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
        };
        use AlarmState::*;
        assert!(rule.holds(&with(&[("a", Alarm)])));
        assert!(!rule.holds(&with(&[("a", Ok), ("b", Alarm), ("c", Ok)])));
        assert!(rule.holds(&with(&[("a", Ok), ("b", Alarm), ("c", InsufficientData)])));
        // AND binds tighter than OR: `... OR (INSUFFICIENT_DATA(d) AND FALSE)`.
        assert!(!rule.holds(&with(&[("d", InsufficientData)])));
        assert!(AlarmRule::parse("TRUE").unwrap().holds(&|_| None));
    }

    #[test]
    fn the_templates_rule_form_parses() {
        let text = r#"ALARM("ecommerce-DeadLetterQueueNotEmptyAlarm") OR ALARM("ecommerce-StreamIteratorAgeAlarm")"#;
        assert_eq!(AlarmRule::parse(text).unwrap().alarms().len(), 2);
    }

    #[test]
    fn what_the_plane_does_not_read_fails_loudly() {
        for (text, named) in [
            ("AT_LEAST(2, ALARM, (a, b))", "AT_LEAST"),
            ("ALARM(a) XOR ALARM(b)", "unexpected"),
            ("ALARM(a", "missing ')'"),
            ("ALARM(\"a)", "unterminated"),
        ] {
            let err = AlarmRule::parse(text).unwrap_err().to_string();
            assert!(err.contains(named), "{text}: {err}");
        }
    }
}
