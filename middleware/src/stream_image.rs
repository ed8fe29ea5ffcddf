//! DynamoDB-stream images (DynamoDB JSON: `{"S": ...}`, `{"N": ...}`, `{"L": [...]}`,
//! `{"M": {...}}`, `{"BOOL": ...}`, `{"NULL": true}`, `{"SS"|"NS": [...]}`) decoded
//! straight into any `Deserialize` type.
//!
//! A stream function reads an image to act on it. Going through a typed record
//! (`aws_lambda_events`' `EventRecord`, every attribute a `serde_dynamo::AttributeValue`
//! in a `HashMap`) and then `serde_dynamo::from_item` builds every attribute twice and
//! keeps none of them. Here the image is read once into a small borrowed tree (strings
//! point into the event) and handed to the target type's `Deserialize`, the same way
//! `serde_dynamo` maps attribute types to Rust types: `S` is a string, `N` a number of
//! whatever type the field asks for, `L` a sequence, `M` a map or struct, `NULL` none.
//!
//! # Example
//! ```
//! #[derive(serde::Deserialize, Debug, PartialEq)]
//! struct Line { product_id: String, quantity: u32 }
//! #[derive(serde::Deserialize, Debug, PartialEq)]
//! struct Order { order_id: String, lines: Vec<Line>, note: Option<String> }
//!
//! let image = r#"{"order_id":{"S":"o-1"},"note":{"NULL":true},
//!     "lines":{"L":[{"M":{"product_id":{"S":"desk"},"quantity":{"N":"2"}}}]}}"#;
//! let order: Order = middleware::stream_image::from_str(image).unwrap();
//! assert_eq!(order.lines[0].quantity, 2);
//! assert_eq!(order.note, None);
//! ```

use std::borrow::Cow;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

/// Why an image did not decode.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Not DynamoDB JSON.
    #[error("not a DynamoDB image: {0}")]
    Json(#[from] serde_json::Error),
    /// DynamoDB JSON that does not fit the target type.
    #[error("{0}")]
    Shape(String),
}

impl de::Error for ImageError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self::Shape(message.to_string())
    }
}

/// One attribute, borrowed from the event where it can be.
#[derive(Debug, Clone, PartialEq)]
pub enum Attribute<'a> {
    /// `S`.
    S(Cow<'a, str>),
    /// `N`: the number as written.
    N(Cow<'a, str>),
    /// `B`: base64, as written.
    B(Cow<'a, str>),
    /// `BOOL`.
    Bool(bool),
    /// `NULL`.
    Null,
    /// `L`.
    L(Vec<Attribute<'a>>),
    /// `M` (and the image itself), in the order written.
    M(Vec<(Cow<'a, str>, Attribute<'a>)>),
    /// `SS`.
    Ss(Vec<Cow<'a, str>>),
    /// `NS`.
    Ns(Vec<Cow<'a, str>>),
}

/// Decodes an image (a JSON object of attributes) into `T`.
///
/// # Errors
/// [`ImageError`] if the JSON is not an image or does not fit `T`.
pub fn from_str<'a, T: de::Deserialize<'a>>(image: &'a str) -> Result<T, ImageError> {
    let item: Item<'a> = serde_json::from_str(image)?;
    T::deserialize(Attribute::M(item.0))
}

/// An image, parsed but not decoded: read a discriminating attribute with
/// [`Item::get`] before paying for the whole decode.
#[derive(Debug, Clone, PartialEq)]
pub struct Item<'a>(pub Vec<(Cow<'a, str>, Attribute<'a>)>);

impl<'a> Item<'a> {
    /// Parses an image.
    ///
    /// # Errors
    /// If it is not DynamoDB JSON.
    pub fn parse(image: &'a str) -> Result<Self, ImageError> {
        Ok(serde_json::from_str(image)?)
    }

    /// An attribute by name.
    pub fn get(&self, name: &str) -> Option<&Attribute<'a>> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// The string value of an `S` attribute.
    pub fn string(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(Attribute::S(value)) => Some(value),
            _ => None,
        }
    }

    /// Decodes the whole image into `T`.
    ///
    /// # Errors
    /// [`ImageError`] if it does not fit `T`.
    pub fn decode<T: de::Deserialize<'a>>(self) -> Result<T, ImageError> {
        T::deserialize(Attribute::M(self.0))
    }
}

impl<'de: 'a, 'a> de::Deserialize<'de> for Item<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Item<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of DynamoDB attributes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                // Sized for an order header (its 14 attributes), so it does not grow.
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    fields.push((key, map.next_value::<Attribute<'de>>()?));
                }
                Ok(Item(fields))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// A string that borrows when the JSON has no escapes in it.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> de::Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Str;
        impl<'de> Visitor<'de> for Str {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Str)
    }
}

impl<'de: 'a, 'a> de::Deserialize<'de> for Attribute<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Typed;
        impl<'de> Visitor<'de> for Typed {
            type Value = Attribute<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a DynamoDB attribute value such as {\"S\": \"...\"}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let Some(kind) = map.next_key::<Text<'de>>()? else {
                    return Err(de::Error::custom("an attribute value needs a type"));
                };
                let value = match kind.0.as_ref() {
                    "S" => Attribute::S(map.next_value::<Text<'de>>()?.0),
                    "N" => Attribute::N(map.next_value::<Text<'de>>()?.0),
                    "B" => Attribute::B(map.next_value::<Text<'de>>()?.0),
                    "BOOL" => Attribute::Bool(map.next_value()?),
                    "NULL" => {
                        let _: bool = map.next_value()?;
                        Attribute::Null
                    }
                    "L" => Attribute::L(map.next_value()?),
                    "M" => Attribute::M(map.next_value::<Item<'de>>()?.0),
                    "SS" => Attribute::Ss(
                        map.next_value::<Vec<Text<'de>>>()?
                            .into_iter()
                            .map(|t| t.0)
                            .collect(),
                    ),
                    "NS" => Attribute::Ns(
                        map.next_value::<Vec<Text<'de>>>()?
                            .into_iter()
                            .map(|t| t.0)
                            .collect(),
                    ),
                    other => {
                        return Err(de::Error::custom(format!(
                            "unsupported attribute type {other}"
                        )));
                    }
                };
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("an attribute value has exactly one type"));
                }
                Ok(value)
            }
        }
        deserializer.deserialize_map(Typed)
    }
}

impl<'a> Attribute<'a> {
    fn kind(&self) -> &'static str {
        match self {
            Self::S(_) => "S",
            Self::N(_) => "N",
            Self::B(_) => "B",
            Self::Bool(_) => "BOOL",
            Self::Null => "NULL",
            Self::L(_) => "L",
            Self::M(_) => "M",
            Self::Ss(_) => "SS",
            Self::Ns(_) => "NS",
        }
    }

    fn number<T: std::str::FromStr>(&self, what: &str) -> Result<T, ImageError> {
        match self {
            Self::N(n) => n
                .trim()
                .parse()
                .map_err(|_| ImageError::Shape(format!("number {n} does not fit {what}"))),
            other => Err(ImageError::Shape(format!(
                "expected a number ({what}), found a {} attribute",
                other.kind()
            ))),
        }
    }
}

macro_rules! numbers {
    ($($method:ident $visit:ident $ty:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ImageError> {
            visitor.$visit(self.number::<$ty>(stringify!($ty))?)
        }
    )*};
}

struct Seq<'a, I: Iterator<Item = Attribute<'a>>>(I);

impl<'de, I: Iterator<Item = Attribute<'de>>> SeqAccess<'de> for Seq<'de, I> {
    type Error = ImageError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ImageError> {
        self.0
            .next()
            .map(|value| seed.deserialize(value))
            .transpose()
    }
}

struct Map<'a, I: Iterator<Item = (Cow<'a, str>, Attribute<'a>)>> {
    entries: I,
    value: Option<Attribute<'a>>,
}

impl<'de, I: Iterator<Item = (Cow<'de, str>, Attribute<'de>)>> MapAccess<'de> for Map<'de, I> {
    type Error = ImageError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ImageError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        let key: de::value::CowStrDeserializer<'de, ImageError> = key.into_deserializer();
        seed.deserialize(key).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ImageError> {
        let value = self
            .value
            .take()
            .ok_or_else(|| ImageError::Shape("a map value without its key".to_owned()))?;
        seed.deserialize(value)
    }
}

impl<'de> Deserializer<'de> for Attribute<'de> {
    type Error = ImageError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ImageError> {
        match self {
            Self::S(Cow::Borrowed(s)) | Self::B(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
            Self::S(Cow::Owned(s)) | Self::B(Cow::Owned(s)) => visitor.visit_string(s),
            Self::N(n) => {
                if let Ok(i) = n.trim().parse::<i64>() {
                    visitor.visit_i64(i)
                } else if let Ok(u) = n.trim().parse::<u64>() {
                    visitor.visit_u64(u)
                } else {
                    let f = n
                        .trim()
                        .parse::<f64>()
                        .map_err(|_| ImageError::Shape(format!("{n} is not a number")))?;
                    visitor.visit_f64(f)
                }
            }
            Self::Bool(b) => visitor.visit_bool(b),
            Self::Null => visitor.visit_unit(),
            Self::L(items) => visitor.visit_seq(Seq(items.into_iter())),
            Self::M(entries) => visitor.visit_map(Map {
                entries: entries.into_iter(),
                value: None,
            }),
            Self::Ss(items) => visitor.visit_seq(Seq(items.into_iter().map(Self::S))),
            Self::Ns(items) => visitor.visit_seq(Seq(items.into_iter().map(Self::N))),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ImageError> {
        match self {
            Self::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ImageError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ImageError> {
        match self {
            // A unit variant, as serde_dynamo writes it: its name as a string.
            Self::S(name) => visitor.visit_enum(name.into_deserializer()),
            other => Err(ImageError::Shape(format!(
                "expected an enum variant name, found a {} attribute",
                other.kind()
            ))),
        }
    }

    numbers!(
        deserialize_i8 visit_i8 i8, deserialize_i16 visit_i16 i16, deserialize_i32 visit_i32 i32,
        deserialize_i64 visit_i64 i64, deserialize_u8 visit_u8 u8, deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32, deserialize_u64 visit_u64 u64, deserialize_f32 visit_f32 f32,
        deserialize_f64 visit_f64 f64
    );

    serde::forward_to_deserialize_any! {
        bool i128 u128 char str string bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "UPPERCASE")]
    enum Status {
        Ordered,
        Processed,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Line<'a> {
        product_id: &'a str,
        quantity: u32,
        price: i64,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Order<'a> {
        #[serde(borrow)]
        order_id: Cow<'a, str>,
        status: Status,
        #[serde(borrow)]
        lines: Vec<Line<'a>>,
        total: i64,
        ratio: f64,
        gift: bool,
        note: Option<String>,
        missing: Option<String>,
        tags: Vec<String>,
    }

    const IMAGE: &str = r#"{"PK":{"S":"ORDER#o-1"},"order_id":{"S":"o-1"},"status":{"S":"ORDERED"},
        "lines":{"L":[{"M":{"product_id":{"S":"desk"},"quantity":{"N":"2"},"price":{"N":"-100"}}}]},
        "total":{"N":"109800"},"ratio":{"N":"0.5"},"gift":{"BOOL":true},"note":{"NULL":true},
        "tags":{"SS":["a","b"]}}"#;

    #[test]
    fn an_image_decodes_into_a_typed_value_borrowing_its_strings() {
        let order: Order<'_> = from_str(IMAGE).unwrap();
        assert!(matches!(order.order_id, Cow::Borrowed("o-1")));
        assert_eq!(order.status, Status::Ordered);
        assert_eq!(
            order.lines,
            [Line {
                product_id: "desk",
                quantity: 2,
                price: -100
            }]
        );
        assert_eq!((order.total, order.ratio, order.gift), (109_800, 0.5, true));
        assert_eq!((order.note, order.missing), (None, None));
        assert_eq!(order.tags, ["a", "b"]);
        // serde_dynamo, the reference, reads the same image the same way.
        #[derive(Debug, Deserialize, PartialEq)]
        struct OwnedLine {
            product_id: String,
            quantity: u32,
            price: i64,
        }
        #[derive(Debug, Deserialize, PartialEq)]
        struct OwnedOrder {
            order_id: String,
            status: Status,
            lines: Vec<OwnedLine>,
            total: i64,
            ratio: f64,
            gift: bool,
            note: Option<String>,
            missing: Option<String>,
            tags: Vec<String>,
        }
        let item: serde_dynamo::Item = serde_json::from_str(IMAGE).unwrap();
        let reference: OwnedOrder = serde_dynamo::from_item(item).unwrap();
        assert_eq!(from_str::<OwnedOrder>(IMAGE).unwrap(), reference);
    }

    #[test]
    fn a_discriminating_attribute_is_read_before_the_decode() {
        let item = Item::parse(IMAGE).unwrap();
        assert_eq!(item.string("status"), Some("ORDERED"));
        assert_eq!(item.string("total"), None, "a number is not a string");
        assert!(item.get("nothing").is_none());
        let order: Order<'_> = item.decode().unwrap();
        assert_eq!(order.total, 109_800);
    }

    #[test]
    fn images_that_do_not_fit_are_errors_not_panics() {
        let bad = [
            r#"{"order_id":{"S":"o"},"status":{"S":"LOST"}}"#,
            r#"{"total":{"N":"1.5"}}"#,
            r#"{"total":{"S":"1"}}"#,
            r#"{"lines":{"S":"not a list"}}"#,
            r#"{"x":{"Q":"1"}}"#,
            r#"{"x":{"S":"1","N":"2"}}"#,
            r#"{"x":{}}"#,
            r#"[1,2]"#,
            "not json",
        ];
        for image in bad {
            assert!(from_str::<Order<'_>>(image).is_err(), "{image}");
        }
        assert!(from_str::<u8>(r#"{"a":{"N":"300"}}"#).is_err());
    }
}
