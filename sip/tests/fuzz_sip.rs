//! SIP inputs that fuzzing (fuzz/, target `sip_message`) found to break a
//! property, kept as regressions; the inputs are in fuzz/corpus/sip_message/.

use tollgate_sip::message::{Message, NameAddr};

/// A bare addr-spec with a stray '>' parsed, and printed back in brackets
/// as `<sip:a@b>>;tag=...`, which no peer reads; it is now refused.
#[test]
fn a_bare_uri_with_an_angle_bracket_is_refused() {
    let err = NameAddr::parse("sip:sipp@192.0.2.1:5061>;tag=1").unwrap_err();
    assert_eq!(
        err,
        r#"'<' or '>' in the bare URI "sip:sipp@192.0.2.1:5061>""#
    );
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

/// Parameters with an unclosed quote parsed; the tag the B2BUA then added
/// (`with_tag`) was read as inside the quoted string, so the dialog's own
/// tag was lost. Such a name-addr is now refused.
#[test]
fn a_name_addr_with_an_unclosed_quote_in_its_parameters_is_refused() {
    let err = NameAddr::parse("\"bob\" <sip:bob@192.0.2.4>;branch=z9\"-7").unwrap_err();
    assert_eq!(err, r#"unclosed '"' in the parameters "branch=z9\"-7""#);
    assert!(NameAddr::parse("sip:bob@192.0.2.4;x=\"a").is_err());
    let ok = NameAddr::parse("<sip:bob@192.0.2.4>;x=\"a;b\\\"\"").unwrap();
    assert_eq!(ok.with_tag("t1").tag().as_deref(), Some("t1"));
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/corpus/sip_message/unclosed-quote-in-params"
    ))
    .unwrap();
    let m = Message::parse(&text).unwrap();
    let second_from = m.header_values("From")[1];
    assert_eq!(
        NameAddr::parse(second_from).unwrap_err(),
        r#"unclosed '"' in the parameters "Proxy-Authorization: Digest username=\"tg=4242SIPpTag007""#
    );
}

/// A display name of backslashes alone (found by AFL++ on `sip_message`)
/// printed as `""`, which reads back as no display name, so printing
/// again changed the header; it now prints as no display name at once.
#[test]
fn a_display_name_with_nothing_quotable_is_left_out() {
    let na = NameAddr::parse(r"\\\ <sip:a@192.0.2.1>").unwrap();
    assert_eq!(na.display.as_deref(), Some(r"\\\"));
    assert_eq!(na.to_string(), "<sip:a@192.0.2.1>");
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/corpus/sip_message/display-name-of-backslashes"
    ))
    .unwrap();
    let m = Message::parse(&text).unwrap();
    let mangled_cseq = NameAddr::parse(m.header("CSeq").unwrap()).unwrap();
    assert_eq!(
        mangled_cseq.to_string(),
        "<sip0192.0.2.1:5061;transport=UDP>"
    );
}
