//! The part of the CloudWatch Logs Insights query language the dashboard's queries
//! use, run over the plane's log events: `SOURCE`, `fields`, `filter` (`=`, `!=`,
//! `<`, `<=`, `>`, `>=`, `like /regex/` with a literal pattern and `^`/`$` anchors,
//! `ispresent()`, `and`, `or`, `not`, parentheses), `stats` (`count`, `sum`, `avg`,
//! `min`, `max`, `pct`, `earliest`, `latest`, with `as` and `by`), `sort` and
//! `limit`. Any other command, function or regular-expression feature is an error
//! that names it.
//!
//! Fields are the event's JSON keys, nested ones by dotted path
//! (`record.metrics.durationMs`), and `@timestamp`, `@message`, `@log` (the account
//! and group, as Insights writes it) and `@logStream`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::Value as Json;

/// One log event.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    /// Simulated epoch ms.
    pub timestamp_ms: i64,
    /// The log group.
    pub group: String,
    /// The log stream.
    pub stream: String,
    /// The line as written.
    pub message: String,
    /// The line parsed, when it is a JSON object.
    pub json: Option<Json>,
}

impl LogEvent {
    /// A field of the event.
    pub fn field(&self, name: &str) -> Option<Json> {
        match name {
            "@timestamp" => Some(Json::from(self.timestamp_ms)),
            "@message" => Some(Json::from(self.message.clone())),
            "@log" => Some(Json::from(format!("000000000000:{}", self.group))),
            "@logStream" => Some(Json::from(self.stream.clone())),
            path => {
                let mut value = self.json.as_ref()?;
                // A key with dots in it wins over the nested path, as Insights flattens.
                if let Some(flat) = value.get(path) {
                    return (!flat.is_null()).then(|| flat.clone());
                }
                for part in path.split('.') {
                    value = value.get(part)?;
                }
                (!value.is_null()).then(|| value.clone())
            }
        }
    }
}

/// A query the plane cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Logs Insights query: {reason} (in {query:?})")]
pub struct QueryError {
    query: String,
    reason: String,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The log groups of its `SOURCE` commands.
    pub sources: Vec<String>,
    stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    Fields(Vec<String>),
    Filter(Condition),
    Stats {
        aggregates: Vec<(Aggregate, String)>,
        by: Vec<String>,
    },
    Sort {
        field: String,
        descending: bool,
    },
    Limit(usize),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Field(String),
    Literal(Json),
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    Compare(Operand, &'static str, Operand),
    Like(Operand, Pattern),
    IsPresent(String),
    Not(Box<Condition>),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
}

#[derive(Debug, Clone, PartialEq)]
struct Pattern {
    start: bool,
    end: bool,
    literal: String,
}

impl Pattern {
    fn matches(&self, text: &str) -> bool {
        match (self.start, self.end) {
            (true, true) => text == self.literal,
            (true, false) => text.starts_with(&self.literal),
            (false, true) => text.ends_with(&self.literal),
            (false, false) => text.contains(&self.literal),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Aggregate {
    Count(Option<String>),
    Sum(String),
    Avg(String),
    Min(String),
    Max(String),
    Pct(String, f64),
    Earliest(String),
    Latest(String),
}

/// A query's result: named columns and rows of values (`None` where a row has none).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Table {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<Option<Json>>>,
}

fn split_top_level(text: &str, separator: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0i32;
    for c in text.chars() {
        match quote {
            Some(q) => {
                current.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' | '/' | '`' => {
                    quote = Some(c);
                    current.push(c);
                }
                '(' | '[' => {
                    depth += 1;
                    current.push(c);
                }
                ')' | ']' => {
                    depth -= 1;
                    current.push(c);
                }
                c if c == separator && depth == 0 => {
                    parts.push(current.trim().to_owned());
                    current.clear();
                }
                c => current.push(c),
            },
        }
    }
    parts.push(current.trim().to_owned());
    parts
}

impl Query {
    /// Reads a query.
    ///
    /// # Errors
    /// [`QueryError`] naming what the plane does not implement.
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        let error = |reason: String| QueryError {
            query: text.to_owned(),
            reason,
        };
        let mut sources = Vec::new();
        let mut stages = Vec::new();
        for part in split_top_level(text, '|') {
            let (command, rest) = part
                .split_once(char::is_whitespace)
                .map_or((part.as_str(), ""), |(c, r)| (c, r.trim()));
            match command {
                "SOURCE" => sources.push(unquote(rest).ok_or_else(|| {
                    error(format!("SOURCE needs a quoted log group, not {rest:?}"))
                })?),
                "fields" => stages.push(Stage::Fields(
                    split_top_level(rest, ',')
                        .into_iter()
                        .map(|f| field_name(&f).map_err(&error))
                        .collect::<Result<_, _>>()?,
                )),
                "filter" => stages.push(Stage::Filter(
                    ConditionParser::new(rest).parse().map_err(error)?,
                )),
                "stats" => stages.push(parse_stats(rest).map_err(error)?),
                "sort" => {
                    let mut words = rest.split_whitespace();
                    let field = field_name(words.next().unwrap_or_default()).map_err(&error)?;
                    let descending = match words.next() {
                        None | Some("asc") => false,
                        Some("desc") => true,
                        Some(other) => return Err(error(format!("sort order {other:?}"))),
                    };
                    if let Some(extra) = words.next() {
                        return Err(error(format!(
                            "sort by more than one field ({extra:?}) is not implemented"
                        )));
                    }
                    stages.push(Stage::Sort { field, descending });
                }
                "limit" => stages
                    .push(Stage::Limit(rest.parse().map_err(|_| {
                        error(format!("limit {rest:?} is not a number"))
                    })?)),
                other => {
                    return Err(error(format!(
                        "the command {other:?} is not implemented by the local plane"
                    )));
                }
            }
        }
        Ok(Self { sources, stages })
    }

    /// Runs the query over `events` (already limited to its groups and time range).
    pub fn run<'a>(&self, events: impl IntoIterator<Item = &'a LogEvent>) -> Table {
        let mut rows: Vec<Row<'a>> = events
            .into_iter()
            .map(|event| Row {
                event: Some(event),
                values: BTreeMap::new(),
            })
            .collect();
        let mut columns: Option<Vec<String>> = None;
        for stage in &self.stages {
            match stage {
                Stage::Fields(fields) => columns = Some(fields.clone()),
                Stage::Filter(condition) => rows.retain(|row| row.satisfies(condition)),
                Stage::Stats { aggregates, by } => {
                    let (names, grouped) = stats(&rows, aggregates, by);
                    rows = grouped;
                    columns = Some(names);
                }
                Stage::Sort { field, descending } => rows.sort_by(|a, b| {
                    let order = compare_json(a.get(field).as_ref(), b.get(field).as_ref());
                    if *descending { order.reverse() } else { order }
                }),
                Stage::Limit(n) => rows.truncate(*n),
            }
        }
        let columns =
            columns.unwrap_or_else(|| vec!["@timestamp".to_owned(), "@message".to_owned()]);
        Table {
            rows: rows
                .iter()
                .map(|row| columns.iter().map(|c| row.get(c)).collect())
                .collect(),
            columns,
        }
    }
}

fn unquote(text: &str) -> Option<String> {
    let text = text.trim();
    let quote = text.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    text.strip_prefix(quote)?
        .strip_suffix(quote)
        .map(str::to_owned)
}

fn field_name(text: &str) -> Result<String, String> {
    let text = text.trim();
    let valid = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'));
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not a field name (expressions in fields and sort are not implemented)"
        ))
    }
}

fn parse_stats(text: &str) -> Result<Stage, String> {
    let (aggregates_text, by) = match split_keyword(text, " by ") {
        Some((a, b)) => (
            a,
            split_top_level(b, ',')
                .into_iter()
                .map(|f| field_name(&f))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => (text, Vec::new()),
    };
    let mut aggregates = Vec::new();
    for part in split_top_level(aggregates_text, ',') {
        let (expression, alias) = match split_keyword(&part, " as ") {
            Some((e, a)) => (e.trim().to_owned(), field_name(a)?),
            None => (part.clone(), part.clone()),
        };
        let (function, arguments) = expression
            .strip_suffix(')')
            .and_then(|e| e.split_once('('))
            .ok_or_else(|| format!("{expression:?} is not an aggregate function call"))?;
        let arguments: Vec<String> = split_top_level(arguments, ',')
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect();
        let one = || -> Result<String, String> {
            match arguments.as_slice() {
                [field] => field_name(field),
                _ => Err(format!("{function}() takes one field")),
            }
        };
        let aggregate = match function.trim() {
            "count" => match arguments.as_slice() {
                [] => Aggregate::Count(None),
                [star] if star == "*" => Aggregate::Count(None),
                [field] => Aggregate::Count(Some(field_name(field)?)),
                _ => return Err("count() takes one field or *".to_owned()),
            },
            "sum" => Aggregate::Sum(one()?),
            "avg" => Aggregate::Avg(one()?),
            "min" => Aggregate::Min(one()?),
            "max" => Aggregate::Max(one()?),
            "earliest" => Aggregate::Earliest(one()?),
            "latest" => Aggregate::Latest(one()?),
            "pct" => match arguments.as_slice() {
                [field, percentile] => Aggregate::Pct(
                    field_name(field)?,
                    percentile
                        .trim()
                        .parse()
                        .map_err(|_| format!("pct percentile {percentile:?}"))?,
                ),
                _ => return Err("pct() takes a field and a percentile".to_owned()),
            },
            other => {
                return Err(format!(
                    "the stats function {other}() is not implemented by the local plane"
                ));
            }
        };
        aggregates.push((aggregate, alias));
    }
    Ok(Stage::Stats { aggregates, by })
}

/// Splits at the first top-level ` keyword ` (outside quotes and parentheses).
fn split_keyword<'a>(text: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' | '/' => quote = Some(c),
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth == 0 && text[i..].starts_with(keyword) => {
                    return Some((&text[..i], &text[i + keyword.len()..]));
                }
                _ => {}
            },
        }
    }
    None
}

struct ConditionParser<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> ConditionParser<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, at: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn skip_space(&mut self) {
        let trimmed = self.rest().trim_start();
        self.at = self.text.len() - trimmed.len();
    }

    fn keyword(&mut self, word: &str) -> bool {
        self.skip_space();
        let rest = self.rest();
        let matches = rest.len() >= word.len()
            && rest[..word.len()].eq_ignore_ascii_case(word)
            && rest[word.len()..]
                .chars()
                .next()
                .is_none_or(|c| c.is_whitespace() || c == '(');
        if matches {
            self.at += word.len();
        }
        matches
    }

    fn parse(mut self) -> Result<Condition, String> {
        let condition = self.or()?;
        self.skip_space();
        if self.at < self.text.len() {
            return Err(format!("unexpected {:?} in filter", self.rest()));
        }
        Ok(condition)
    }

    fn or(&mut self) -> Result<Condition, String> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            left = Condition::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Condition, String> {
        if self.keyword("not") {
            return Ok(Condition::Not(Box::new(self.unary()?)));
        }
        self.skip_space();
        if self.rest().starts_with('(') {
            self.at += 1;
            let inner = self.or()?;
            self.skip_space();
            if !self.rest().starts_with(')') {
                return Err("missing ')' in filter".to_owned());
            }
            self.at += 1;
            return Ok(inner);
        }
        self.predicate()
    }

    fn operand(&mut self) -> Result<Operand, String> {
        self.skip_space();
        let rest = self.rest();
        if let Some(quote) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') {
            let end = rest[1..]
                .find(quote)
                .ok_or_else(|| "an unterminated string in filter".to_owned())?;
            self.at += end + 2;
            return Ok(Operand::Literal(Json::from(&rest[1..=end])));
        }
        let length = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-')))
            .unwrap_or(rest.len());
        let word = &rest[..length];
        if word.is_empty() {
            return Err(format!("expected a field or a value at {rest:?}"));
        }
        self.at += length;
        if self.rest().starts_with('(') {
            return Err(format!(
                "the function {word}() is not implemented in filters by the local plane"
            ));
        }
        Ok(match word.parse::<f64>() {
            Ok(number) => Operand::Literal(Json::from(number)),
            Err(_) => Operand::Field(word.to_owned()),
        })
    }

    fn predicate(&mut self) -> Result<Condition, String> {
        self.skip_space();
        if self.keyword("ispresent") {
            self.skip_space();
            let inner = self
                .rest()
                .strip_prefix('(')
                .and_then(|r| r.split_once(')'))
                .map(|(field, _)| field.to_owned())
                .ok_or_else(|| "ispresent needs (field)".to_owned())?;
            self.at += inner.len() + 2;
            return Ok(Condition::IsPresent(field_name(&inner)?));
        }
        let left = self.operand()?;
        self.skip_space();
        if self.keyword("like") {
            self.skip_space();
            let rest = self.rest();
            let Some(body) = rest.strip_prefix('/') else {
                return Err(
                    "like needs a /regular expression/ (string patterns are not implemented)"
                        .to_owned(),
                );
            };
            let end = body
                .find('/')
                .ok_or_else(|| "an unterminated regular expression".to_owned())?;
            let pattern = &body[..end];
            self.at += end + 2;
            if self.rest().starts_with(|c: char| c.is_ascii_alphabetic()) {
                return Err("regular-expression flags are not implemented".to_owned());
            }
            let start = pattern.starts_with('^');
            let literal = pattern.trim_start_matches('^');
            let end = literal.ends_with('$');
            let literal = literal.trim_end_matches('$');
            if let Some(special) = literal.chars().find(|c| ".*+?()[]{}|\\^$".contains(*c)) {
                return Err(format!(
                    "the regular expression /{pattern}/ uses {special:?}: only literal text with ^ and $ anchors is implemented"
                ));
            }
            return Ok(Condition::Like(
                left,
                Pattern {
                    start,
                    end,
                    literal: literal.to_owned(),
                },
            ));
        }
        for op in ["!=", "<=", ">=", "=", "<", ">"] {
            if self.rest().starts_with(op) {
                self.at += op.len();
                let right = self.operand()?;
                return Ok(Condition::Compare(left, op, right));
            }
        }
        Err(format!("expected a comparison at {:?}", self.rest()))
    }
}

struct Row<'a> {
    event: Option<&'a LogEvent>,
    values: BTreeMap<String, Json>,
}

impl Row<'_> {
    fn get(&self, name: &str) -> Option<Json> {
        self.values
            .get(name)
            .cloned()
            .or_else(|| self.event.and_then(|e| e.field(name)))
    }

    fn operand(&self, operand: &Operand) -> Option<Json> {
        match operand {
            Operand::Field(name) => self.get(name),
            Operand::Literal(value) => Some(value.clone()),
        }
    }

    fn satisfies(&self, condition: &Condition) -> bool {
        match condition {
            Condition::IsPresent(field) => self.get(field).is_some(),
            Condition::Not(inner) => !self.satisfies(inner),
            Condition::And(a, b) => self.satisfies(a) && self.satisfies(b),
            Condition::Or(a, b) => self.satisfies(a) || self.satisfies(b),
            Condition::Like(operand, pattern) => self
                .operand(operand)
                .is_some_and(|v| pattern.matches(&text_of(&v))),
            Condition::Compare(a, op, b) => {
                let (Some(a), Some(b)) = (self.operand(a), self.operand(b)) else {
                    return false;
                };
                let order = match (number(&a), number(&b)) {
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    _ => text_of(&a).cmp(&text_of(&b)),
                };
                match *op {
                    "=" => order == Ordering::Equal,
                    "!=" => order != Ordering::Equal,
                    "<" => order == Ordering::Less,
                    "<=" => order != Ordering::Greater,
                    ">" => order == Ordering::Greater,
                    _ => order != Ordering::Less,
                }
            }
        }
    }
}

fn text_of(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn number(value: &Json) -> Option<f64> {
    match value {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn compare_json(a: Option<&Json>, b: Option<&Json>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => match (number(a), number(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => text_of(a).cmp(&text_of(b)),
        },
    }
}

fn json_number(value: f64) -> Json {
    serde_json::Number::from_f64(value).map_or(Json::Null, Json::Number)
}

fn stats<'a>(
    rows: &[Row<'a>],
    aggregates: &[(Aggregate, String)],
    by: &[String],
) -> (Vec<String>, Vec<Row<'a>>) {
    let mut groups: BTreeMap<Vec<String>, Vec<&Row<'a>>> = BTreeMap::new();
    for row in rows {
        let key = by
            .iter()
            .map(|f| row.get(f).map(|v| text_of(&v)).unwrap_or_default())
            .collect();
        groups.entry(key).or_default().push(row);
    }
    if groups.is_empty() && by.is_empty() {
        groups.insert(Vec::new(), Vec::new());
    }
    let timestamp = |row: &Row<'_>| row.event.map_or(0, |e| e.timestamp_ms);
    let out = groups
        .into_iter()
        .map(|(key, members)| {
            let mut values: BTreeMap<String, Json> = by
                .iter()
                .cloned()
                .zip(key.into_iter().map(Json::from))
                .collect();
            for (aggregate, alias) in aggregates {
                let numbers = |field: &str| -> Vec<f64> {
                    members
                        .iter()
                        .filter_map(|r| r.get(field).as_ref().and_then(number))
                        .collect()
                };
                let value = match aggregate {
                    Aggregate::Count(None) => Some(Json::from(members.len())),
                    Aggregate::Count(Some(field)) => Some(Json::from(
                        members.iter().filter(|r| r.get(field).is_some()).count(),
                    )),
                    Aggregate::Sum(f) => {
                        let n = numbers(f);
                        (!n.is_empty()).then(|| json_number(n.iter().sum()))
                    }
                    Aggregate::Avg(f) => {
                        let n = numbers(f);
                        (!n.is_empty()).then(|| json_number(n.iter().sum::<f64>() / n.len() as f64))
                    }
                    Aggregate::Min(f) => numbers(f).into_iter().reduce(f64::min).map(json_number),
                    Aggregate::Max(f) => numbers(f).into_iter().reduce(f64::max).map(json_number),
                    Aggregate::Pct(f, p) => {
                        let mut n = numbers(f);
                        n.sort_by(f64::total_cmp);
                        let rank = ((p / 100.0) * n.len() as f64).ceil().max(1.0) as usize;
                        n.get(rank.min(n.len()).saturating_sub(1))
                            .copied()
                            .map(json_number)
                    }
                    Aggregate::Earliest(f) => members
                        .iter()
                        .filter(|r| r.get(f).is_some())
                        .min_by_key(|r| timestamp(r))
                        .and_then(|r| r.get(f)),
                    Aggregate::Latest(f) => members
                        .iter()
                        .filter(|r| r.get(f).is_some())
                        .max_by_key(|r| timestamp(r))
                        .and_then(|r| r.get(f)),
                };
                if let Some(value) = value {
                    values.insert(alias.clone(), value);
                }
            }
            Row {
                event: None,
                values,
            }
        })
        .collect();
    let mut columns = by.to_vec();
    columns.extend(aggregates.iter().map(|(_, alias)| alias.clone()));
    (columns, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(at: i64, group: &str, value: Json) -> LogEvent {
        LogEvent {
            timestamp_ms: at,
            group: group.to_owned(),
            stream: "s".to_owned(),
            message: value.to_string(),
            json: Some(value),
        }
    }

    fn events() -> Vec<LogEvent> {
        vec![
            event(
                1,
                "/aws/lambda/a",
                json!({"level":"ERROR","correlation_id":"o1","message":"first"}),
            ),
            event(
                2,
                "/aws/lambda/a",
                json!({"level":"INFO","correlation_id":"o1","message":"fine"}),
            ),
            event(
                3,
                "/aws/lambda/b",
                json!({"level":"ERROR","correlation_id":"o1","message":"second"}),
            ),
            event(
                4,
                "/aws/lambda/b",
                json!({"level":"ERROR","message":"no order"}),
            ),
            event(
                5,
                "/aws/lambda/b",
                json!({"level":"ERROR","correlation_id":"o2","message":"third"}),
            ),
            event(
                6,
                "/aws/lambda/a",
                json!({"type":"platform.report","record":{"metrics":{"durationMs":10.0,"initDurationMs":50.0,"maxMemoryUsedMB":20}}}),
            ),
            event(
                7,
                "/aws/lambda/a",
                json!({"type":"platform.report","record":{"metrics":{"durationMs":30.0,"maxMemoryUsedMB":22}}}),
            ),
            event(8, "/access", json!({"status":"502","path":"/order"})),
            event(9, "/access", json!({"status":"201","path":"/order"})),
        ]
    }

    #[test]
    fn the_dashboards_error_list_query() {
        let query = Query::parse("SOURCE '/aws/lambda/a' | SOURCE \"/aws/lambda/b\" | fields @timestamp, correlation_id, message | filter level = 'ERROR' | sort @timestamp desc | limit 3").unwrap();
        assert_eq!(query.sources, ["/aws/lambda/a", "/aws/lambda/b"]);
        let table = query.run(&events());
        assert_eq!(table.columns, ["@timestamp", "correlation_id", "message"]);
        let messages: Vec<_> = table.rows.iter().map(|r| r[2].clone().unwrap()).collect();
        assert_eq!(
            messages,
            [json!("third"), json!("no order"), json!("second")]
        );
        assert_eq!(table.rows[1][1], None);
    }

    #[test]
    fn the_dashboards_stats_queries() {
        let by_order = Query::parse("filter level = 'ERROR' and ispresent(correlation_id) | stats count(*) as errors, latest(message) as last_message by correlation_id | sort errors desc | limit 20").unwrap();
        let table = by_order.run(&events());
        assert_eq!(table.columns, ["correlation_id", "errors", "last_message"]);
        assert_eq!(
            table.rows,
            [
                vec![Some(json!("o1")), Some(json!(2)), Some(json!("second"))],
                vec![Some(json!("o2")), Some(json!(1)), Some(json!("third"))],
            ]
        );
        let reports = Query::parse("filter type = 'platform.report' | stats count(*) as invocations, count(record.metrics.initDurationMs) as cold_starts, avg(record.metrics.initDurationMs) as avg_init_ms, pct(record.metrics.durationMs, 99) as p99_ms, max(record.metrics.maxMemoryUsedMB) as max_memory_mb by @log | sort p99_ms desc").unwrap();
        let table = reports.run(&events());
        assert_eq!(
            table.rows,
            [vec![
                Some(json!("000000000000:/aws/lambda/a")),
                Some(json!(2)),
                Some(json!(1)),
                Some(json!(50.0)),
                Some(json!(30.0)),
                Some(json!(22.0)),
            ]]
        );
    }

    #[test]
    fn like_with_an_anchored_literal() {
        let query = Query::parse("fields status, path | filter status like /^5/").unwrap();
        let table = query.run(&events());
        assert_eq!(
            table.rows,
            [vec![Some(json!("502")), Some(json!("/order"))]]
        );
        let not = Query::parse("filter not (status like /^5/) and ispresent(status)").unwrap();
        assert_eq!(not.run(&events()).rows.len(), 1);
        let numeric = Query::parse("filter status >= 500").unwrap();
        assert_eq!(numeric.run(&events()).rows.len(), 1);
    }

    #[test]
    fn what_the_plane_does_not_implement_fails_loudly() {
        for (text, named) in [
            ("parse @message 'a * b' as x, y", "\"parse\""),
            ("stats count_distinct(x)", "count_distinct"),
            ("filter x like /a.*b/", "'.'"),
            ("filter x like /abc/i", "flags"),
            ("filter x in ['a', 'b']", "expected"),
            ("filter strlen(x) > 3", "strlen()"),
            ("sort a desc, b asc", "sort order"),
            ("fields concat(a, b) as c", "not a field name"),
            ("SOURCE group", "quoted"),
        ] {
            let err = Query::parse(text).unwrap_err().to_string();
            assert!(err.contains(named), "{text}: {err}");
        }
    }
}
