//! The control socket under bad input: every malformed or impossible request
//! gets an error that says what was wrong, and the data plane keeps serving.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use tollgate_dataplane::control::{self, Request};
use tollgate_tests::process::{flow, Backend, Dataplane};

fn refused(dp: &Dataplane, body: &[u8]) -> String {
    match dp.client().raw(body) {
        Err(tollgate_dataplane::client::ClientError::Refused(m)) => m,
        other => panic!(
            "expected a refusal for {:?}, got {other:?}",
            String::from_utf8_lossy(body)
        ),
    }
}

#[test]
fn bad_requests_get_clear_errors_and_nothing_breaks() {
    tollgate_tests::require_root();
    let dp = Dataplane::start(None, Backend::Socket, None, "");
    assert!(refused(&dp, b"{not json").contains("not valid JSON"));
    assert!(refused(&dp, br#"{"v":9,"op":"hello"}"#).contains("unsupported protocol version 9"));
    assert!(refused(&dp, br#"{"v":1,"op":"reboot"}"#).contains("unknown variant `reboot`"));
    assert!(
        refused(&dp, br#"{"v":1,"op":"flow_del","local":"10.0.0.1"}"#)
            .contains("invalid socket address")
    );
    let bogus = br#"{"v":1,"op":"flow_put","flow":{"local":"127.0.0.1:39100","source":"127.0.0.1:39102","destination":"127.0.0.1:4000","colour":"red"}}"#;
    assert!(refused(&dp, bogus).contains("unknown field `colour`"));

    let mut mixed = flow("127.0.0.1:39100", "127.0.0.1:39102", "[::1]:4000");
    let e = refused(
        &dp,
        &control::encode_request(&Request::FlowPut {
            flow: mixed.clone(),
        }),
    );
    assert!(
        e.contains("`destination` is [::1]:4000") && e.contains("IPv4"),
        "{e}"
    );
    mixed.destination = "127.0.0.1:4000".parse().unwrap();
    mixed.source = "192.0.2.1:30002".parse().unwrap(); // not an address of this host
    let e = refused(
        &dp,
        &control::encode_request(&Request::FlowPut { flow: mixed }),
    );
    assert!(e.contains("cannot bind 192.0.2.1:30002"), "{e}");
    let mut egress = flow("127.0.0.1:39100", "127.0.0.1:39102", "127.0.0.1:4000");
    egress.egress = Some("nosuchif0".into());
    assert!(refused(
        &dp,
        &control::encode_request(&Request::FlowPut { flow: egress })
    )
    .contains("`nosuchif0` does not exist"));
    let e = refused(
        &dp,
        &control::encode_request(&Request::FlowDel {
            local: "127.0.0.1:1".parse().unwrap(),
        }),
    );
    assert!(
        e.contains("no flow matches local address 127.0.0.1:1"),
        "{e}"
    );

    // An oversized frame is answered, then the connection is closed.
    let mut s = UnixStream::connect(&dp.socket).unwrap();
    s.write_all(&(64u32 << 20).to_be_bytes()).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    assert!(String::from_utf8_lossy(&body).contains("exceeds the 1048576 byte limit"));
    // A client that vanishes mid-frame harms nothing.
    let mut s = UnixStream::connect(&dp.socket).unwrap();
    s.write_all(&[0, 0, 1]).unwrap();
    drop(s);

    // Still serving, and the failed installs left nothing behind.
    let hello = dp.request(Request::Hello).expect("hello after bad input");
    assert_eq!(hello["backend"], "socket");
    assert_eq!(
        dp.request(Request::FlowList).unwrap(),
        serde_json::json!([])
    );
    assert_eq!(
        dp.counter("sockets"),
        0,
        "a failed install must release what it bound"
    );
}

/// Pipelined requests are answered in order, each with its own result, and
/// a refused one does not disturb the others.
#[test]
fn pipelined_requests_get_their_own_replies_in_order() {
    tollgate_tests::require_root();
    let dp = Dataplane::start(None, Backend::Socket, None, "");
    let good = flow("127.0.0.1:39200", "127.0.0.1:39202", "127.0.0.1:4000");
    let bad = flow("127.0.0.1:39204", "192.0.2.1:39206", "127.0.0.1:4000");
    let replies = dp
        .client()
        .request_all(&[
            Request::FlowPut { flow: good.clone() },
            Request::FlowPut { flow: bad },
            Request::FlowGet { local: good.local },
            Request::FlowDel { local: good.local },
            Request::FlowGet { local: good.local },
        ])
        .expect("the connection holds");
    assert_eq!(replies.len(), 5);
    assert!(replies[0].is_ok());
    assert!(
        format!("{:?}", replies[1]).contains("cannot bind 192.0.2.1:39206"),
        "{:?}",
        replies[1]
    );
    assert_eq!(
        replies[2].as_ref().expect("get")["flow"]["local"],
        "127.0.0.1:39200"
    );
    assert!(replies[3].is_ok());
    assert!(format!("{:?}", replies[4]).contains("no flow matches"));
}
