//! One fast pass over a CLI line: is it a single JSON value, and which of its top-level fields
//! must the proxy read?
//!
//! Nearly every line the CLI writes is a message the proxy only passes on. Having serde_json
//! deserialize even a borrowed view of each one cost more than all the rest of the proxy's
//! work on the line: about 230 ns for a 200-byte line on the benchmark's machine, where this
//! scan takes about 95 ns. So every line is scanned here, and serde_json reads only the few
//! lines whose top-level `type` or `error` matters (`init`, `result`, rate limits).
//!
//! "Valid" means what serde_json accepts as one value of any kind, white space around it
//! aside, in UTF-8; the one difference is that nesting deeper than 128 is refused, as
//! serde_json refuses it when it builds values, which keeps the scan's recursion shallow.
//! Escaped lone surrogates (`"\ud800"`) pass, as they do serde_json's and JavaScript's
//! parsers: `JSON.stringify` writes them for a string cut between the halves of a pair.

/// What the scan found out about a line that is one JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shape<'a> {
    /// The top-level `"type"` of an object, when it is a string written without escapes.
    pub kind: Option<&'a [u8]>,
    /// The top level holds something the scan does not settle: an `"error"` field, a `type`
    /// given twice or not as a plain string, or a key written with escapes.
    pub needs_reading: bool,
}

/// The deepest nesting accepted: serde_json's recursion limit.
const MAX_DEPTH: u32 = 128;

/// Scans `line`. None: it is not exactly one JSON value (white space aside) in UTF-8.
pub fn scan(line: &[u8]) -> Option<Shape<'_>> {
    std::str::from_utf8(line).ok()?;
    let mut shape = Shape::default();
    let at = skip_whitespace(line, 0);
    let end = if line.get(at) == Some(&b'{') {
        object(line, at + 1, 1, Some(&mut shape))?
    } else {
        value(line, at, 0)?
    };
    (skip_whitespace(line, end) == line.len()).then_some(shape)
}

// Each step takes the position it starts at and gives back where it ended, so that the
// position stays in a register rather than in memory that every step reads and writes back.

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(at) {
        at += 1;
    }
    at
}

/// The value that starts at `at` (no white space before it); where it ends.
fn value(bytes: &[u8], at: usize, depth: u32) -> Option<usize> {
    match *bytes.get(at)? {
        b'{' => object(bytes, at + 1, depth + 1, None),
        b'[' => array(bytes, at + 1, depth + 1),
        b'"' => string(bytes, at + 1).map(|(end, _)| end),
        b't' => literal(bytes, at, b"true"),
        b'f' => literal(bytes, at, b"false"),
        b'n' => literal(bytes, at, b"null"),
        b'-' | b'0'..=b'9' => number(bytes, at),
        _ => None,
    }
}

/// The rest of an object after its `{`; at the top level it fills in `shape`.
fn object<'a>(
    bytes: &'a [u8],
    at: usize,
    depth: u32,
    mut shape: Option<&mut Shape<'a>>,
) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut at = skip_whitespace(bytes, at);
    if bytes.get(at) == Some(&b'}') {
        return Some(at + 1);
    }
    loop {
        if bytes.get(at) != Some(&b'"') {
            return None;
        }
        let (key_end, key) = string(bytes, at + 1)?;
        at = skip_whitespace(bytes, key_end);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        at = skip_whitespace(bytes, at + 1);
        at = match shape.as_deref_mut() {
            None => value(bytes, at, depth)?,
            Some(shape) => top_level_field(bytes, at, depth, key, shape)?,
        };
        at = skip_whitespace(bytes, at);
        match bytes.get(at)? {
            b',' => at = skip_whitespace(bytes, at + 1),
            b'}' => return Some(at + 1),
            _ => return None,
        }
    }
}

/// The value of the top-level field `key`, noted in `shape` when it matters.
fn top_level_field<'a>(
    bytes: &'a [u8],
    at: usize,
    depth: u32,
    key: RawStr<'a>,
    shape: &mut Shape<'a>,
) -> Option<usize> {
    if key.escaped || key.raw == b"error" {
        shape.needs_reading = true;
    } else if key.raw == b"type" {
        if bytes.get(at) == Some(&b'"') {
            let (end, kind) = string(bytes, at + 1)?;
            if kind.escaped || shape.kind.is_some() {
                shape.needs_reading = true;
            }
            shape.kind = Some(kind.raw);
            return Some(end);
        }
        shape.needs_reading = true;
    }
    value(bytes, at, depth)
}

/// The rest of an array after its `[`.
fn array(bytes: &[u8], at: usize, depth: u32) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut at = skip_whitespace(bytes, at);
    if bytes.get(at) == Some(&b']') {
        return Some(at + 1);
    }
    loop {
        at = skip_whitespace(bytes, value(bytes, at, depth)?);
        match bytes.get(at)? {
            b',' => at = skip_whitespace(bytes, at + 1),
            b']' => return Some(at + 1),
            _ => return None,
        }
    }
}

/// A string's bytes between its quotes, as written.
struct RawStr<'a> {
    raw: &'a [u8],
    escaped: bool,
}

/// The rest of a string after its opening quote: where it ends, and what it holds. The line is
/// known to be UTF-8, so only quotes, backslashes and control characters need a look; eight
/// bytes at a time are passed over while they hold none.
fn string(bytes: &[u8], start: usize) -> Option<(usize, RawStr<'_>)> {
    let mut at = start;
    let mut escaped = false;
    loop {
        while let Some(chunk) = bytes.get(at..at + 8) {
            let found = special_bytes(u64::from_le_bytes(chunk.try_into().expect("eight bytes")));
            if found != 0 {
                at += found.trailing_zeros() as usize / 8;
                break;
            }
            at += 8;
        }
        match *bytes.get(at)? {
            b'"' => {
                let raw = &bytes[start..at];
                return Some((at + 1, RawStr { raw, escaped }));
            }
            b'\\' => {
                escaped = true;
                at = escape(bytes, at + 1)?;
            }
            0..=0x1f => return None,
            _ => at += 1,
        }
    }
}

/// The rest of an escape after its backslash.
fn escape(bytes: &[u8], at: usize) -> Option<usize> {
    match *bytes.get(at)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(at + 1),
        b'u' => {
            let hex = bytes.get(at + 1..at + 5)?;
            hex.iter().all(u8::is_ascii_hexdigit).then_some(at + 5)
        }
        _ => None,
    }
}

fn literal(bytes: &[u8], at: usize, word: &[u8]) -> Option<usize> {
    let end = at + word.len();
    (bytes.get(at..end)? == word).then_some(end)
}

/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
fn number(bytes: &[u8], mut at: usize) -> Option<usize> {
    if bytes.get(at) == Some(&b'-') {
        at += 1;
    }
    match bytes.get(at)? {
        b'0' => at += 1,
        b'1'..=b'9' => at = digits(bytes, at + 1),
        _ => return None,
    }
    if bytes.get(at) == Some(&b'.') {
        at = one_or_more_digits(bytes, at + 1)?;
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        at = one_or_more_digits(bytes, at)?;
    }
    Some(at)
}

fn digits(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(u8::is_ascii_digit) {
        at += 1;
    }
    at
}

fn one_or_more_digits(bytes: &[u8], at: usize) -> Option<usize> {
    let end = digits(bytes, at);
    (end > at).then_some(end)
}

/// The high bit of each of eight bytes (in memory order, lowest first) that may be a quote, a
/// backslash or a control character. The lowest bit set is always one of those: a wrong one can
/// only follow a right one, where a borrow carried into the next byte.
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    // A byte below n: (byte - n) borrows into its high bit while the byte's own is clear.
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGH_BITS;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    below(quote, 1) | below(backslash, 1) | below(word, 0x20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(line: &str) -> bool {
        scan(line.as_bytes()).is_some()
    }

    #[test]
    fn json_values_are_valid() {
        for line in [
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"hi"}]}}"#,
            " { \"a\" : [ 1 , -2.5e+3 , 0.0 , 1E9 , true , false , null ] }\r",
            "[]",
            "{}",
            "0",
            "-0",
            r#""a \"quoted\" \\ \/ \b\f\n\r\t \u00e9 string""#,
            "\"caf\u{e9} \u{1f600}\"",
            r#""\ud800""#,
            "[[[[[[[[[[1]]]]]]]]]]",
        ] {
            assert!(valid(line), "{line:?} is JSON");
        }
    }

    #[test]
    fn anything_else_is_not() {
        for line in [
            "",
            "   ",
            "plain text",
            "{",
            "{}}",
            "{} {}",
            "[1,]",
            "[,1]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{a:1}",
            "{'a':1}",
            "01",
            "1.",
            ".5",
            "1e",
            "+1",
            "-",
            "tru",
            "nul",
            "True",
            "\"unterminated",
            "\"tab\tinside\"",
            "\"bad \\x escape\"",
            "\"short \\u12\"",
            "\"\\u12g4\"",
            "NaN",
            "[1] x",
        ] {
            assert!(!valid(line), "{line:?} is not JSON");
        }
        assert!(scan(b"\"\xff\"").is_none(), "not UTF-8");
    }

    #[test]
    fn nesting_stops_at_serde_jsons_limit() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(valid(&nested(128)));
        assert!(!valid(&nested(129)));
        let objects = |depth: usize| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        assert!(valid(&objects(128)));
        assert!(!valid(&objects(129)));
    }

    #[test]
    fn the_top_level_type_is_read_without_serde() {
        let shape = scan(br#"{"message":{"type":"inner"},"type":"assistant","n":1}"#).unwrap();
        assert_eq!(shape.kind, Some(&b"assistant"[..]));
        assert!(!shape.needs_reading);
        assert_eq!(scan(b"[1]").unwrap(), Shape::default());
        assert_eq!(scan(br#"{"a":{"error":1}}"#).unwrap(), Shape::default());
    }

    #[test]
    fn what_the_scan_cannot_settle_goes_to_serde() {
        for line in [
            r#"{"type":"assistant","error":"rate_limit"}"#,
            r#"{"type":"a","type":"b"}"#,
            r#"{"type":1}"#,
            r#"{"type":"res\u0075lt"}"#,
            r#"{"typ\u0065":"result"}"#,
        ] {
            assert!(scan(line.as_bytes()).unwrap().needs_reading, "{line}");
        }
    }
}

#[cfg(test)]
mod agrees_with_serde_json {
    use super::*;
    use proptest::prelude::*;

    /// Text that is JSON or nearly: JSON's own characters, so that mutations make near misses.
    /// No `d`, so no escape is a surrogate, which serde_json takes either way.
    fn jsonish() -> impl Strategy<Value = String> {
        let token = prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            " ",
            "\t",
            "\r",
            "\"",
            "\\",
            "\\u00e9",
            "\\n",
            "\\x",
            "\"type\"",
            "\"error\"",
            "\"result\"",
            "0",
            "1",
            "-",
            ".",
            "e",
            "E",
            "+",
            "true",
            "false",
            "null",
            "nul",
            "a",
            "é",
            "\u{1}",
            "\u{1f600}",
            "\"text\"",
        ]);
        prop::collection::vec(token, 0..40).prop_map(|tokens| tokens.concat())
    }

    fn serialized() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            ".*".prop_map(serde_json::Value::from),
        ];
        let value = leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
                prop::collection::btree_map("type|error|[a-z]{1,8}", inner, 0..8)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        });
        (value, any::<bool>()).prop_map(|(value, pretty)| {
            if pretty {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                value.to_string()
            }
        })
    }

    /// A serialized value with a few of its bytes changed, dropped or doubled.
    fn damaged() -> impl Strategy<Value = Vec<u8>> {
        (
            serialized(),
            prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..4),
        )
            .prop_map(|(text, edits)| {
                let mut bytes = text.into_bytes();
                for (at, kind, byte) in edits {
                    if bytes.is_empty() {
                        break;
                    }
                    let at = at.index(bytes.len());
                    match kind {
                        0 => bytes[at] = byte,
                        1 => drop(bytes.remove(at)),
                        _ => bytes.insert(at, bytes[at]),
                    }
                }
                bytes
            })
    }

    fn serde_accepts(line: &[u8]) -> bool {
        std::str::from_utf8(line).is_ok()
            && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn on_near_json(text in jsonish()) {
            prop_assert_eq!(scan(text.as_bytes()).is_some(), serde_accepts(text.as_bytes()));
        }

        #[test]
        fn on_damaged_values(bytes in damaged()) {
            prop_assert_eq!(scan(&bytes).is_some(), serde_accepts(&bytes));
        }

        #[test]
        fn on_values_with_the_type_serde_reads(text in serialized()) {
            let shape = scan(text.as_bytes()).expect("a serialized value");
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            let kind = value.get("type").and_then(|kind| kind.as_str());
            // serde_json escapes quotes, backslashes and control characters below a space.
            let kind_is_plain =
                kind.is_some_and(|k| !k.contains(['"', '\\']) && !k.chars().any(|c| c < ' '));
            let unsettled = value.get("error").is_some()
                || value.get("type").is_some_and(|k| !kind_is_plain || !k.is_string());
            prop_assert_eq!(shape.needs_reading, unsettled);
            if !unsettled {
                prop_assert_eq!(shape.kind.map(|k| std::str::from_utf8(k).unwrap()), kind);
            }
        }
    }
}
