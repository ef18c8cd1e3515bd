//! Inline requests: Redis's `sdssplitargs` quoting rules.

use resp_codec::{Bytes, BytesMut, ProtocolError, RequestDecoder};

/// All requests in `line`, or the first error.
fn inline(line: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
    let mut dec = RequestDecoder::default();
    let mut buf = BytesMut::from(line);
    let mut args = Vec::new();
    let mut out = Vec::new();
    while dec.decode(&mut buf, &mut args)? {
        out.push(args.iter().map(|a| a.to_vec()).collect());
    }
    Ok(out)
}

/// The arguments of the single request on `line`.
fn one(line: &str) -> Vec<Vec<u8>> {
    let mut reqs = inline(format!("{line}\r\n").as_bytes()).expect("valid inline request");
    assert_eq!(reqs.len(), 1, "{line:?}");
    reqs.remove(0)
}

fn v(items: &[&[u8]]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.to_vec()).collect()
}

#[test]
fn plain_words() {
    assert_eq!(one("PING"), v(&[b"PING"]));
    assert_eq!(one("  set   key\tvalue  "), v(&[b"set", b"key", b"value"]));
}

#[test]
fn lf_without_cr_ends_the_line_too() {
    assert_eq!(
        inline(b"PING\nECHO x\n"),
        Ok(vec![v(&[b"PING"]), v(&[b"ECHO", b"x"])])
    );
}

#[test]
fn double_quotes_and_escapes() {
    assert_eq!(one(r#"set "foo bar" x"#), v(&[b"set", b"foo bar", b"x"]));
    assert_eq!(
        one(r#""a\nb\rc\td\be\af\\g\"h""#),
        v(&[b"a\nb\rc\td\x08e\x07f\\g\"h"])
    );
    assert_eq!(one(r#""\x41\x4a\x6b\xff""#), v(&[b"AJk\xff"]));
    // Not two hex digits: the backslash escapes the 'x'.
    assert_eq!(one(r#""\x4g""#), v(&[b"x4g"]));
    // Unknown escapes give the character itself.
    assert_eq!(one(r#""\q\'""#), v(&[b"q'"]));
    assert_eq!(one(r#""""#), v(&[b""]));
    assert_eq!(one(r#"set k """#), v(&[b"set", b"k", b""]));
}

#[test]
fn single_quotes() {
    assert_eq!(one(r"'it\'s' x"), v(&[b"it's", b"x"]));
    // Only \' is an escape inside single quotes.
    assert_eq!(one(r"'a\nb\x41'"), v(&[br"a\nb\x41"]));
    assert_eq!(one(r#"'say "hi"'"#), v(&[br#"say "hi""#]));
}

#[test]
fn quotes_open_inside_a_word() {
    assert_eq!(one(r#"a"b c""#), v(&[b"ab c"]));
    assert_eq!(one(r"x'y z' w"), v(&[b"xy z", b"w"]));
}

#[test]
fn unbalanced_quotes() {
    for line in [
        &br#"set "foo"bar"#[..],
        br#"set "foo"#,
        br"set 'foo",
        br"set 'foo'bar",
        br#"a"b c"d"#,
        br#""trailing backslash\"#,
        b"\"nul\0inside\"",
    ] {
        let mut l = line.to_vec();
        l.extend_from_slice(b"\r\n");
        assert_eq!(
            inline(&l),
            Err(ProtocolError::UnbalancedQuotes),
            "{:?}",
            String::from_utf8_lossy(line)
        );
        assert_eq!(
            ProtocolError::UnbalancedQuotes.to_string(),
            "Protocol error: unbalanced quotes in request"
        );
    }
}

#[test]
fn closing_quote_followed_by_any_c_space_is_fine() {
    assert_eq!(inline(b"\"a\"\x0bb\n"), Ok(vec![v(&[b"a", b"b"])]));
    assert_eq!(inline(b"\"a\"\x0cb\n"), Ok(vec![v(&[b"a", b"b"])]));
}

#[test]
fn vertical_tab_and_form_feed_separate_only_between_words() {
    // isspace() skips them between tokens, but they do not end a token.
    assert_eq!(
        inline(b"\x0b\x0cab\x0bcd e\n"),
        Ok(vec![v(&[b"ab\x0bcd", b"e"])])
    );
}

#[test]
fn nul_ends_the_line_like_a_c_string() {
    assert_eq!(inline(b"ECHO a\0b c\r\n"), Ok(vec![v(&[b"ECHO", b"a"])]));
}

#[test]
fn empty_lines_are_skipped() {
    assert_eq!(
        inline(b"\r\n\n   \r\n\t\nPING\r\n\r\n"),
        Ok(vec![v(&[b"PING"])])
    );
}

#[test]
fn a_lone_cr_inside_the_line_separates_words() {
    assert_eq!(inline(b"a\rb\n"), Ok(vec![v(&[b"a", b"b"])]));
}

#[test]
fn inline_line_waits_for_newline() {
    let mut dec = RequestDecoder::default();
    let mut buf = BytesMut::from(&b"PIN"[..]);
    let mut args = Vec::new();
    assert_eq!(dec.decode(&mut buf, &mut args), Ok(false));
    buf.extend_from_slice(b"G\r");
    assert_eq!(dec.decode(&mut buf, &mut args), Ok(false));
    buf.extend_from_slice(b"\n");
    assert_eq!(dec.decode(&mut buf, &mut args), Ok(true));
    assert_eq!(args, vec![Bytes::from_static(b"PING")]);
    assert!(buf.is_empty());
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// Quotes every argument with `\xHH` for every byte.
    fn quote_all(args: &[Vec<u8>]) -> Vec<u8> {
        let mut line = Vec::new();
        for a in args {
            line.push(b'"');
            for b in a {
                line.extend_from_slice(format!("\\x{b:02x}").as_bytes());
            }
            line.extend_from_slice(b"\" ");
        }
        line.extend_from_slice(b"\r\n");
        line
    }

    proptest! {
        #[test]
        fn hex_quoted_arguments_round_trip(args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..6)) {
            prop_assert_eq!(inline(&quote_all(&args)), Ok(vec![args]));
        }

        #[test]
        fn random_lines_never_panic(line in prop::collection::vec(any::<u8>(), 0..80)) {
            let _ = inline(&line);
        }
    }
}
