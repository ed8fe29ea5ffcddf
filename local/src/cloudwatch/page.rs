//! The dashboard as a page: every widget of a `DashboardBody` drawn from the plane's
//! data on the server, as SVG or HTML, and refreshed by the page every two seconds.
//!
//! Server-rendered SVG rather than a chart library from npm: the page then needs
//! nothing but this binary (no Node, no vendored JavaScript to keep up to date), the
//! drawing is Rust that unit tests check, and the browser test still sees exactly what
//! a person sees. The page's own script only fetches each widget's fragment again.
//!
//! Widgets: `metric` (`timeSeries` and `singleValue` views, with each line's
//! statistic, period, label and colour), `alarm`, `text` (headings, paragraphs,
//! `code`, **bold** and links) and `log` (the Logs Insights subset of
//! [`super::insights`]). Each widget carries `data-state`: `data`, `empty`, `error`
//! or `not-produced`, so a script can check what a person would see. Anything the page
//! cannot draw is an error shown on the widget, never a blank.
//!
//! Endpoints: `/` the page, `/widget/{n}?range=S` one widget, `/alarms` the alarms'
//! states and histories as JSON, `/status` the clock and the plane's health,
//! `/dashboard.json` the body as resolved.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value as Json, json};
use tokio::sync::watch;

use super::Plane;
use super::alarm::AlarmState;
use super::insights::Query;
use super::store::{MetricId, Statistic, period_start};
use crate::http::{self, Body};

/// CloudWatch's default line colours, in order.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// One line of a metric widget.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The metric.
    pub metric: MetricId,
    /// Its statistic.
    pub statistic: Statistic,
    /// Its period in seconds.
    pub period_s: i64,
    /// Its label.
    pub label: String,
    /// Its colour.
    pub color: String,
}

/// A widget, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum WidgetKind {
    /// A metric graph or single value.
    Metric {
        /// `timeSeries` or `singleValue`.
        view: String,
        /// Its lines.
        lines: Vec<Line>,
    },
    /// Markdown.
    Text(String),
    /// Alarm states.
    Alarm(Vec<String>),
    /// A Logs Insights query.
    Log(String),
}

/// A widget with its place on the 24-column grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Widget {
    /// Title.
    pub title: String,
    /// What it shows, or why it cannot be drawn.
    pub kind: Result<WidgetKind, String>,
    /// Column, row, width, height.
    pub place: (i64, i64, i64, i64),
}

fn text(value: &Json) -> Option<String> {
    value.as_str().map(str::to_owned)
}

/// Reads a metric line: `[namespace, name, dim, value, ..., {options}]`.
fn line(entry: &Json, defaults: &Json, index: usize) -> Result<Line, String> {
    let items = entry
        .as_array()
        .ok_or("a metrics entry that is not a list")?;
    let (options, parts) = match items.last() {
        Some(Json::Object(options)) => (Json::Object(options.clone()), &items[..items.len() - 1]),
        _ => (json!({}), &items[..]),
    };
    if options.get("expression").is_some() {
        return Err(
            "metric math in a dashboard widget is not implemented by the local page".to_owned(),
        );
    }
    let parts: Vec<String> = parts
        .iter()
        .map(|p| text(p).ok_or_else(|| format!("{p} in a metric line is not a string")))
        .collect::<Result<_, _>>()?;
    if parts.iter().any(|p| p == ".") {
        return Err(
            "the \".\" shorthand is not implemented by the local page: write lines in full"
                .to_owned(),
        );
    }
    let [namespace, name, dimensions @ ..] = parts.as_slice() else {
        return Err("a metric line needs a namespace and a name".to_owned());
    };
    if dimensions.len() % 2 != 0 {
        return Err(format!(
            "metric {name}: dimensions come in name, value pairs"
        ));
    }
    let metric = MetricId {
        namespace: namespace.clone(),
        name: name.clone(),
        dimensions: dimensions
            .chunks(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect(),
    };
    let statistic = options
        .get("stat")
        .or_else(|| defaults.get("stat"))
        .and_then(Json::as_str)
        .unwrap_or("Average")
        .parse::<Statistic>()
        .map_err(|e| e.to_string())?;
    let period_s = options
        .get("period")
        .or_else(|| defaults.get("period"))
        .and_then(Json::as_i64)
        .unwrap_or(300);
    if period_s < 60 || period_s % 60 != 0 {
        return Err(format!(
            "a period of {period_s} s is not implemented by the local page"
        ));
    }
    Ok(Line {
        label: options
            .get("label")
            .and_then(Json::as_str)
            .map_or_else(|| name.clone(), str::to_owned),
        color: options
            .get("color")
            .and_then(Json::as_str)
            .map_or_else(|| PALETTE[index % PALETTE.len()].to_owned(), str::to_owned),
        metric,
        statistic,
        period_s,
    })
}

/// The widgets of a dashboard body.
pub fn widgets(body: &Json) -> Vec<Widget> {
    body.get("widgets")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .map(|w| {
            let props = w.get("properties").cloned().unwrap_or(json!({}));
            let number =
                |key: &str, default: i64| w.get(key).and_then(Json::as_i64).unwrap_or(default);
            let kind = match w.get("type").and_then(Json::as_str) {
                Some("metric") => props
                    .get("metrics")
                    .and_then(Json::as_array)
                    .ok_or_else(|| "a metric widget without metrics".to_owned())
                    .and_then(|entries| {
                        let lines = entries
                            .iter()
                            .enumerate()
                            .map(|(i, e)| line(e, &props, i))
                            .collect::<Result<Vec<_>, _>>()?;
                        let view = props
                            .get("view")
                            .and_then(Json::as_str)
                            .unwrap_or("timeSeries");
                        if !matches!(view, "timeSeries" | "singleValue") {
                            return Err(format!(
                                "the {view} view is not implemented by the local page"
                            ));
                        }
                        Ok(WidgetKind::Metric {
                            view: view.to_owned(),
                            lines,
                        })
                    }),
                Some("text") => props
                    .get("markdown")
                    .and_then(Json::as_str)
                    .map(|m| WidgetKind::Text(m.to_owned()))
                    .ok_or_else(|| "a text widget without markdown".to_owned()),
                Some("alarm") => props
                    .get("alarms")
                    .and_then(Json::as_array)
                    .map(|a| WidgetKind::Alarm(a.iter().filter_map(text).collect()))
                    .ok_or_else(|| "an alarm widget without alarms".to_owned()),
                Some("log") => props
                    .get("query")
                    .and_then(Json::as_str)
                    .map(|q| WidgetKind::Log(q.to_owned()))
                    .ok_or_else(|| "a log widget without a query".to_owned()),
                other => Err(format!(
                    "the widget type {other:?} is not implemented by the local page"
                )),
            };
            Widget {
                title: props
                    .get("title")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                kind,
                place: (
                    number("x", 0),
                    number("y", 0),
                    number("width", 6),
                    number("height", 6),
                ),
            }
        })
        .collect()
}

/// Every metric the body's widgets read.
pub fn widget_metrics(body: &Json) -> Vec<MetricId> {
    widgets(body)
        .into_iter()
        .filter_map(|w| match w.kind {
            Ok(WidgetKind::Metric { lines, .. }) => Some(lines.into_iter().map(|l| l.metric)),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn inline_markdown(text: &str) -> String {
    let escaped = escape(text);
    let mut out = String::new();
    let mut rest = escaped.as_str();
    // `code`, **bold**, [text](url), in one pass.
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('`')
            && let Some(end) = after.find('`')
        {
            let _ = write!(out, "<code>{}</code>", &after[..end]);
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix("**")
            && let Some(end) = after.find("**")
        {
            let _ = write!(out, "<strong>{}</strong>", &after[..end]);
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('[')
            && let Some((label, tail)) = after.split_once("](")
            && let Some((url, tail)) = tail.split_once(')')
        {
            let _ = write!(out, "<a href=\"{url}\">{label}</a>");
            rest = tail;
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The subset of Markdown text widgets use: headings, paragraphs, `code`,
/// **bold** and links.
pub fn markdown(text: &str) -> String {
    let mut html = String::new();
    for block in text.split("\n\n") {
        for line in block.lines() {
            let line = line.trim_end();
            let level = line.chars().take_while(|c| *c == '#').count();
            if (1..=4).contains(&level) && line[level..].starts_with(' ') {
                let _ = write!(
                    html,
                    "<h{level}>{}</h{level}>",
                    inline_markdown(line[level..].trim())
                );
            } else if !line.trim().is_empty() {
                let _ = write!(html, "<p>{}</p>", inline_markdown(line));
            }
        }
    }
    html
}

fn format_value(value: f64) -> String {
    if value.abs() >= 1_000_000.0 {
        format!("{:.1}M", value / 1_000_000.0)
    } else if value.abs() >= 10_000.0 {
        format!("{:.1}k", value / 1000.0)
    } else if value.fract() == 0.0 || value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn clock_label(at_ms: i64) -> String {
    let seconds = at_ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}", seconds / 3600, (seconds % 3600) / 60)
}

/// One series of a chart: its label, colour and points (simulated ms, value).
pub type Plotted = (String, String, Vec<(i64, f64)>);

/// A time-series chart of `series` over `[start_ms, end_ms]`, as SVG.
pub fn chart(series: &[Plotted], start_ms: i64, end_ms: i64) -> String {
    let (width, height, left, right, top, bottom) = (600.0, 200.0, 48.0, 8.0, 8.0, 22.0);
    let max = series
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|(_, v)| *v))
        .fold(0.0_f64, f64::max);
    let min = series
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|(_, v)| *v))
        .fold(0.0_f64, f64::min);
    let top_value = if max <= min { min + 1.0 } else { max * 1.1 };
    let span = (end_ms - start_ms).max(1) as f64;
    let x = |t: i64| left + (t - start_ms) as f64 / span * (width - left - right);
    let y = |v: f64| top + (1.0 - (v - min) / (top_value - min)) * (height - top - bottom);
    let mut svg = format!(
        r##"<svg class="chart" viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img" xmlns="http://www.w3.org/2000/svg">"##
    );
    for i in 0..=4 {
        let value = min + (top_value - min) * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{}" y="{:.1}" font-size="10" text-anchor="end" fill="#555">{}</text>"##,
            width - right,
            left - 4.0,
            y(value) + 3.0,
            format_value(value),
            y = y(value)
        );
    }
    for i in 0..=4 {
        let t = start_ms + (end_ms - start_ms) * i / 4;
        let anchor = match i {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{}" font-size="10" text-anchor="{anchor}" fill="#555">{}</text>"##,
            x(t),
            height - 6.0,
            clock_label(t)
        );
    }
    for (label, color, points) in series {
        let coordinates: Vec<String> = points
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        if coordinates.len() == 1 {
            let _ = write!(
                svg,
                r##"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{color}"><title>{}</title></circle>"##,
                x(points[0].0),
                y(points[0].1),
                escape(label)
            );
        } else if !coordinates.is_empty() {
            let _ = write!(
                svg,
                r##"<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{}"><title>{}</title></polyline>"##,
                coordinates.join(" "),
                escape(label)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// What state a widget is in, for `data-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drawn {
    /// It shows data.
    Data,
    /// It shows nothing for the range.
    Empty,
    /// It cannot be drawn.
    Error,
    /// What it reads is not produced by the local stack.
    NotProduced,
}

impl Drawn {
    fn as_str(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::Empty => "empty",
            Self::Error => "error",
            Self::NotProduced => "not-produced",
        }
    }
}

fn state_class(state: AlarmState) -> &'static str {
    match state {
        AlarmState::Alarm => "alarm",
        AlarmState::Ok => "ok",
        AlarmState::InsufficientData => "insufficient",
    }
}

/// A widget's inner HTML over the last `range_s` simulated seconds, and its state.
pub fn render(plane: &Plane, widget: &Widget, range_s: i64) -> (Drawn, String) {
    let now = plane.clock().now_ms();
    let start = now - range_s * 1000;
    let title = format!("<h3>{}</h3>", escape(&widget.title));
    let kind = match &widget.kind {
        Ok(kind) => kind,
        Err(e) => {
            return (
                Drawn::Error,
                format!(
                    "{title}<p class=\"error\">Cannot draw this widget: {}</p>",
                    escape(e)
                ),
            );
        }
    };
    match kind {
        WidgetKind::Text(text) => (
            Drawn::Data,
            format!("<div class=\"markdown\">{}</div>", markdown(text)),
        ),
        WidgetKind::Metric { view, lines } => {
            let mut series = Vec::new();
            let mut legend = String::new();
            let mut not_produced = Vec::new();
            for line in lines {
                let period_ms = line.period_s * 1000;
                // Complete and current periods in the range.
                let points: Vec<(i64, f64)> = plane
                    .metrics()
                    .aggregate(
                        &line.metric,
                        line.statistic,
                        period_ms,
                        period_start(start, period_ms),
                        now + 1,
                    )
                    .into_iter()
                    .collect();
                let latest = points.last().map(|(_, v)| format_value(*v));
                if !super::produced(&line.metric) {
                    not_produced.push(line.metric.to_string());
                }
                let _ = write!(
                    legend,
                    r##"<li><span class="swatch" style="background:{}"></span>{} <b>{}</b></li>"##,
                    escape(&line.color),
                    escape(&line.label),
                    latest.as_deref().unwrap_or("no data")
                );
                series.push((line.label.clone(), line.color.clone(), points));
            }
            let has_data = series.iter().any(|(_, _, p)| !p.is_empty());
            let notice = if not_produced.is_empty() {
                String::new()
            } else {
                format!(
                    "<p class=\"notice\">Not produced by the local stack: {}</p>",
                    escape(&not_produced.join(", "))
                )
            };
            let body = if view == "singleValue" {
                let values: String = series
                    .iter()
                    .map(|(label, _, points)| {
                        format!(
                            "<div class=\"single\"><span>{}</span><b>{}</b></div>",
                            escape(label),
                            points
                                .last()
                                .map_or_else(|| "—".to_owned(), |(_, v)| format_value(*v))
                        )
                    })
                    .collect();
                format!("<div class=\"singles\">{values}</div>")
            } else {
                format!(
                    "{}<ul class=\"legend\">{legend}</ul>",
                    chart(&series, start, now)
                )
            };
            let state = if not_produced.len() == lines.len() {
                Drawn::NotProduced
            } else if has_data {
                Drawn::Data
            } else {
                Drawn::Empty
            };
            (state, format!("{title}{notice}{body}"))
        }
        WidgetKind::Alarm(names) => {
            let views = plane.alarms().views();
            let mut rows = String::new();
            let mut unknown = Vec::new();
            for name in names {
                let Some(alarm) = views.iter().find(|v| &v.arn == name || &v.name == name) else {
                    unknown.push(name.clone());
                    continue;
                };
                let notice = if alarm.not_produced.is_empty() {
                    String::new()
                } else {
                    format!(
                        " <span class=\"notice\">reads what the local stack does not produce: {}</span>",
                        escape(&alarm.not_produced.join(", "))
                    )
                };
                let _ = write!(
                    rows,
                    r#"<li data-alarm="{name}" data-state="{state}" title="{reason}"><span class="badge {class}">{state}</span> <b>{logical}</b> <span class="since">since {since}</span>{notice}</li>"#,
                    name = escape(&alarm.name),
                    state = alarm.state,
                    class = state_class(alarm.state),
                    logical = escape(&alarm.logical_id),
                    since = clock_label(alarm.updated_ms),
                    reason = escape(&alarm.reason),
                );
            }
            if !unknown.is_empty() {
                return (
                    Drawn::Error,
                    format!(
                        "{title}<p class=\"error\">No such alarm: {}</p>",
                        escape(&unknown.join(", "))
                    ),
                );
            }
            (
                Drawn::Data,
                format!("{title}<ul class=\"alarms\">{rows}</ul>"),
            )
        }
        WidgetKind::Log(query_text) => {
            let query = match Query::parse(query_text) {
                Ok(query) => query,
                Err(e) => {
                    return (
                        Drawn::Error,
                        format!("{title}<p class=\"error\">{}</p>", escape(&e.to_string())),
                    );
                }
            };
            let events = plane.logs().events(&query.sources, start, now);
            let table = query.run(&events);
            if table.rows.is_empty() {
                return (
                    Drawn::Empty,
                    format!("{title}<p class=\"empty\">No log events match in this range.</p>"),
                );
            }
            let mut html = format!("{title}<div class=\"table\"><table><tr>");
            for column in &table.columns {
                let _ = write!(html, "<th>{}</th>", escape(column));
            }
            html.push_str("</tr>");
            for row in &table.rows {
                html.push_str("<tr>");
                for (column, cell) in table.columns.iter().zip(row) {
                    let shown = match cell {
                        None => String::new(),
                        Some(Json::Number(n)) if column == "@timestamp" => {
                            super::rfc3339(n.as_i64().unwrap_or_default())
                        }
                        Some(Json::String(s)) => s.clone(),
                        Some(Json::Number(n)) => {
                            n.as_f64().map_or_else(|| n.to_string(), format_value)
                        }
                        Some(other) => other.to_string(),
                    };
                    let _ = write!(html, "<td>{}</td>", escape(&shown));
                }
                html.push_str("</tr>");
            }
            html.push_str("</table></div>");
            (Drawn::Data, html)
        }
    }
}

fn range_seconds(body: &Json) -> i64 {
    // "-PT3H", "-PT15M", "-P1D": the page's default range.
    let start = body.get("start").and_then(Json::as_str).unwrap_or("-PT3H");
    let digits: String = start.chars().filter(char::is_ascii_digit).collect();
    let n: i64 = digits.parse().unwrap_or(3);
    match start.chars().last() {
        Some('M') if start.contains('T') => n * 60,
        Some('H') => n * 3600,
        Some('D') => n * 86_400,
        Some('S') => n,
        _ => 3 * 3600,
    }
}

const STYLE: &str = r#"
body { font-family: "Amazon Ember", "Helvetica Neue", Arial, sans-serif; margin: 0; background: #f2f3f3; color: #16191f; }
header { background: #232f3e; color: #fff; padding: 10px 16px; display: flex; gap: 24px; align-items: baseline; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; }
header .meta { font-size: 13px; color: #d5dbdb; }
header a { color: #9ecbff; }
nav button { margin-right: 4px; }
.grid { display: grid; grid-template-columns: repeat(24, 1fr); grid-auto-rows: 46px; gap: 8px; padding: 8px; }
.widget { background: #fff; border: 1px solid #d5dbdb; border-radius: 2px; padding: 6px 10px; overflow: auto; box-sizing: border-box; }
.widget h3 { font-size: 14px; margin: 0 0 4px; }
.widget .chart { width: 100%; height: calc(100% - 64px); min-height: 80px; }
.widget[data-state="error"] { border-color: #d13212; }
.widget[data-state="empty"] { background: #fafafa; }
.legend { list-style: none; margin: 0; padding: 0; font-size: 11px; display: flex; flex-wrap: wrap; gap: 4px 14px; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
.alarms { list-style: none; padding: 0; margin: 0; columns: 3; font-size: 12px; }
.alarms li { break-inside: avoid; margin-bottom: 4px; white-space: nowrap; } .since { color: #687078; }
.badge { font-weight: bold; padding: 1px 6px; border-radius: 2px; color: #fff; }
.badge.alarm { background: #d13212; } .badge.ok { background: #1d8102; } .badge.insufficient { background: #879596; }
.notice { color: #8a6d00; font-size: 12px; } .error { color: #d13212; } .empty { color: #687078; font-size: 12px; }
.markdown h1 { font-size: 20px; margin: 0; } .markdown h2 { font-size: 16px; margin: 0; } .markdown p { margin: 2px 0; font-size: 13px; }
table { border-collapse: collapse; font-size: 11px; width: 100%; } th, td { text-align: left; padding: 2px 6px; border-bottom: 1px solid #eaeded; white-space: nowrap; }
.singles { display: flex; gap: 24px; } .single span { display: block; font-size: 12px; } .single b { font-size: 28px; }
"#;

const SCRIPT: &str = r#"
let range = Number(new URLSearchParams(location.search).get('range')) || DEFAULT_RANGE;
function setRange(seconds) { range = seconds; refresh(); }
async function refresh() {
  const widgets = document.querySelectorAll('.widget');
  await Promise.all(Array.from(widgets).map(async (w) => {
    try {
      const r = await fetch('/widget/' + w.dataset.index + '?range=' + range);
      const html = await r.text();
      w.dataset.state = r.headers.get('x-widget-state') || 'error';
      w.innerHTML = html;
    } catch (e) {
      w.dataset.state = 'error';
      w.innerHTML = '<p class="error">The local plane did not answer: ' + e + '</p>';
    }
  }));
  try {
    const s = await (await fetch('/status')).json();
    document.getElementById('clock').textContent = s.now;
    document.getElementById('alarmcount').textContent = s.alarms_in_alarm;
  } catch (e) {}
  document.body.dataset.refreshed = String(Date.now());
}
refresh();
setInterval(refresh, 2000);
"#;

/// The page for the first dashboard.
pub fn page(plane: &Plane) -> String {
    let Some(dashboard) = plane.dashboards().first() else {
        return "<!doctype html><title>No dashboard</title><p>The template deploys no dashboard.</p>".to_owned();
    };
    let range = range_seconds(&dashboard.body);
    let mut grid = String::new();
    for (index, widget) in widgets(&dashboard.body).iter().enumerate() {
        let (x, y, w, h) = widget.place;
        let _ = write!(
            grid,
            r#"<section class="widget" id="w{index}" data-index="{index}" data-state="loading" style="grid-column: {} / span {w}; grid-row: {} / span {h};"><h3>{}</h3></section>"#,
            x + 1,
            y + 1,
            escape(&widget.title)
        );
    }
    let not_produced = plane.not_produced();
    let notice = if not_produced.is_empty() {
        "every metric the dashboard and alarms read is produced locally".to_owned()
    } else {
        format!("not produced locally: {}", escape(&not_produced.join(", ")))
    };
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{name} (local)</title><style>{STYLE}</style></head>
<body data-dashboard="{name}"><header><h1>{name}</h1><span class="meta">local CloudWatch plane · simulated time <b id="clock"></b> · {scale}× real time · alarms in ALARM: <b id="alarmcount"></b> · {notice} · <a href="/alarms">alarms as JSON</a></span>
<nav><button onclick="setRange(900)">15m</button><button onclick="setRange(3600)">1h</button><button onclick="setRange(10800)">3h</button></nav></header>
<main class="grid">{grid}</main><script>const DEFAULT_RANGE = {range};{SCRIPT}</script></body></html>"#,
        name = escape(&dashboard.name),
        scale = plane.clock().scale(),
    )
}

fn json_response(value: &Json) -> Response<Body> {
    let mut response = http::response(200, value.to_string());
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

async fn handle(plane: Arc<Plane>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let query: BTreeMap<String, String> = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let html = |status: u16, text: String| {
        let mut response = http::response(status, text);
        response.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
        );
        response
    };
    match path.as_str() {
        "/" => html(200, page(&plane)),
        "/alarms" => json_response(&json!({
            "now_ms": plane.clock().now_ms(),
            "alarms": plane.alarms().views(),
        })),
        "/status" => json_response(&json!({
            "now_ms": plane.clock().now_ms(),
            "now": super::rfc3339(plane.clock().now_ms()),
            "time_scale": plane.clock().scale(),
            "alarms_in_alarm": plane.alarms().views().iter().filter(|a| a.state == AlarmState::Alarm).count(),
            "not_produced": plane.not_produced(),
            "health": {
                "logs": plane.health.logs.summary("log files"),
                "queues": plane.health.queues.summary("queue sampler"),
                "emf": plane.health.emf.summary("EMF blobs"),
            },
        })),
        "/dashboard.json" => json_response(
            &plane
                .dashboards()
                .first()
                .map_or(Json::Null, |d| d.body.clone()),
        ),
        other => {
            let Some(index) = other
                .strip_prefix("/widget/")
                .and_then(|i| i.parse::<usize>().ok())
            else {
                return html(404, "<p>Not found</p>".to_owned());
            };
            let Some(dashboard) = plane.dashboards().first() else {
                return html(404, "<p>No dashboard</p>".to_owned());
            };
            let range = query
                .get("range")
                .and_then(|r| r.parse::<i64>().ok())
                .filter(|r| *r > 0)
                .unwrap_or_else(|| range_seconds(&dashboard.body));
            let Some(widget) = widgets(&dashboard.body).into_iter().nth(index) else {
                return html(404, "<p>No such widget</p>".to_owned());
            };
            let (state, inner) = render(&plane, &widget, range);
            let mut response = html(200, inner);
            if let Ok(value) = hyper::header::HeaderValue::from_str(state.as_str()) {
                response.headers_mut().insert("x-widget-state", value);
            }
            response
        }
    }
}

/// Serves the page on 127.0.0.1:`port` (0 for any free port) until `shutdown`.
///
/// # Errors
/// If the port cannot be bound.
pub async fn serve(
    plane: Arc<Plane>,
    port: u16,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let (listener, address) = http::bind(port).await?;
    tokio::spawn(http::serve(
        listener,
        move |request| handle(Arc::clone(&plane), request),
        shutdown,
    ));
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_lines_read_as_written_and_what_the_page_cannot_draw_is_named() {
        let body = json!({"widgets": [
            {"type": "metric", "x": 0, "y": 0, "width": 12, "height": 6, "properties": {"title": "t", "stat": "Sum", "period": 60, "metrics": [
                ["AWS/Lambda", "Errors", "FunctionName", "f", {"label": "errors"}],
                ["AWS/Lambda", "Duration", "FunctionName", "f", {"stat": "p99"}]
            ]}},
            {"type": "metric", "properties": {"metrics": [["AWS/Lambda", "Errors", ".", "."]]}},
            {"type": "metric", "properties": {"metrics": [[{"expression": "m1 * 2"}]]}},
            {"type": "metric", "properties": {"stat": "tm99", "metrics": [["N", "M"]]}},
            {"type": "explorer", "properties": {}},
            {"type": "metric", "properties": {"view": "pie", "metrics": [["N", "M"]]}}
        ]});
        let parsed = widgets(&body);
        let Ok(WidgetKind::Metric { lines, .. }) = &parsed[0].kind else {
            panic!("{:?}", parsed[0].kind)
        };
        assert_eq!(lines[0].label, "errors");
        assert_eq!(lines[0].statistic, Statistic::Sum);
        assert_eq!(lines[1].statistic, Statistic::Percentile(99.0));
        assert_eq!(lines[1].label, "Duration");
        assert_eq!(lines[1].color, PALETTE[1]);
        assert_eq!(parsed[0].place, (0, 0, 12, 6));
        for (widget, named) in
            parsed[1..]
                .iter()
                .zip(["shorthand", "metric math", "tm99", "explorer", "pie"])
        {
            let err = widget.kind.clone().unwrap_err();
            assert!(err.contains(named), "{err}");
        }
    }

    #[test]
    fn markdown_subset_escapes_everything_else() {
        let html = markdown(
            "# ecommerce-api\nOrders go to `ordersctl`, **fast**. <script>x</script> [runbooks](alarms/runbooks/)",
        );
        assert_eq!(
            html,
            "<h1>ecommerce-api</h1><p>Orders go to <code>ordersctl</code>, <strong>fast</strong>. &lt;script&gt;x&lt;/script&gt; <a href=\"alarms/runbooks/\">runbooks</a></p>"
        );
    }

    #[test]
    fn a_chart_draws_each_series_and_a_single_point_as_a_dot() {
        let svg = chart(
            &[
                ("a".into(), "#111111".into(), vec![(0, 1.0), (60_000, 3.0)]),
                ("b".into(), "#222222".into(), vec![(60_000, 2.0)]),
                ("c".into(), "#333333".into(), vec![]),
            ],
            0,
            120_000,
        );
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(svg.contains("stroke=\"#111111\""));
        // The top of the axis is above the largest value.
        assert!(svg.contains(">3.30<"), "{svg}");
    }

    #[test]
    fn the_default_range_comes_from_the_body() {
        assert_eq!(range_seconds(&json!({"start": "-PT3H"})), 10_800);
        assert_eq!(range_seconds(&json!({"start": "-PT15M"})), 900);
        assert_eq!(range_seconds(&json!({"start": "-P1D"})), 86_400);
    }
}
