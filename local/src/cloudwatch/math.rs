//! Metric math, the part of it the plane implements: numbers, metric and expression
//! ids, `+ - * / ^`, unary minus, parentheses and `FILL(series, number | REPEAT)`.
//!
//! Semantics follow the CloudWatch user guide ("Using metric math"): in arithmetic,
//! a value missing from one time series is treated as 0 where the other has one; a
//! division by zero drops that datapoint; `FILL` gives every period of the queried
//! range a value, so a filled series has no missing datapoints at all. Anything else
//! (another function, a comparison, `METRICS()`) is an error that names it, never a
//! guess.

use std::collections::{BTreeMap, HashMap};

/// Why an expression cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MathError {
    /// The text is not an expression the plane can read.
    #[error("metric math {expression:?}: {reason}")]
    Parse {
        /// The expression.
        expression: String,
        /// What is wrong, at which character.
        reason: String,
    },
    /// A function or form the plane does not implement.
    #[error("metric math {expression:?}: {what} is not implemented by the local plane")]
    Unsupported {
        /// The expression.
        expression: String,
        /// The function or form.
        what: String,
    },
    /// An id names no metric or expression of the query.
    #[error("metric math {expression:?}: no metric or expression has the id {id:?}")]
    UnknownId {
        /// The expression.
        expression: String,
        /// The id.
        id: String,
    },
    /// The expression gives a single number where a time series is needed.
    #[error("metric math {expression:?}: the result is a number, not a time series")]
    Scalar {
        /// The expression.
        expression: String,
    },
}

/// What `FILL` fills with.
#[derive(Debug, Clone, PartialEq)]
pub enum Filler {
    /// A number.
    Value(f64),
    /// The most recent value before the gap.
    Repeat,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number.
    Number(f64),
    /// A metric's or another expression's id.
    Id(String),
    /// `-e`.
    Negate(Box<Expr>),
    /// `a op b`.
    Binary(char, Box<Expr>, Box<Expr>),
    /// `FILL(e, filler)`.
    Fill(Box<Expr>, Filler),
}

impl Expr {
    /// Reads an expression.
    ///
    /// # Errors
    /// [`MathError::Parse`] or, for a function the plane does not implement,
    /// [`MathError::Unsupported`].
    pub fn parse(text: &str) -> Result<Self, MathError> {
        let mut parser = Parser {
            text,
            chars: text.char_indices().collect(),
            at: 0,
        };
        let expr = parser.sum()?;
        parser.skip_space();
        if parser.at < parser.chars.len() {
            return Err(parser.error("unexpected text"));
        }
        Ok(expr)
    }

    /// The ids the expression reads.
    pub fn ids(&self) -> Vec<&str> {
        match self {
            Self::Number(_) => Vec::new(),
            Self::Id(id) => vec![id.as_str()],
            Self::Negate(e) | Self::Fill(e, _) => e.ids(),
            Self::Binary(_, a, b) => {
                let mut ids = a.ids();
                ids.extend(b.ids());
                ids
            }
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    chars: Vec<(usize, char)>,
    at: usize,
}

impl Parser<'_> {
    fn error(&self, reason: &str) -> MathError {
        MathError::Parse {
            expression: self.text.to_owned(),
            reason: format!("{reason} at character {}", self.at + 1),
        }
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).map(|(_, c)| *c)
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn sum(&mut self) -> Result<Expr, MathError> {
        let mut left = self.product()?;
        loop {
            self.skip_space();
            match self.peek() {
                Some(op @ ('+' | '-')) => {
                    self.at += 1;
                    let right = self.product()?;
                    left = Expr::Binary(op, Box::new(left), Box::new(right));
                }
                Some('<' | '>' | '=' | '!' | '&' | '|') => {
                    return Err(MathError::Unsupported {
                        expression: self.text.to_owned(),
                        what: "a comparison or logical operator".to_owned(),
                    });
                }
                _ => return Ok(left),
            }
        }
    }

    fn product(&mut self) -> Result<Expr, MathError> {
        let mut left = self.power()?;
        loop {
            self.skip_space();
            match self.peek() {
                Some(op @ ('*' | '/')) => {
                    self.at += 1;
                    let right = self.power()?;
                    left = Expr::Binary(op, Box::new(left), Box::new(right));
                }
                _ => return Ok(left),
            }
        }
    }

    fn power(&mut self) -> Result<Expr, MathError> {
        let base = self.unary()?;
        if self.eat('^') {
            let exponent = self.power()?;
            return Ok(Expr::Binary('^', Box::new(base), Box::new(exponent)));
        }
        Ok(base)
    }

    fn unary(&mut self) -> Result<Expr, MathError> {
        if self.eat('-') {
            return Ok(Expr::Negate(Box::new(self.unary()?)));
        }
        self.atom()
    }

    fn word(&mut self) -> String {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            self.at += 1;
        }
        self.chars[start..self.at].iter().map(|(_, c)| c).collect()
    }

    fn atom(&mut self) -> Result<Expr, MathError> {
        self.skip_space();
        match self.peek() {
            Some('(') => {
                self.at += 1;
                let inner = self.sum()?;
                if !self.eat(')') {
                    return Err(self.error("missing ')'"));
                }
                Ok(inner)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => {
                let word = self.word();
                word.parse()
                    .map(Expr::Number)
                    .map_err(|_| self.error(&format!("{word:?} is not a number")))
            }
            Some(c) if c.is_ascii_lowercase() => Ok(Expr::Id(self.word())),
            Some(c) if c.is_ascii_uppercase() => {
                let name = self.word();
                if !self.eat('(') {
                    return Err(MathError::Unsupported {
                        expression: self.text.to_owned(),
                        what: format!("the keyword {name}"),
                    });
                }
                if name != "FILL" {
                    return Err(MathError::Unsupported {
                        expression: self.text.to_owned(),
                        what: format!("the function {name}()"),
                    });
                }
                let series = self.sum()?;
                if !self.eat(',') {
                    return Err(self.error("FILL needs two arguments"));
                }
                self.skip_space();
                let filler = if self.peek().is_some_and(|c| c.is_ascii_uppercase()) {
                    match self.word().as_str() {
                        "REPEAT" => Filler::Repeat,
                        other => {
                            return Err(MathError::Unsupported {
                                expression: self.text.to_owned(),
                                what: format!("FILL(..., {other})"),
                            });
                        }
                    }
                } else {
                    let unsupported = || MathError::Unsupported {
                        expression: self.text.to_owned(),
                        what: "FILL with a time series or expression as the filler".to_owned(),
                    };
                    match self.sum()? {
                        Expr::Number(n) => Filler::Value(n),
                        Expr::Negate(inner) => match *inner {
                            Expr::Number(n) => Filler::Value(-n),
                            _ => return Err(unsupported()),
                        },
                        _ => return Err(unsupported()),
                    }
                };
                if !self.eat(')') {
                    return Err(self.error("missing ')' after FILL's arguments"));
                }
                Ok(Expr::Fill(Box::new(series), filler))
            }
            Some('"' | '[' | '{') => Err(MathError::Unsupported {
                expression: self.text.to_owned(),
                what: "a string, array or SEARCH expression".to_owned(),
            }),
            _ => Err(self.error("expected a number, an id or '('")),
        }
    }
}

/// A time series: values by period start (simulated epoch ms).
pub type Series = BTreeMap<i64, f64>;

#[derive(Debug, Clone)]
enum Value {
    Scalar(f64),
    Series(Series),
}

/// Evaluates `expr` over `inputs` (by id). `periods` are the start times of every
/// period of the queried range, which `FILL` fills.
///
/// # Errors
/// [`MathError::UnknownId`] for an id missing from `inputs`; [`MathError::Scalar`]
/// if the result is a number.
pub fn evaluate(
    text: &str,
    expr: &Expr,
    inputs: &HashMap<String, Series>,
    periods: &[i64],
) -> Result<Series, MathError> {
    match eval(text, expr, inputs, periods)? {
        Value::Series(series) => Ok(series),
        Value::Scalar(_) => Err(MathError::Scalar {
            expression: text.to_owned(),
        }),
    }
}

fn apply(op: char, a: f64, b: f64) -> Option<f64> {
    let value = match op {
        '+' => a + b,
        '-' => a - b,
        '*' => a * b,
        '/' if b == 0.0 => return None,
        '/' => a / b,
        _ => a.powf(b),
    };
    value.is_finite().then_some(value)
}

fn eval(
    text: &str,
    expr: &Expr,
    inputs: &HashMap<String, Series>,
    periods: &[i64],
) -> Result<Value, MathError> {
    Ok(match expr {
        Expr::Number(n) => Value::Scalar(*n),
        Expr::Id(id) => {
            Value::Series(
                inputs
                    .get(id)
                    .cloned()
                    .ok_or_else(|| MathError::UnknownId {
                        expression: text.to_owned(),
                        id: id.clone(),
                    })?,
            )
        }
        Expr::Negate(inner) => match eval(text, inner, inputs, periods)? {
            Value::Scalar(n) => Value::Scalar(-n),
            Value::Series(s) => Value::Series(s.into_iter().map(|(t, v)| (t, -v)).collect()),
        },
        Expr::Binary(op, a, b) => {
            match (
                eval(text, a, inputs, periods)?,
                eval(text, b, inputs, periods)?,
            ) {
                (Value::Scalar(a), Value::Scalar(b)) => {
                    Value::Scalar(apply(*op, a, b).unwrap_or(f64::NAN))
                }
                (Value::Series(a), Value::Scalar(b)) => Value::Series(
                    a.into_iter()
                        .filter_map(|(t, v)| Some((t, apply(*op, v, b)?)))
                        .collect(),
                ),
                (Value::Scalar(a), Value::Series(b)) => Value::Series(
                    b.into_iter()
                        .filter_map(|(t, v)| Some((t, apply(*op, a, v)?)))
                        .collect(),
                ),
                (Value::Series(a), Value::Series(b)) => {
                    let times: std::collections::BTreeSet<i64> =
                        a.keys().chain(b.keys()).copied().collect();
                    Value::Series(
                        times
                            .into_iter()
                            .filter_map(|t| {
                                let x = a.get(&t).copied().unwrap_or(0.0);
                                let y = b.get(&t).copied().unwrap_or(0.0);
                                Some((t, apply(*op, x, y)?))
                            })
                            .collect(),
                    )
                }
            }
        }
        Expr::Fill(inner, filler) => {
            let Value::Series(series) = eval(text, inner, inputs, periods)? else {
                return Err(MathError::Unsupported {
                    expression: text.to_owned(),
                    what: "FILL of a number".to_owned(),
                });
            };
            let mut filled = series.clone();
            let mut last = None;
            for &t in periods {
                match series.get(&t) {
                    Some(&v) => last = Some(v),
                    None => {
                        let value = match filler {
                            Filler::Value(v) => Some(*v),
                            Filler::Repeat => last,
                        };
                        if let Some(v) = value {
                            filled.insert(t, v);
                        }
                    }
                }
            }
            Value::Series(filled)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(i64, f64)]) -> Series {
        points.iter().copied().collect()
    }

    fn run(text: &str, inputs: &[(&str, Series)], periods: &[i64]) -> Result<Series, MathError> {
        let inputs = inputs
            .iter()
            .map(|(id, s)| ((*id).to_owned(), s.clone()))
            .collect();
        evaluate(text, &Expr::parse(text)?, &inputs, periods)
    }

    #[test]
    fn the_templates_expressions_parse() {
        for text in [
            "FILL(orders, 0) + FILL(stream, 0)",
            "FILL(api, 0) + FILL(forwarder, 0) + FILL(completer, 0)",
            "FILL(placed, 0) - FILL(completed, 0)",
        ] {
            let expr = Expr::parse(text).unwrap();
            assert!(expr.ids().len() >= 2, "{text}");
        }
    }

    #[test]
    fn fill_gives_every_period_a_value_even_for_a_metric_with_no_data() {
        let periods = [0, 60, 120];
        let filled = run(
            "FILL(a, 0) + FILL(b, 0)",
            &[("a", series(&[(60, 2.0)])), ("b", Series::new())],
            &periods,
        )
        .unwrap();
        assert_eq!(filled, series(&[(0, 0.0), (60, 2.0), (120, 0.0)]));
        let repeated = run("FILL(a, REPEAT)", &[("a", series(&[(60, 2.0)]))], &periods).unwrap();
        assert_eq!(repeated, series(&[(60, 2.0), (120, 2.0)]));
        let negative = run("FILL(a, -1)", &[("a", Series::new())], &[0]).unwrap();
        assert_eq!(negative, series(&[(0, -1.0)]));
    }

    #[test]
    fn arithmetic_treats_a_missing_value_as_zero_and_drops_division_by_zero() {
        // The guide's example: metric1 [30, 20, 0, 0], metric2 [20, -, 20, -].
        let m1 = series(&[(0, 30.0), (1, 20.0), (2, 0.0), (3, 0.0)]);
        let m2 = series(&[(0, 20.0), (2, 20.0)]);
        let inputs = [("metric1", m1), ("metric2", m2)];
        assert_eq!(
            run("metric1 - metric2", &inputs, &[]).unwrap(),
            series(&[(0, 10.0), (1, 20.0), (2, -20.0), (3, 0.0)])
        );
        assert_eq!(
            run("metric2 / metric1", &inputs, &[]).unwrap(),
            series(&[(0, 20.0 / 30.0), (1, 0.0)])
        );
        assert_eq!(
            run("-(metric1 * 2 + 1) ^ 1", &inputs, &[]).unwrap(),
            series(&[(0, -61.0), (1, -41.0), (2, -1.0), (3, -1.0)])
        );
        // Neither has a value: no datapoint.
        assert!(
            run("a + b", &[("a", Series::new()), ("b", Series::new())], &[0])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn what_the_plane_does_not_implement_is_an_error_that_names_it() {
        for (text, named) in [
            ("RATE(m1)", "RATE()"),
            ("SUM(METRICS())", "SUM()"),
            ("FILL(m1, LINEAR)", "LINEAR"),
            ("FILL(m1, m2)", "FILL with a time series"),
            ("m1 > 5", "comparison"),
            ("IF(m1 > 5, 1, 0)", "IF()"),
            ("SEARCH('{AWS/Lambda} Errors', 'Sum', 60)", "SEARCH()"),
        ] {
            let err = Expr::parse(text).unwrap_err();
            assert!(
                matches!(err, MathError::Unsupported { .. }),
                "{text}: {err}"
            );
            assert!(err.to_string().contains(named), "{text}: {err}");
        }
        assert!(matches!(
            Expr::parse("m1 +").unwrap_err(),
            MathError::Parse { .. }
        ));
        assert!(matches!(
            run("m1 + zz", &[("m1", Series::new())], &[]).unwrap_err(),
            MathError::UnknownId { .. }
        ));
        assert!(matches!(
            run("1 + 2", &[], &[]).unwrap_err(),
            MathError::Scalar { .. }
        ));
    }
}
