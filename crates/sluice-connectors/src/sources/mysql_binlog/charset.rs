//! Character sets of MySQL/MariaDB string columns. The binlog sends a string column's bytes in the
//! column's own character set (FULL row metadata names its collation); Sluice decodes them into text by
//! that character set, with `encoding_rs`, so `é` in a latin1 column arrives as `é`, not as U+FFFD.
//!
//! Bytes that are not valid in their character set are kept as bytes (exact, and marked `binary` in the
//! change envelope) rather than replaced. A character set `encoding_rs` does not know (armscii8, dec8,
//! swe7, utf32, …) is kept as bytes the same way.

use encoding_rs::Encoding;
use mysql_common::collations::{Collation, CollationId};
use sluice_core::Value;

/// The collation id of `binary` (BLOB, BINARY, VARBINARY).
pub(crate) const BINARY_COLLATION: u16 = 63;

/// How a string column's bytes become a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TextCodec {
    Utf8,
    Binary,
    Encoded(&'static Encoding),
    /// A character set with no decoder: bytes.
    Unknown,
}

impl TextCodec {
    /// The codec of a column whose collation id is `collation` (`None`: the binlog did not say, which
    /// happens only without FULL metadata; UTF-8 is then assumed, as before).
    pub fn of(collation: Option<u16>) -> Self {
        let Some(id) = collation else { return TextCodec::Utf8 };
        if id == BINARY_COLLATION {
            return TextCodec::Binary;
        }
        let collation = match CollationId::from(id) {
            // MariaDB's own collation ids (utf8mb4_uca1400_* and others above MySQL's range) are UTF-8.
            CollationId::UNKNOWN_COLLATION_ID => return if id >= 256 { TextCodec::Utf8 } else { TextCodec::Unknown },
            known => Collation::resolve(known),
        };
        match collation.charset() {
            "utf8" | "utf8mb3" | "utf8mb4" => TextCodec::Utf8,
            "binary" => TextCodec::Binary,
            // MySQL names that are not WHATWG labels.
            "ucs2" | "utf16" => TextCodec::Encoded(encoding_rs::UTF_16BE),
            "utf16le" => TextCodec::Encoded(encoding_rs::UTF_16LE),
            "cp932" | "sjis" => TextCodec::Encoded(encoding_rs::SHIFT_JIS),
            "ujis" | "eucjpms" => TextCodec::Encoded(encoding_rs::EUC_JP),
            "euckr" => TextCodec::Encoded(encoding_rs::EUC_KR),
            "koi8r" => TextCodec::Encoded(encoding_rs::KOI8_R),
            "koi8u" => TextCodec::Encoded(encoding_rs::KOI8_U),
            "macroman" => TextCodec::Encoded(encoding_rs::MACINTOSH),
            "latin7" => TextCodec::Encoded(encoding_rs::ISO_8859_13),
            "tis620" => TextCodec::Encoded(encoding_rs::WINDOWS_874),
            // MySQL's latin1 is Windows-1252, which is also what WHATWG's `latin1` label means.
            other => Encoding::for_label(other.as_bytes()).map(TextCodec::Encoded).unwrap_or(TextCodec::Unknown),
        }
    }

    /// The value of `bytes` read from a column with this codec.
    pub fn value(self, bytes: &[u8]) -> Value {
        match self {
            TextCodec::Utf8 => match std::str::from_utf8(bytes) {
                Ok(s) => Value::String(s.into()),
                Err(_) => Value::Bytes(bytes.into()),
            },
            TextCodec::Encoded(enc) => match enc.decode_without_bom_handling_and_without_replacement(bytes) {
                Some(text) => Value::String(text.as_ref().into()),
                None => Value::Bytes(bytes.into()),
            },
            TextCodec::Binary | TextCodec::Unknown => Value::Bytes(bytes.into()),
        }
    }
}

/// BINARY(n): the server strips trailing 0x00 bytes in the binlog; the column's length restores them.
pub(crate) fn pad_binary(bytes: &[u8], length: usize) -> Value {
    let mut v = bytes.to_vec();
    if v.len() < length {
        v.resize(length, 0);
    }
    Value::Bytes(v.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_decoded_by_its_character_set() {
        // latin1_swedish_ci, latin2_general_ci, gbk_chinese_ci, utf8mb4_general_ci, binary.
        assert_eq!(TextCodec::of(Some(8)).value(&[0xe9]), Value::String("é".into()));
        assert_eq!(TextCodec::of(Some(9)).value(&[0xae, 0x6c, 0x75, 0xbb]), Value::String("Žluť".into()));
        assert_eq!(TextCodec::of(Some(28)).value(&[0xd6, 0xd0]), Value::String("中".into()));
        assert_eq!(TextCodec::of(Some(45)).value("é🍔".as_bytes()), Value::String("é🍔".into()));
        assert_eq!(TextCodec::of(Some(63)).value(&[0xff, 0]), Value::Bytes(vec![0xff, 0].into()));
        // A latin1 column holding bytes that look like UTF-8 gets the latin1 reading, not the UTF-8 one.
        assert_eq!(TextCodec::of(Some(8)).value("é".as_bytes()), Value::String("Ã©".into()));
        // Invalid bytes are kept, not replaced.
        assert_eq!(TextCodec::of(Some(45)).value(&[0xff]), Value::Bytes(vec![0xff].into()));
        assert_eq!(TextCodec::of(Some(2048)), TextCodec::Utf8, "MariaDB's uca1400 collations");
        assert_eq!(pad_binary(&[1, 2], 4), Value::Bytes(vec![1, 2, 0, 0].into()));
    }
}
