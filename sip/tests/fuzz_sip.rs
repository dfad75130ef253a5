//! SIP inputs that fuzzing (fuzz/, target `sip_message`) found to break a
//! property, kept as regressions; the inputs are in fuzz/corpus/sip_message/.

use tollgate_sip::message::{Message, NameAddr};

/// A bare addr-spec with a stray '>' parsed, and printed back in brackets
/// as `<sip:a@b>>;tag=...`, which no peer reads; it is now refused.
#[test]
fn a_bare_uri_with_an_angle_bracket_is_refused() {
    let err = NameAddr::parse("sip:sipp@192.0.2.1:5061>;tag=1").unwrap_err();
    assert_eq!(err, r#"'<' or '>' in the bare URI "sip:sipp@192.0.2.1:5061>""#);
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/corpus/sip_message/bare-uri-with-gt"
    ))
    .unwrap();
    let m = Message::parse(&text).unwrap();
    assert_eq!(
        m.validate().unwrap_err(),
        r#"Bad From: '<' or '>' in the bare URI "sip:sipp@192.0.2.1:5061>""#
    );
}
