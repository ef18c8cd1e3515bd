//! The reply helpers: exact bytes under RESP2 and RESP3.

use resp_codec::{encode, BytesMut, Protocol};

fn out(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut b = BytesMut::new();
    f(&mut b);
    b.to_vec()
}

use Protocol::{Resp2, Resp3};

#[test]
fn protocol_independent() {
    assert_eq!(out(|o| encode::simple(o, b"OK")), b"+OK\r\n");
    assert_eq!(
        out(|o| encode::error(o, b"ERR syntax error")),
        b"-ERR syntax error\r\n"
    );
    assert_eq!(
        out(|o| encode::error(o, b"ERR bad\r\nline")),
        b"-ERR bad  line\r\n"
    );
    assert_eq!(out(|o| encode::simple(o, b"a\nb")), b"+a b\r\n");
    assert_eq!(out(|o| encode::integer(o, -42)), b":-42\r\n");
    assert_eq!(
        out(|o| encode::integer(o, i64::MIN)),
        b":-9223372036854775808\r\n"
    );
    assert_eq!(out(|o| encode::bulk(o, b"")), b"$0\r\n\r\n");
    assert_eq!(out(|o| encode::bulk(o, b"a\r\nb")), b"$4\r\na\r\nb\r\n");
    assert_eq!(out(|o| encode::array_len(o, 3)), b"*3\r\n");
}

#[test]
fn resp2_downgrades_like_redis() {
    assert_eq!(out(|o| encode::null(o, Resp2)), b"$-1\r\n");
    assert_eq!(out(|o| encode::null_array(o, Resp2)), b"*-1\r\n");
    assert_eq!(out(|o| encode::map_len(o, 2, Resp2)), b"*4\r\n");
    assert_eq!(out(|o| encode::set_len(o, 2, Resp2)), b"*2\r\n");
    assert_eq!(out(|o| encode::push_len(o, 3, Resp2)), b"*3\r\n");
    assert_eq!(out(|o| encode::double(o, 1.5, Resp2)), b"$3\r\n1.5\r\n");
    assert_eq!(
        out(|o| encode::double(o, f64::INFINITY, Resp2)),
        b"$3\r\ninf\r\n"
    );
    assert_eq!(
        out(|o| encode::double(o, 0.1, Resp2)),
        b"$19\r\n0.10000000000000001\r\n"
    );
    assert_eq!(out(|o| encode::boolean(o, true, Resp2)), b":1\r\n");
    assert_eq!(out(|o| encode::boolean(o, false, Resp2)), b":0\r\n");
    assert_eq!(
        out(|o| encode::big_number(o, b"123", Resp2)),
        b"$3\r\n123\r\n"
    );
    assert_eq!(
        out(|o| encode::verbatim(o, b"txt", b"hi", Resp2)),
        b"$2\r\nhi\r\n"
    );
}

#[test]
fn resp3_types() {
    assert_eq!(out(|o| encode::null(o, Resp3)), b"_\r\n");
    assert_eq!(out(|o| encode::null_array(o, Resp3)), b"_\r\n");
    assert_eq!(out(|o| encode::map_len(o, 2, Resp3)), b"%2\r\n");
    assert_eq!(out(|o| encode::set_len(o, 2, Resp3)), b"~2\r\n");
    assert_eq!(out(|o| encode::push_len(o, 3, Resp3)), b">3\r\n");
    assert_eq!(out(|o| encode::double(o, 1.5, Resp3)), b",1.5\r\n");
    assert_eq!(
        out(|o| encode::double(o, -f64::INFINITY, Resp3)),
        b",-inf\r\n"
    );
    assert_eq!(out(|o| encode::double(o, f64::NAN, Resp3)), b",nan\r\n");
    assert_eq!(out(|o| encode::double(o, 3.0, Resp3)), b",3\r\n");
    assert_eq!(out(|o| encode::double(o, 1e17, Resp3)), b",1e+17\r\n");
    assert_eq!(out(|o| encode::boolean(o, true, Resp3)), b"#t\r\n");
    assert_eq!(out(|o| encode::big_number(o, b"-123", Resp3)), b"(-123\r\n");
    assert_eq!(
        out(|o| encode::verbatim(o, b"txt", b"hi", Resp3)),
        b"=6\r\ntxt:hi\r\n"
    );
}
