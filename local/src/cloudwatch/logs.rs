//! Log groups as the plane keeps them: every line the functions and the gateway write,
//! as an event of its group, for the dashboard's Logs Insights widgets.

use std::collections::{BTreeMap, VecDeque};
use std::sync::RwLock;

use super::insights::LogEvent;

/// Events by log group, oldest first, each group bounded.
#[derive(Debug)]
pub struct LogStore {
    groups: RwLock<BTreeMap<String, VecDeque<LogEvent>>>,
    per_group: usize,
}

impl LogStore {
    /// A store keeping the newest `per_group` events of each group.
    pub fn new(per_group: usize) -> Self {
        Self {
            groups: RwLock::new(BTreeMap::new()),
            per_group: per_group.max(1),
        }
    }

    /// Adds an event.
    pub fn push(&self, event: LogEvent) {
        let Ok(mut groups) = self.groups.write() else {
            return;
        };
        let group = groups.entry(event.group.clone()).or_default();
        if group.len() >= self.per_group {
            group.pop_front();
        }
        group.push_back(event);
    }

    /// The groups that have events.
    pub fn groups(&self) -> Vec<String> {
        self.groups
            .read()
            .map(|g| g.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The events of `groups` in `[start_ms, end_ms]`, oldest first.
    pub fn events(&self, groups: &[String], start_ms: i64, end_ms: i64) -> Vec<LogEvent> {
        let Ok(all) = self.groups.read() else {
            return Vec::new();
        };
        let mut events: Vec<LogEvent> = groups
            .iter()
            .filter_map(|g| all.get(g))
            .flatten()
            .filter(|e| e.timestamp_ms >= start_ms && e.timestamp_ms <= end_ms)
            .cloned()
            .collect();
        events.sort_by_key(|e| e.timestamp_ms);
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(group: &str, at: i64) -> LogEvent {
        LogEvent {
            timestamp_ms: at,
            group: group.to_owned(),
            stream: "s".to_owned(),
            message: String::new(),
            json: None,
        }
    }

    #[test]
    fn events_of_the_asked_groups_and_range_oldest_first_each_group_bounded() {
        let store = LogStore::new(2);
        store.push(event("a", 1));
        store.push(event("a", 5));
        store.push(event("a", 9));
        store.push(event("b", 3));
        store.push(event("c", 4));
        let got: Vec<_> = store
            .events(&["a".to_owned(), "b".to_owned()], 0, 8)
            .iter()
            .map(|e| (e.group.clone(), e.timestamp_ms))
            .collect();
        assert_eq!(got, [("b".to_owned(), 3), ("a".to_owned(), 5)]);
        assert_eq!(store.groups(), ["a", "b", "c"]);
    }
}
