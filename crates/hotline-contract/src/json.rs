//! A small builder for proto3 JSON objects: it writes each kind of field the way the proto3 JSON mapping does
//! (defaults left out, 64-bit integers as strings, timestamps as RFC 3339 in UTC), so every message the mapping
//! builds reads back through the descriptors and re-serialises to the same JSON.

use serde_json::{Map, Number, Value};
use time::OffsetDateTime;

/// One JSON object under construction. Field names are given already in lowerCamelCase.
#[derive(Debug, Default)]
pub(crate) struct Obj(Map<String, Value>);

impl Obj {
    pub(crate) fn new() -> Obj {
        Obj(Map::new())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    /// Adds every field of `other` (the event's own fields after the shared ones).
    pub(crate) fn merge(mut self, other: Obj) -> Obj {
        self.0.extend(other.0);
        self
    }

    fn put(mut self, key: &str, value: Value) -> Obj {
        self.0.insert(key.to_owned(), value);
        self
    }

    /// A `string` field: left out when empty (the proto3 default).
    pub(crate) fn str(self, key: &str, value: &str) -> Obj {
        if value.is_empty() { self } else { self.put(key, Value::String(value.to_owned())) }
    }

    pub(crate) fn opt_str(self, key: &str, value: Option<&str>) -> Obj {
        self.str(key, value.unwrap_or_default())
    }

    /// A `string` field holding free text, cut to [`MAX_TEXT_BYTES`] so a message stays well under the feed's
    /// message size limit.
    pub(crate) fn text(self, key: &str, value: &str) -> Obj {
        self.str(key, &cut(value, MAX_TEXT_BYTES))
    }

    pub(crate) fn opt_text(self, key: &str, value: Option<&str>) -> Obj {
        self.text(key, value.unwrap_or_default())
    }

    pub(crate) fn boolean(self, key: &str, value: bool) -> Obj {
        if value { self.put(key, Value::Bool(true)) } else { self }
    }

    /// A `uint32` field: a JSON number, left out when 0.
    pub(crate) fn u32(self, key: &str, value: u32) -> Obj {
        if value == 0 { self } else { self.put(key, Value::Number(value.into())) }
    }

    /// An `optional uint64` field: a JSON string (64-bit integers are strings in proto3 JSON), written whenever
    /// present, 0 included.
    pub(crate) fn opt_u64(self, key: &str, value: Option<u64>) -> Obj {
        match value {
            Some(v) => self.put(key, Value::String(v.to_string())),
            None => self,
        }
    }

    /// A `uint64` field without presence: a JSON string, left out when 0.
    pub(crate) fn u64(self, key: &str, value: u64) -> Obj {
        if value == 0 { self } else { self.opt_u64(key, Some(value)) }
    }

    /// A `double` field without presence: left out when 0 (and when not finite, which JSON cannot carry as a
    /// number and our data never holds).
    pub(crate) fn f64(self, key: &str, value: f64) -> Obj {
        if value == 0.0 { self } else { self.opt_f64(key, Some(value)) }
    }

    /// An `optional double` field: written whenever present and finite.
    pub(crate) fn opt_f64(self, key: &str, value: Option<f64>) -> Obj {
        match value.and_then(Number::from_f64) {
            Some(n) => self.put(key, Value::Number(n)),
            None => self,
        }
    }

    /// A google.protobuf.Timestamp field.
    pub(crate) fn time(self, key: &str, value: Option<OffsetDateTime>) -> Obj {
        match value {
            Some(t) => self.put(key, Value::String(timestamp(t))),
            None => self,
        }
    }

    /// An enum field, by value name; the UNSPECIFIED (0) value is the default and left out.
    pub(crate) fn enumeration(self, key: &str, name: &str) -> Obj {
        if name.ends_with("_UNSPECIFIED") { self } else { self.put(key, Value::String(name.to_owned())) }
    }

    /// A message field: left out when it would be empty (proto3 JSON writes a present empty message as `{}`; we
    /// never set an empty one).
    pub(crate) fn msg(self, key: &str, value: Obj) -> Obj {
        if value.is_empty() { self } else { self.put(key, value.into_value()) }
    }

    pub(crate) fn opt_msg(self, key: &str, value: Option<Obj>) -> Obj {
        match value {
            Some(v) => self.msg(key, v),
            None => self,
        }
    }

    /// A `repeated string` field: left out when empty.
    pub(crate) fn strings<'a>(self, key: &str, values: impl IntoIterator<Item = &'a str>) -> Obj {
        let list: Vec<Value> = values.into_iter().map(|s| Value::String(s.to_owned())).collect();
        if list.is_empty() { self } else { self.put(key, Value::Array(list)) }
    }

    /// A `repeated` message field: left out when empty.
    pub(crate) fn msgs(self, key: &str, values: impl IntoIterator<Item = Obj>) -> Obj {
        let list: Vec<Value> = values.into_iter().map(Obj::into_value).collect();
        if list.is_empty() { self } else { self.put(key, Value::Array(list)) }
    }
}

/// The longest free text a published field carries, in bytes of UTF-8. Longer text is cut on a character
/// boundary and ends with [`CUT_MARK`]; the whole text stays in the hotline (API, internal log). Three such fields
/// and ten attachments still fit well under the feed's 64 KiB message limit.
pub const MAX_TEXT_BYTES: usize = 12 * 1024;

/// What ends a text that was cut to [`MAX_TEXT_BYTES`].
pub const CUT_MARK: &str = " […]";

/// `text`, or its longest prefix of at most `max` bytes (mark included) that ends on a character boundary,
/// followed by [`CUT_MARK`].
pub(crate) fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(CUT_MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT_MARK}", &text[..end])
}

/// RFC 3339 in UTC, the way the proto3 JSON mapping writes a google.protobuf.Timestamp: `Z`, and 0, 3, 6 or 9
/// fractional digits. The mapping's range is years 0001 to 9999; a time outside it (which no real deadline
/// reaches) is clamped to the range's edge.
pub(crate) fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let (year, month, day, hour, minute, second, nanos) = if t.year() < 1 {
        (1, 1, 1, 0, 0, 0, 0)
    } else if t.year() > 9999 {
        (9999, 12, 31, 23, 59, 59, 999_999_999)
    } else {
        (t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second(), t.nanosecond())
    };
    let fraction = if nanos == 0 {
        String::new()
    } else if nanos % 1_000_000 == 0 {
        format!(".{:03}", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        format!(".{:06}", nanos / 1_000)
    } else {
        format!(".{nanos:09}")
    };
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn timestamps_are_utc_with_0_3_6_or_9_fraction_digits() {
        assert_eq!(timestamp(datetime!(2026-11-28 11:57:53 +07:00)), "2026-11-28T04:57:53Z");
        assert_eq!(timestamp(datetime!(2026-11-28 04:57:53.120 UTC)), "2026-11-28T04:57:53.120Z");
        assert_eq!(timestamp(datetime!(2026-11-28 04:57:53.000_120 UTC)), "2026-11-28T04:57:53.000120Z");
        assert_eq!(timestamp(datetime!(2026-11-28 04:57:53.000_000_120 UTC)), "2026-11-28T04:57:53.000000120Z");
        assert_eq!(timestamp(datetime!(0000-12-31 23:00 UTC)), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_with_a_mark() {
        let text = "đường ".repeat(5000);
        let out = cut(&text, 1000);
        assert!(out.len() <= 1000, "{}", out.len());
        assert!(out.ends_with(CUT_MARK));
        assert!(text.starts_with(out.trim_end_matches(CUT_MARK)));
        assert_eq!(cut("ngắn", 1000), "ngắn");
    }
}
