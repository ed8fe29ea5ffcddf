//! DynamoDB capacity units, counted by the developer guide's rules ("Item sizes and
//! capacity unit consumption", "Capacity management for transactions", "Provisioned
//! throughput considerations for global secondary indexes"):
//!
//! - an item's size is the sum of its attribute names' and values' sizes: a string's
//!   UTF-8 bytes, a number's one byte per two significant digits plus one, a binary's
//!   raw bytes, 1 for a boolean or null, 3 plus the elements for a list or map (a map's
//!   element names counted like attribute names), the elements for a set;
//! - a write costs one unit per KB (rounded up) of the larger of the item before and
//!   after it (`PutItem`, `UpdateItem`), of the deleted item (`DeleteItem`, one unit if
//!   there was none); a transactional write twice that; a conditional write that fails
//!   one unit per KB of the item as it is, or one if there is none;
//! - a global secondary index costs its own write units, by its entry's size: one
//!   write to put an entry, one to delete one, two when the index key changes, one when
//!   only a projected attribute changes, none when the item is in the index neither
//!   before nor after;
//! - a read costs one unit per 4 KB (rounded up) strongly consistent, half that
//!   eventually consistent; a `Query` or `Scan` rounds the total of its items, a batch
//!   or transaction each item (a transactional read twice).
//!
//! Items arrive in DynamoDB's JSON form (`{"S": "..."}`, `{"N": "12"}`, ...).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value as Json};

/// An item: attribute names to values in DynamoDB's JSON form.
pub type Item = Map<String, Json>;

fn number_size(text: &str) -> usize {
    let digits: String = text
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.div_ceil(2) + 1
}

/// The size of a value (without its name).
pub fn value_size(value: &Json) -> usize {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    let text = || inner.as_str().unwrap_or_default();
    match kind.as_str() {
        "S" => text().len(),
        "N" => number_size(text()),
        "B" => aws_smithy_types::base64::decode(text()).map_or(text().len(), |b| b.len()),
        "BOOL" | "NULL" => 1,
        "SS" => inner
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .map(str::len)
            .sum(),
        "NS" => inner
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .map(number_size)
            .sum(),
        "BS" => inner
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .map(|b| aws_smithy_types::base64::decode(b).map_or(b.len(), |d| d.len()))
            .sum(),
        "L" => {
            3 + inner
                .as_array()
                .into_iter()
                .flatten()
                .map(value_size)
                .sum::<usize>()
        }
        "M" => {
            3 + inner
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, v)| name.len() + value_size(v))
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// An item's size in bytes.
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, v)| name.len() + value_size(v))
        .sum()
}

/// Write units for `bytes` (at least one).
pub fn write_units(bytes: usize) -> u64 {
    (bytes.div_ceil(1024) as u64).max(1)
}

/// Read units for `bytes` read (at least one 4 KB unit), halved when eventually
/// consistent.
pub fn read_units(bytes: usize, consistent: bool) -> f64 {
    let units = (bytes.div_ceil(4096) as f64).max(1.0);
    if consistent { units } else { units / 2.0 }
}

/// Which attributes an index holds besides the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    /// Every attribute.
    All,
    /// The table's and the index's keys only.
    KeysOnly,
    /// The keys and these attributes.
    Include(BTreeSet<String>),
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexShape {
    /// The index's name.
    pub name: String,
    /// Its key attributes (partition, then sort).
    pub keys: Vec<String>,
    /// What it holds.
    pub projection: Projection,
}

/// What a table's writes touch: its key and its indexes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableShape {
    /// The table's key attributes.
    pub keys: Vec<String>,
    /// Its global secondary indexes.
    pub indexes: Vec<IndexShape>,
}

impl IndexShape {
    /// The item's entry in this index, if it has one (it has every index key).
    pub fn entry(&self, item: &Item, table_keys: &[String]) -> Option<Item> {
        if !self.keys.iter().all(|k| item.contains_key(k)) {
            return None;
        }
        Some(
            item.iter()
                .filter(|(name, _)| {
                    self.keys.contains(name)
                        || table_keys.contains(name)
                        || match &self.projection {
                            Projection::All => true,
                            Projection::KeysOnly => false,
                            Projection::Include(names) => names.contains(*name),
                        }
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    /// Write units this index spends when an item goes from `before` to `after`.
    pub fn write_units(
        &self,
        before: Option<&Item>,
        after: Option<&Item>,
        table_keys: &[String],
    ) -> u64 {
        let old = before.and_then(|i| self.entry(i, table_keys));
        let new = after.and_then(|i| self.entry(i, table_keys));
        match (old, new) {
            (None, None) => 0,
            (None, Some(entry)) | (Some(entry), None) => write_units(item_size(&entry)),
            (Some(old), Some(new)) => {
                let key = |entry: &Item| {
                    self.keys
                        .iter()
                        .map(|k| entry.get(k).cloned())
                        .collect::<Vec<_>>()
                };
                if key(&old) != key(&new) {
                    write_units(item_size(&old)) + write_units(item_size(&new))
                } else if old != new {
                    write_units(item_size(&old).max(item_size(&new)))
                } else {
                    0
                }
            }
        }
    }
}

/// One item a write named, with its images.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// `Put`, `Update`, `Delete` or `ConditionCheck`.
    pub operation: String,
    /// The table.
    pub table: String,
    /// The item before the write (`None` if there was none).
    pub before: Option<Item>,
    /// The item after it.
    pub after: Option<Item>,
}

/// What a write consumed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WriteCost {
    /// The table's write units, by table.
    pub tables: BTreeMap<String, u64>,
    /// Each index's write units, by (table, index).
    pub indexes: BTreeMap<(String, String), u64>,
}

impl WriteCost {
    /// Every unit, tables and indexes.
    pub fn total(&self) -> u64 {
        self.tables.values().sum::<u64>() + self.indexes.values().sum::<u64>()
    }
}

/// How a write request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Applied.
    Applied,
    /// Its condition failed (or, for a transaction, it was cancelled): nothing changed.
    Refused,
}

/// The capacity a write request consumed: `transactional` for `TransactWriteItems`.
pub fn write_cost(
    items: &[Written],
    transactional: bool,
    outcome: WriteOutcome,
    shape: &dyn Fn(&str) -> Option<TableShape>,
) -> WriteCost {
    let mut cost = WriteCost::default();
    for item in items {
        let size = |i: &Option<Item>| i.as_ref().map(item_size);
        let table_units = match (outcome, item.operation.as_str()) {
            // A refused write costs the item as it is, or one unit.
            (WriteOutcome::Refused, _) | (_, "ConditionCheck") => {
                size(&item.before).map_or(1, write_units)
            }
            (_, "Delete") => size(&item.before).map_or(1, write_units),
            _ => write_units(
                size(&item.before)
                    .unwrap_or(0)
                    .max(size(&item.after).unwrap_or(0)),
            ),
        };
        // A transaction writes each item twice (prepare, commit); a cancelled one
        // got as far as preparing.
        let table_units = if transactional && outcome == WriteOutcome::Applied {
            2 * table_units
        } else {
            table_units
        };
        *cost.tables.entry(item.table.clone()).or_default() += table_units;
        if outcome == WriteOutcome::Applied
            && let Some(shape) = shape(&item.table)
        {
            for index in &shape.indexes {
                let units =
                    index.write_units(item.before.as_ref(), item.after.as_ref(), &shape.keys);
                if units > 0 {
                    *cost
                        .indexes
                        .entry((item.table.clone(), index.name.clone()))
                        .or_default() += units;
                }
            }
        }
    }
    cost
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(value: Json) -> Item {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn sizes_follow_the_guides_rules() {
        // A string: name plus UTF-8 bytes ("é" is two bytes).
        assert_eq!(item_size(&item(json!({"name": {"S": "café"}}))), 4 + 5);
        // A number: name, one byte per two significant digits, one byte; leading and
        // trailing zeroes trimmed.
        assert_eq!(item_size(&item(json!({"n": {"N": "12345"}}))), 1 + 3 + 1);
        assert_eq!(
            item_size(&item(json!({"n": {"N": "0.0012300"}}))),
            1 + 2 + 1
        );
        assert_eq!(item_size(&item(json!({"n": {"N": "-1200"}}))), 1 + 1 + 1);
        // Binary: raw bytes, not base64 ("AAEC" is three bytes).
        assert_eq!(item_size(&item(json!({"b": {"B": "AAEC"}}))), 1 + 3);
        // Null and boolean: one byte.
        assert_eq!(
            item_size(&item(json!({"x": {"NULL": true}, "yy": {"BOOL": false}}))),
            1 + 1 + 2 + 1
        );
        // List and map: 3 bytes plus the elements (a map's element names count);
        // empty: 3 bytes.
        assert_eq!(item_size(&item(json!({"l": {"L": []}}))), 1 + 3);
        assert_eq!(
            item_size(&item(json!({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}))),
            1 + 3 + 2 + 2
        );
        assert_eq!(
            item_size(&item(
                json!({"m": {"M": {"k": {"S": "ab"}, "kk": {"BOOL": true}}}})
            )),
            1 + 3 + (1 + 2) + (2 + 1)
        );
        assert_eq!(item_size(&item(json!({"s": {"SS": ["a", "bc"]}}))), 1 + 3);
    }

    #[test]
    fn units_round_up_per_kb_for_writes_and_per_4_kb_for_reads() {
        // The guide: an item of 1.6 KB is 2 KB to put or delete; 3.5 KB reads as 4 KB,
        // 10 KB as 12 KB; an eventually consistent read of 80 KB costs 10 units.
        assert_eq!(write_units(1638), 2);
        assert_eq!(write_units(1024), 1);
        assert_eq!(write_units(0), 1);
        assert_eq!(read_units(3584, true), 1.0);
        assert_eq!(read_units(10 * 1024, true), 3.0);
        assert_eq!(read_units(80 * 1024, false), 10.0);
        // A query of 10 items, 40.8 KB in all: 44 KB, 11 units.
        assert_eq!(read_units(41779, true), 11.0);
        // 1500 items of 64 bytes: 96 KB, 24 units.
        assert_eq!(read_units(1500 * 64, true), 24.0);
        // A read of an item that does not exist: one unit, half eventually consistent.
        assert_eq!(read_units(0, true), 1.0);
        assert_eq!(read_units(0, false), 0.5);
    }

    fn bytes(n: usize) -> Item {
        // An item of exactly n bytes: "PK" (2) + "a" (1) + a string of n - 3.
        item(json!({"PK": {"S": "x"}, "a": {"S": "y".repeat(n - 4)}}))
    }

    #[test]
    fn writes_bill_the_larger_image_transactions_twice_refusals_the_item_as_it_is() {
        let no_indexes = |_: &str| {
            Some(TableShape {
                keys: vec!["PK".into()],
                indexes: vec![],
            })
        };
        let write = |op: &str, before: Option<Item>, after: Option<Item>| Written {
            operation: op.into(),
            table: "t".into(),
            before,
            after,
        };
        let units =
            |items: &[Written], tx, outcome| write_cost(items, tx, outcome, &no_indexes).total();
        // UpdateItem: the larger of before (1.5 KB) and after (0.5 KB).
        assert_eq!(
            units(
                &[write("Update", Some(bytes(1536)), Some(bytes(512)))],
                false,
                WriteOutcome::Applied
            ),
            2
        );
        // PutItem replacing a larger item.
        assert_eq!(
            units(
                &[write("Put", Some(bytes(3000)), Some(bytes(100)))],
                false,
                WriteOutcome::Applied
            ),
            3
        );
        // DeleteItem: the deleted item; of nothing, one unit.
        assert_eq!(
            units(
                &[write("Delete", Some(bytes(2100)), None)],
                false,
                WriteOutcome::Applied
            ),
            3
        );
        assert_eq!(
            units(&[write("Delete", None, None)], false, WriteOutcome::Applied),
            1
        );
        // The transactions page: three 500-byte items in a transaction, six units.
        let three: Vec<_> = (0..3)
            .map(|_| write("Put", None, Some(bytes(500))))
            .collect();
        assert_eq!(units(&three, true, WriteOutcome::Applied), 6);
        // A failed conditional write of a 1 KB item costs one unit, of a 2 KB item two,
        // of a missing item one.
        assert_eq!(
            units(
                &[write("Put", Some(bytes(1024)), Some(bytes(1024)))],
                false,
                WriteOutcome::Refused
            ),
            1
        );
        assert_eq!(
            units(
                &[write("Update", Some(bytes(2048)), Some(bytes(2048)))],
                false,
                WriteOutcome::Refused
            ),
            2
        );
        assert_eq!(
            units(&[write("Put", None, None)], false, WriteOutcome::Refused),
            1
        );
    }

    #[test]
    fn index_writes_follow_the_gsi_rules_by_projection() {
        let all = IndexShape {
            name: "GSI1".into(),
            keys: vec!["G".into()],
            projection: Projection::All,
        };
        let keys_only = IndexShape {
            projection: Projection::KeysOnly,
            ..all.clone()
        };
        let table_keys = ["PK".to_owned()];
        let with = |g: Option<&str>, other: &str| {
            let mut i = item(json!({"PK": {"S": "p"}, "o": {"S": other}}));
            if let Some(g) = g {
                i.insert("G".into(), json!({"S": g}));
            }
            i
        };
        // A new item with the index key: one write into the index.
        assert_eq!(
            all.write_units(None, Some(&with(Some("a"), "x")), &table_keys),
            1
        );
        // Not in the index before or after: nothing.
        assert_eq!(
            all.write_units(Some(&with(None, "x")), Some(&with(None, "y")), &table_keys),
            0
        );
        // The index key changes: delete and put, two writes.
        assert_eq!(
            all.write_units(
                Some(&with(Some("a"), "x")),
                Some(&with(Some("b"), "x")),
                &table_keys
            ),
            2
        );
        // The index key is removed: one write to delete the entry.
        assert_eq!(
            all.write_units(
                Some(&with(Some("a"), "x")),
                Some(&with(None, "x")),
                &table_keys
            ),
            1
        );
        // A projected attribute changes: one write; not projected (keys only): none.
        assert_eq!(
            all.write_units(
                Some(&with(Some("a"), "x")),
                Some(&with(Some("a"), "y")),
                &table_keys
            ),
            1
        );
        assert_eq!(
            keys_only.write_units(
                Some(&with(Some("a"), "x")),
                Some(&with(Some("a"), "y")),
                &table_keys
            ),
            0
        );
        let include = IndexShape {
            projection: Projection::Include(["o".to_owned()].into()),
            ..all.clone()
        };
        assert_eq!(
            include.write_units(
                Some(&with(Some("a"), "x")),
                Some(&with(Some("a"), "y")),
                &table_keys
            ),
            1
        );
        // In a whole write: the table's units and the index's, each on its own.
        let shape = |_: &str| {
            Some(TableShape {
                keys: vec!["PK".into()],
                indexes: vec![all.clone()],
            })
        };
        let cost = write_cost(
            &[Written {
                operation: "Put".into(),
                table: "t".into(),
                before: None,
                after: Some(with(Some("a"), "x")),
            }],
            true,
            WriteOutcome::Applied,
            &shape,
        );
        assert_eq!(cost.tables["t"], 2);
        assert_eq!(cost.indexes[&("t".to_owned(), "GSI1".to_owned())], 1);
        assert_eq!(cost.total(), 3);
    }
}
