//! The B2BUA core on virtual time, between a fake caller and a fake callee
//! over a fake data plane: each scenario asserts what goes on the wire, the
//! flows put and removed, and the CDR.

mod harness;
mod ivr;

use harness::*;
use std::time::Duration;
use tollgate::b2bua::config::{RouteConfig, SipConfig};
use tollgate::b2bua::lcr::{Gateway, LcrTable};
use tollgate::b2bua::Transport;
use tollgate_cdr::model::{Disposition, HangupBy, Record};
use tollgate_sip::message::Message;

/// The caller's INVITE reaches the callee; returns it as the callee got it.
fn invite(net: &mut Net) -> Message {
    let inv = net.caller.invite("6000", &sdp("192.0.2.10", 4000));
    net.caller_sends(&inv);
    assert_eq!(net.wire(), ["caller <- 100 INVITE", "callee <- INVITE"]);
    assert_eq!(net.caller.recv().code(), Some(100));
    net.callee.recv()
}

/// A call up to both ACKs: returns the callee's INVITE.
fn establish(net: &mut Net) -> Message {
    let b_inv = invite(net);
    let ringing = net.callee.respond(&b_inv, 180, None);
    net.callee_sends(&ringing);
    assert_eq!(net.wire(), ["caller <- 180 INVITE"]);
    net.caller.recv();
    let ok = net
        .callee
        .respond(&b_inv, 200, Some(&sdp("192.0.2.20", 5000)));
    net.callee_sends(&ok);
    assert_eq!(net.wire(), ["callee <- ACK", "caller <- 200 INVITE"]);
    net.callee.expect("ACK");
    let ok_a = net.caller.expect("200 INVITE");
    let ack = net.caller.ack(&ok_a);
    net.caller_sends(&ack);
    assert_eq!(net.wire(), Vec::<String>::new(), "the ACK ends there");
    b_inv
}

#[test]
fn basic_call_the_caller_hangs_up() {
    let mut net = Net::default();
    let b_inv = invite(&mut net);
    // The callee is offered the relay's port, with flows for both directions.
    let offered = sdp_port(&b_inv);
    assert!((30000..30100).contains(&offered), "{offered}");
    assert!(String::from_utf8_lossy(&b_inv.body).contains("c=IN IP4 127.0.0.1"));
    assert_eq!(b_inv.header("Max-Forwards"), Some("69"));
    let ringing = net.callee.respond(&b_inv, 180, None);
    net.callee_sends(&ringing);
    net.caller.recv();
    net.wire();
    let towards_caller = [
        (offered, "192.0.2.10:4000".to_string()),
        (offered + 1, "192.0.2.10:4001".to_string()),
    ];
    assert_eq!(net.flows(), towards_caller, "before the answer only B -> A");
    net.flow_changes();
    net.advance(Duration::from_secs(5));
    let ok = net
        .callee
        .respond(&b_inv, 200, Some(&sdp("192.0.2.20", 5000)));
    net.callee_sends(&ok);
    assert_eq!(net.wire(), ["callee <- ACK", "caller <- 200 INVITE"]);
    net.callee.expect("ACK");
    let ok_a = net.caller.recv();
    let answer_port = sdp_port(&ok_a);
    assert_ne!(answer_port, offered, "each side faces its own port");
    let mut both = towards_caller.to_vec();
    both.push((answer_port, "192.0.2.20:5000".into()));
    both.push((answer_port + 1, "192.0.2.20:5001".into()));
    both.sort();
    assert_eq!(net.flows(), both);
    let puts = net.flow_changes();
    assert!(
        !puts.is_empty() && puts.iter().all(|(c, _)| *c == "put"),
        "{puts:?}"
    );
    let ack = net.caller.ack(&ok_a);
    net.caller_sends(&ack);
    net.advance(Duration::from_secs(10));
    assert_eq!(
        net.wire(),
        Vec::<String>::new(),
        "nothing while the call is up"
    );

    let bye = net.caller.request("BYE", None);
    net.caller_sends(&bye);
    assert_eq!(net.wire(), ["caller <- 200 BYE", "callee <- BYE"]);
    let b_bye = net.callee.expect("BYE");
    assert_eq!(b_bye.call_id(), b_inv.call_id(), "in the B-leg dialog");
    assert_eq!(
        b_bye.to_tag(),
        net.callee.respond(&b_inv, 200, None).to_tag()
    );
    let removed = net.flow_changes();
    assert!(!removed.is_empty() && removed.iter().all(|(c, _)| *c == "removed"));
    assert!(net.plane.flows().is_empty());
    let bye_ok = net.callee.respond(&b_bye, 200, None);
    net.callee_sends(&bye_ok);
    net.advance(Duration::from_secs(40));
    assert_eq!(
        net.wire(),
        Vec::<String>::new(),
        "the BYE was answered: no resend"
    );

    let kinds: Vec<&str> = net
        .records
        .iter()
        .map(|r| match r {
            Record::Started(_) => "started",
            Record::Answered { .. } => "answered",
            Record::Ended(_) => "ended",
        })
        .collect();
    assert_eq!(kinds, ["started", "answered", "ended"]);
    let cdr = net.cdrs()[0];
    assert_eq!(cdr.status, Some(Disposition::Answered));
    assert_eq!(cdr.hangup_by, Some(HangupBy::Caller));
    assert_eq!(cdr.sip_code, Some(200));
    assert_eq!(cdr.from_number, "alice");
    assert_eq!(cdr.to_number, "6000");
    assert_eq!(cdr.start_ms, net.ms_at(0.0));
    assert_eq!(cdr.answer_ms, Some(net.ms_at(5.0)));
    assert_eq!(cdr.end_ms, net.ms_at(15.0));
    assert_eq!(cdr.billable_secs(), 10);
}

#[test]
fn basic_call_the_callee_hangs_up() {
    let mut net = Net::default();
    establish(&mut net);
    net.flow_changes();
    let bye = net.callee.request("BYE", None);
    net.callee_sends(&bye);
    assert_eq!(net.wire(), ["callee <- 200 BYE", "caller <- BYE"]);
    let a_bye = net.caller.expect("BYE");
    assert_eq!(a_bye.call_id(), Some(net.caller.dialog.call_id.as_str()));
    assert_eq!(a_bye.from_tag(), net.caller.dialog.remote_tag);
    assert_eq!(
        a_bye.to_tag().as_deref(),
        Some(net.caller.dialog.local_tag.as_str())
    );
    assert!(net.plane.flows().is_empty());
    // The caller answers late: the relay's BYE is resent meanwhile (timer E).
    net.advance(Duration::from_millis(600));
    assert_eq!(net.wire(), ["caller <- BYE"]);
    let ok = net.caller.respond(&a_bye, 200, None);
    net.caller_sends(&ok);
    net.advance(Duration::from_secs(40));
    assert_eq!(net.wire(), Vec::<String>::new());
    let cdr = net.cdrs()[0];
    assert_eq!(cdr.status, Some(Disposition::Answered));
    assert_eq!(cdr.hangup_by, Some(HangupBy::Callee));
}

/// The ring timeout (30 s here): 480 to the caller, CANCEL to the callee,
/// whose 487 is ACKed; the CDR says no answer, ended by the relay.
#[test]
fn ring_timeout_gives_480_and_cancels_the_callee() {
    let mut net = Net::default();
    let b_inv = invite(&mut net);
    let ringing = net.callee.respond(&b_inv, 180, None);
    net.callee_sends(&ringing);
    net.caller.expect("180 INVITE");
    net.wire();
    net.advance(Duration::from_millis(29_900));
    assert_eq!(
        net.wire(),
        Vec::<String>::new(),
        "not before the ring timeout"
    );
    net.advance(Duration::from_millis(100));
    assert_eq!(net.wire(), ["callee <- CANCEL", "caller <- 480 INVITE"]);
    let cancel = net.callee.expect("CANCEL");
    assert_eq!(
        cancel.header("Via"),
        b_inv.header("Via"),
        "the INVITE's branch"
    );
    let failed = net.caller.expect("480 INVITE");
    let m = net.caller.ack(&failed);
    net.caller_sends(&m);
    let ok = net.callee.respond(&cancel, 200, None);
    net.callee_sends(&ok);
    let terminated = net.callee.respond(&b_inv, 487, None);
    net.callee_sends(&terminated);
    assert_eq!(net.wire(), ["callee <- ACK"], "the 487 is ACKed");
    assert!(net.plane.flows().is_empty());
    net.advance(Duration::from_secs(40));
    assert_eq!(
        net.wire(),
        Vec::<String>::new(),
        "480 ACKed, CANCEL answered"
    );
    let cdr = net.cdrs()[0];
    assert_eq!(cdr.status, Some(Disposition::NoAnswer));
    assert_eq!(cdr.sip_code, Some(480));
    assert_eq!(cdr.hangup_by, Some(HangupBy::Relay), "the relay gave up");
    assert_eq!(cdr.end_ms, net.ms_at(30.0));
}

/// The caller cancels before the callee said anything: 200 and 487 to the
/// caller at once; the CANCEL to the callee waits for its first
/// provisional (RFC 3261 §9.1), then goes.
#[test]
fn cancel_before_any_response_reaches_the_callee_after_its_provisional() {
    let mut net = Net::default();
    let b_inv = invite(&mut net);
    let m = net.caller.cancel();
    net.caller_sends(&m);
    assert_eq!(net.wire(), ["caller <- 200 CANCEL", "caller <- 487 INVITE"]);
    net.caller.expect("200 CANCEL");
    let t = net.caller.expect("487 INVITE");
    let m = net.caller.ack(&t);
    net.caller_sends(&m);
    net.advance(Duration::from_millis(100));
    assert_eq!(
        net.wire(),
        Vec::<String>::new(),
        "no CANCEL before a provisional"
    );
    let ringing = net.callee.respond(&b_inv, 180, None);
    net.callee_sends(&ringing);
    assert_eq!(
        net.wire(),
        ["callee <- CANCEL"],
        "nothing more for the caller"
    );
    let cancel = net.callee.expect("CANCEL");
    let m = net.callee.respond(&cancel, 200, None);
    net.callee_sends(&m);
    let m = net.callee.respond(&b_inv, 487, None);
    net.callee_sends(&m);
    assert_eq!(net.wire(), ["callee <- ACK"]);
    let cdr = net.cdrs()[0];
    assert_eq!(cdr.status, Some(Disposition::Cancelled));
    assert_eq!(cdr.hangup_by, Some(HangupBy::Caller));
    assert_eq!(net.cdrs().len(), 1);
}

/// The caller's CANCEL crosses the callee's 200: the callee's call is
/// ACKed and hung up with a BYE (§15); the caller has its 487.
#[test]
fn cancel_crossing_the_callees_200_gets_ack_and_bye() {
    let mut net = Net::default();
    let b_inv = invite(&mut net);
    let m = net.callee.respond(&b_inv, 180, None);
    net.callee_sends(&m);
    net.caller.expect("180 INVITE");
    net.wire();
    let m = net.caller.cancel();
    net.caller_sends(&m);
    assert_eq!(
        net.wire(),
        [
            "caller <- 200 CANCEL",
            "callee <- CANCEL",
            "caller <- 487 INVITE"
        ]
    );
    let cancel = net.callee.expect("CANCEL");
    // The callee answered before the CANCEL reached it.
    let m = net
        .callee
        .respond(&b_inv, 200, Some(&sdp("192.0.2.20", 5000)));
    net.callee_sends(&m);
    let m = net.callee.respond(&cancel, 200, None);
    net.callee_sends(&m);
    assert_eq!(net.wire(), ["callee <- ACK", "callee <- BYE"]);
    net.callee.expect("ACK");
    let bye = net.callee.expect("BYE");
    assert_eq!(bye.call_id(), b_inv.call_id());
    assert_eq!(bye.to_tag(), Some(net.callee.dialog.local_tag.clone()));
    let m = net.callee.respond(&bye, 200, None);
    net.callee_sends(&m);
    net.advance(Duration::from_secs(40));
    let wire = net.wire();
    assert!(wire.iter().all(|l| l == "caller <- 487 INVITE"), "{wire:?}");
    assert!(net.plane.flows().is_empty());
    assert_eq!(net.cdrs().len(), 1);
    assert_eq!(net.cdrs()[0].status, Some(Disposition::Cancelled));
}

/// A retransmitted INVITE is absorbed (the 100 again, no second INVITE
/// to the callee); the 200 to the caller is resent until the ACK, and
/// the ACK to the callee is resent when its 200 is.
#[test]
fn retransmissions_are_absorbed_and_repeated() {
    let mut net = Net::default();
    let b_inv = invite(&mut net);
    let again = net.caller.invite.clone().unwrap();
    net.caller_sends(&again);
    assert_eq!(net.wire(), ["caller <- 100 INVITE"]);
    net.caller.expect("100 INVITE");
    // The relay's INVITE to the callee is resent on timer A until a 1xx.
    net.advance(Duration::from_millis(500));
    assert_eq!(net.wire(), ["callee <- INVITE"]);
    net.callee.expect("INVITE");
    let ok = net
        .callee
        .respond(&b_inv, 200, Some(&sdp("192.0.2.20", 5000)));
    net.lose(|to, m| to == addr(CALLEE) && m.method() == Some("ACK"));
    net.callee_sends(&ok);
    assert_eq!(net.wire(), ["callee <- ACK (lost)", "caller <- 200 INVITE"]);
    net.callee_sends(&ok);
    assert_eq!(net.wire(), ["callee <- ACK"], "the lost ACK again");
    net.callee.expect("ACK");
    let ok_a = net.caller.expect("200 INVITE");
    // No ACK from the caller: the 200 is resent at T1, 2T1, ...
    net.advance(Duration::from_millis(500));
    assert_eq!(net.wire(), ["caller <- 200 INVITE"]);
    net.advance(Duration::from_millis(1000));
    assert_eq!(net.wire(), ["caller <- 200 INVITE"]);
    let m = net.caller.ack(&ok_a);
    net.caller_sends(&m);
    net.advance(Duration::from_secs(40));
    assert_eq!(net.wire(), Vec::<String>::new(), "the ACK stopped them");
    assert_eq!(net.cdrs().len(), 0, "the call is up");
}

/// A caller that never ACKs the 200: after 64*T1 the call is ended with
/// BYEs on both legs and a failed CDR.
#[test]
fn no_ack_from_the_caller_ends_the_call() {
    let mut net = Net::default();
    let b_inv = invite(&mut net);
    let m = net
        .callee
        .respond(&b_inv, 200, Some(&sdp("192.0.2.20", 5000)));
    net.callee_sends(&m);
    net.wire();
    net.advance(Duration::from_millis(31_900));
    assert!(net.cdrs().is_empty(), "{:?}", net.cdrs());
    net.advance(Duration::from_millis(100));
    let wire = net.wire();
    assert!(
        wire.ends_with(&["caller <- BYE".into(), "callee <- BYE".into()]),
        "{wire:?}"
    );
    let cdr = net.cdrs()[0];
    assert_eq!(cdr.status, Some(Disposition::Failed));
    assert_eq!(cdr.sip_reason.as_deref(), Some("no ACK from the caller"));
    assert_eq!(cdr.hangup_by, Some(HangupBy::Relay));
    assert!(net.plane.flows().is_empty());
}

/// A callee that never answers: the INVITE is resent on timer A, and on
/// timer B (64*T1) the caller gets 408; the CDR says no answer, by the relay.
#[test]
fn a_silent_callee_times_out_with_408() {
    let sip = SipConfig {
        ring_timeout_secs: 60,
        ..sip_config()
    };
    let mut net = Net::new(sip, media_config());
    invite(&mut net);
    net.advance(Duration::from_millis(31_900));
    let resent = net.wire();
    assert_eq!(
        resent, ["callee <- INVITE"; 6],
        "at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s"
    );
    net.advance(Duration::from_millis(100));
    assert_eq!(net.wire(), ["caller <- 408 INVITE"]);
    let t = net.caller.expect("408 INVITE");
    let m = net.caller.ack(&t);
    net.caller_sends(&m);
    net.advance(Duration::from_secs(40));
    assert_eq!(net.wire(), Vec::<String>::new());
    let cdr = net.cdrs()[0];
    assert_eq!(cdr.status, Some(Disposition::NoAnswer));
    assert_eq!(cdr.sip_code, Some(408));
    assert_eq!(cdr.hangup_by, Some(HangupBy::Relay));
    assert_eq!(cdr.end_ms, net.ms_at(32.0));
    assert!(net.plane.flows().is_empty());
}

/// A silent callee of a BYE: timer F (64*T1) ends the BYE transaction;
/// the call was already over and nothing else is sent.
#[test]
fn a_bye_nobody_answers_is_given_up_on_timer_f() {
    let mut net = Net::default();
    establish(&mut net);
    let m = net.caller.request("BYE", None);
    net.caller_sends(&m);
    assert_eq!(net.wire(), ["caller <- 200 BYE", "callee <- BYE"]);
    net.advance(Duration::from_secs(32));
    let resent = net.wire();
    assert_eq!(
        resent.len(),
        10,
        "timer E: 0.5, 1, 2, then every T2 (4 s) {resent:?}"
    );
    assert!(resent.iter().all(|l| l == "callee <- BYE"));
    net.advance(Duration::from_secs(40));
    assert_eq!(net.wire(), Vec::<String>::new(), "given up");
    assert_eq!(net.cdrs().len(), 1);
    assert_eq!(net.cdrs()[0].hangup_by, Some(HangupBy::Caller));
}

/// Session timers (RFC 4028): an unrefreshed session ends with BYEs both
/// ways at its interval; a re-INVITE refresh keeps it up another interval.
#[test]
fn session_timer_expires_unless_refreshed() {
    let mut net = Net::default();
    let mut inv = net.caller.invite("6000", &sdp("192.0.2.10", 4000));
    inv.add_header("Supported", "timer");
    inv.add_header("Session-Expires", "120;refresher=uac");
    net.caller.invite = Some(inv.clone());
    net.caller_sends(&inv);
    net.caller.expect("100 INVITE");
    let b_inv = net.callee.expect("INVITE");
    assert_eq!(b_inv.header("Session-Expires"), Some("120;refresher=uac"));
    let mut ok = net
        .callee
        .respond(&b_inv, 200, Some(&sdp("192.0.2.20", 5000)));
    ok.add_header("Require", "timer");
    ok.add_header("Session-Expires", "120;refresher=uac");
    net.callee_sends(&ok);
    net.callee.expect("ACK");
    let ok_a = net.caller.expect("200 INVITE");
    assert_eq!(ok_a.header("Session-Expires"), Some("120;refresher=uac"));
    let m = net.caller.ack(&ok_a);
    net.caller_sends(&m);
    net.wire();

    // The caller refreshes at 60 s: relayed, answered, the timer restarts.
    net.advance(Duration::from_secs(60));
    let mut refresh = net.caller.request("INVITE", Some(&sdp("192.0.2.10", 4000)));
    refresh.add_header("Session-Expires", "120;refresher=uac");
    net.caller_sends(&refresh);
    assert_eq!(net.wire(), ["caller <- 100 INVITE", "callee <- INVITE"]);
    net.caller.expect("100 INVITE");
    let b_refresh = net.callee.expect("INVITE");
    let mut ok = net
        .callee
        .respond(&b_refresh, 200, Some(&sdp("192.0.2.20", 5000)));
    ok.add_header("Session-Expires", "120;refresher=uac");
    net.callee_sends(&ok);
    assert_eq!(net.wire(), ["callee <- ACK", "caller <- 200 INVITE"]);
    let ok_a = net.caller.expect("200 INVITE");
    let m = net.caller.ack(&ok_a);
    net.caller_sends(&m);
    net.advance(Duration::from_secs(119));
    assert_eq!(
        net.wire(),
        Vec::<String>::new(),
        "refreshed at 60 s: up until 180 s"
    );
    assert!(net.cdrs().is_empty());

    net.advance(Duration::from_secs(1));
    assert_eq!(net.wire(), ["caller <- BYE", "callee <- BYE"]);
    let cdr = net.cdrs()[0];
    assert_eq!(cdr.status, Some(Disposition::Answered));
    assert_eq!(cdr.hangup_by, Some(HangupBy::Relay));
    assert_eq!(cdr.sip_reason.as_deref(), Some("Session timer expired"));
    assert_eq!(cdr.end_ms, net.ms_at(180.0));
    assert!(net.plane.flows().is_empty());
}

/// Both sides re-INVITE at once (glare): each gets 491 from whoever holds
/// an INVITE of its own in that dialog (RFC 3261 §14.1), the relay for the
/// callee's, the callee for the caller's (relayed back).
#[test]
fn reinvite_glare_gets_491() {
    let mut net = Net::default();
    establish(&mut net);
    let from_a = net.caller.request("INVITE", Some(&sdp("192.0.2.10", 4002)));
    net.caller_sends(&from_a);
    assert_eq!(net.wire(), ["caller <- 100 INVITE", "callee <- INVITE"]);
    net.caller.expect("100 INVITE");
    let relayed = net.callee.expect("INVITE");
    // The callee sent its own before the relayed one reached it.
    let from_b = net.callee.request("INVITE", Some(&sdp("192.0.2.20", 5002)));
    net.callee_sends(&from_b);
    assert_eq!(
        net.wire(),
        ["callee <- 100 INVITE", "callee <- 491 INVITE"],
        "not relayed to the caller"
    );
    net.callee.expect("100 INVITE");
    let glare = net.callee.expect("491 INVITE");
    let m = net.callee.ack(&glare);
    net.callee_sends(&m);
    let m = net.callee.respond(&relayed, 491, None);
    net.callee_sends(&m);
    assert_eq!(net.wire(), ["callee <- ACK", "caller <- 491 INVITE"]);
    let back = net.caller.expect("491 INVITE");
    let m = net.caller.ack(&back);
    net.caller_sends(&m);
    net.advance(Duration::from_secs(40));
    assert_eq!(net.wire(), Vec::<String>::new());
    assert!(net.cdrs().is_empty(), "the call stays up");
    assert!(!net.plane.flows().is_empty());
}

/// The fake data plane reports the call's flows idle beyond the media
/// timeout (20 s here): BYEs both ways, flows removed, the CDR says so.
#[test]
fn media_timeout_ends_the_call() {
    let mut net = Net::default();
    establish(&mut net);
    net.plane.set_idle(10_000);
    net.advance(Duration::from_secs(25));
    assert_eq!(
        net.wire(),
        Vec::<String>::new(),
        "media idle 10 s: still up"
    );
    net.plane.set_idle(20_000);
    // Counters are read every timeout/10 (2 s) from the answer: next at 26 s.
    net.advance(Duration::from_millis(999));
    assert_eq!(net.wire(), Vec::<String>::new());
    net.advance(Duration::from_millis(1));
    assert_eq!(net.wire(), ["caller <- BYE", "callee <- BYE"]);
    let bye = net.caller.expect("BYE");
    let ok = net.caller.respond(&bye, 200, None);
    net.caller_sends(&ok);
    let bye = net.callee.expect("BYE");
    let ok = net.callee.respond(&bye, 200, None);
    net.callee_sends(&ok);
    net.advance(Duration::from_secs(40));
    assert_eq!(net.wire(), Vec::<String>::new(), "both BYEs answered");
    let cdr = net.cdrs()[0];
    assert_eq!(cdr.status, Some(Disposition::Answered));
    assert_eq!(cdr.hangup_by, Some(HangupBy::Relay));
    assert_eq!(cdr.sip_reason.as_deref(), Some("Media timeout"));
    assert_eq!(cdr.end_ms, net.ms_at(26.0));
    assert!(net.plane.flows().is_empty());
}

/// Least-cost routing for 44...: carrier 1's gateway 11 (silent, at
/// 192.0.2.31) first, then carrier 2's gateway 21 (the callee).
fn lcr_net(ping_secs: u64) -> Net {
    let mut sip = sip_config();
    sip.ring_timeout_secs = 90;
    sip.lcr.ping_secs = ping_secs;
    sip.routes.push(RouteConfig {
        pattern: "44*".into(),
        target: Some("lcr".into()),
        reject: None,
        reason: None,
        srtp: None,
        record: None,
        org: None,
    });
    let mut net = Net::new(sip, media_config());
    let mut t = LcrTable::default();
    t.add_number("44", 1);
    t.add_carrier(1, "first");
    t.add_carrier(2, "second");
    t.add_rate(1, 1, 0.01);
    t.add_rate(1, 2, 0.02);
    for (id, carrier, at) in [(11, 1, "192.0.2.31:5060"), (21, 2, CALLEE)] {
        t.add_gateway(Gateway {
            id,
            carrier,
            addr: addr(at),
            priority: 0,
            strip: 0,
            prefix: String::new(),
        });
    }
    net.b2b.set_lcr(net.now, t);
    net
}

/// Timer B on a silent gateway: the call fails over to the next one as a
/// new B leg (same offer), and the CDR names the gateway that answered.
#[test]
fn a_silent_gateway_fails_over_to_the_next_on_timer_b() {
    let mut net = lcr_net(0);
    let inv = net.caller.invite("447700", &sdp("192.0.2.10", 4000));
    net.caller_sends(&inv);
    assert_eq!(
        net.wire(),
        ["caller <- 100 INVITE", "192.0.2.31:5060 <- INVITE"]
    );
    net.advance(Duration::from_millis(31_999));
    assert_eq!(net.wire(), ["192.0.2.31:5060 <- INVITE"; 6]);
    net.advance(Duration::from_millis(1));
    assert_eq!(
        net.wire(),
        ["callee <- INVITE"],
        "no 408 to the caller: failover"
    );
    net.caller.expect("100 INVITE");
    let b_inv = net.callee.expect("INVITE");
    assert_eq!(
        b_inv.request_uri(),
        Some(format!("sip:447700@{CALLEE}").as_str())
    );
    let ok = net
        .callee
        .respond(&b_inv, 200, Some(&sdp("192.0.2.20", 5000)));
    net.callee_sends(&ok);
    assert_eq!(net.wire(), ["callee <- ACK", "caller <- 200 INVITE"]);
    let ok_a = net.caller.expect("200 INVITE");
    let ack = net.caller.ack(&ok_a);
    net.caller_sends(&ack);
    let bye = net.caller.request("BYE", None);
    net.caller_sends(&bye);
    let cdr = net.cdrs()[0];
    assert_eq!(cdr.status, Some(Disposition::Answered));
    assert_eq!(cdr.carrier.as_deref(), Some("second"));
    assert_eq!(cdr.gateway.as_deref(), Some("21"));
    assert_eq!(cdr.answer_ms, Some(net.ms_at(32.0)));
}

/// Both gateways fail (the first silent, the second 503): the caller gets
/// the last failure and the CDR the last gateway tried.
#[test]
fn every_gateway_failing_relays_the_last_failure() {
    let mut net = lcr_net(0);
    let inv = net.caller.invite("447700", &sdp("192.0.2.10", 4000));
    net.caller_sends(&inv);
    net.advance(Duration::from_secs(32));
    net.wire();
    let b_inv = net.callee.expect("INVITE");
    let busy = net.callee.respond(&b_inv, 503, None);
    net.callee_sends(&busy);
    assert_eq!(net.wire(), ["callee <- ACK", "caller <- 503 INVITE"]);
    let cdr = net.cdrs()[0];
    assert_eq!(cdr.status, Some(Disposition::Failed));
    assert_eq!(cdr.sip_code, Some(503));
    assert_eq!(cdr.hangup_by, Some(HangupBy::Callee));
    assert_eq!(cdr.gateway.as_deref(), Some("21"));
    assert!(net.plane.flows().is_empty());
}

/// OPTIONS pings every ping interval: a gateway that answers is up, one
/// that stays silent (timer F) is down and skipped by the next call.
#[test]
fn gateway_pings_mark_health_and_dead_gateways_are_skipped() {
    let mut net = lcr_net(30);
    net.advance(Duration::ZERO);
    assert_eq!(net.wire().len(), 2, "one OPTIONS per gateway at once");
    let ping = net.callee.expect("OPTIONS");
    let ok = net.callee.respond(&ping, 200, None);
    net.callee_sends(&ok);
    net.advance(Duration::from_secs(32));
    let mut health = net.b2b.take_health();
    health.sort();
    assert_eq!(
        health,
        [(11, false, net.ms_at(32.0)), (21, true, net.ms_at(0.0))]
    );
    net.wire();
    let inv = net.caller.invite("447700", &sdp("192.0.2.10", 4000));
    net.caller_sends(&inv);
    assert_eq!(
        net.wire(),
        ["caller <- 100 INVITE", "callee <- INVITE"],
        "the dead gateway is skipped"
    );
}

/// INVITEs refused before any call is made: each gets 100 and its final,
/// the CDR (when the attempt was admitted) a failure by the relay.
#[test]
fn refusals_before_a_call_is_made() {
    let mut sip = sip_config();
    sip.max_calls = 1;
    sip.routes.push(RouteConfig {
        pattern: "7000".into(),
        target: None,
        reject: Some(486),
        reason: Some("Busy Here".into()),
        srtp: None,
        record: None,
        org: None,
    });
    let mut net = Net::new(sip, media_config());
    let refused = |net: &mut Net, inv: Message| {
        net.caller_sends(&inv);
        net.caller.expect("100 INVITE");
        let r = net.caller.recv();
        net.wire();
        (r.code().unwrap(), r.reason().to_string(), r)
    };
    let inv = net.caller.invite("7000", &sdp("192.0.2.10", 4000));
    let (code, reason, _) = refused(&mut net, inv);
    assert_eq!(
        (code, reason.as_str()),
        (486, "Busy Here"),
        "the dialplan's"
    );
    let inv = net.caller.invite("1234", &sdp("192.0.2.10", 4000));
    assert_eq!(refused(&mut net, inv).0, 404, "no route matches");
    let mut inv = net.caller.invite("6000", "");
    inv.body.clear();
    inv.remove_header("Content-Type");
    let (code, reason, _) = refused(&mut net, inv);
    assert_eq!((code, reason.as_str()), (488, "SDP Offer Required"));
    let mut inv = net.caller.invite("6000", &sdp("192.0.2.10", 4000));
    inv.set_header("Max-Forwards", "0");
    assert_eq!(refused(&mut net, inv).0, 483);
    let mut inv = net.caller.invite("6000", &sdp("192.0.2.10", 4000));
    inv.add_header("Session-Expires", "30");
    let (code, _, r) = refused(&mut net, inv);
    assert_eq!((code, r.header("Min-SE")), (422, Some("90")));
    let mut inv = net.caller.invite("6000", &sdp("192.0.2.10", 4000));
    inv.push_front("Via", format!("SIP/2.0/UDP {RELAY};branch=z9hG4bKloop"));
    assert_eq!(refused(&mut net, inv).0, 482, "our own Via: a loop");
    assert!(net.plane.flows().is_empty(), "no media for any of them");
    let cdrs: Vec<(u16, Disposition)> = net
        .cdrs()
        .iter()
        .map(|c| (c.sip_code.unwrap(), c.status.unwrap()))
        .collect();
    assert_eq!(
        cdrs,
        [
            (486, Disposition::Failed),
            (404, Disposition::Failed),
            (488, Disposition::Failed)
        ],
        "refused before admission: no CDR"
    );
    assert!(net
        .cdrs()
        .iter()
        .all(|c| c.hangup_by == Some(HangupBy::Relay)));

    // max_calls = 1: a second call while one is up gets 503.
    invite(&mut net);
    let inv = net.caller.invite("6000", &sdp("192.0.2.10", 4002));
    let (code, _, r) = refused(&mut net, inv);
    assert_eq!((code, r.header("Retry-After")), (503, Some("5")));
}

/// Other in-dialog requests are relayed with their bodies: an INFO from
/// the callee reaches the caller as it was sent, and its answer comes
/// back; a re-INVITE's SDP is rewritten to the relay both ways.
#[test]
fn in_dialog_requests_are_relayed_with_their_bodies() {
    let mut net = Net::default();
    establish(&mut net);
    let mut info = net.callee.request("INFO", None);
    info.set_header("Content-Type", "application/dtmf-relay");
    info.body = b"Signal=5\r\nDuration=160\r\n".to_vec();
    net.callee_sends(&info);
    assert_eq!(net.wire(), ["caller <- INFO"]);
    let got = net.caller.expect("INFO");
    assert_eq!(got.header("Content-Type"), Some("application/dtmf-relay"));
    assert_eq!(got.body, info.body);
    let mut ok = net.caller.respond(&got, 200, None);
    ok.set_header("Content-Type", "text/plain");
    ok.body = b"seen".to_vec();
    net.caller_sends(&ok);
    assert_eq!(net.wire(), ["callee <- 200 INFO"]);
    let back = net.callee.expect("200 INFO");
    assert_eq!(back.body, b"seen");

    let hold = net.callee.request("INVITE", Some(&sdp("192.0.2.20", 5000)));
    net.callee_sends(&hold);
    assert_eq!(net.wire(), ["callee <- 100 INVITE", "caller <- INVITE"]);
    net.callee.expect("100 INVITE");
    let reinvite = net.caller.expect("INVITE");
    let offer = String::from_utf8_lossy(&reinvite.body).into_owned();
    assert!(offer.contains("c=IN IP4 127.0.0.1"), "{offer}");
    let ok = net
        .caller
        .respond(&reinvite, 200, Some(&sdp("192.0.2.10", 4000)));
    net.caller_sends(&ok);
    assert_eq!(net.wire(), ["caller <- ACK", "callee <- 200 INVITE"]);
    let answer = net.callee.expect("200 INVITE");
    assert!(String::from_utf8_lossy(&answer.body).contains("c=IN IP4 127.0.0.1"));
    let ack = net.callee.ack(&answer);
    net.callee_sends(&ack);
    assert_eq!(
        net.wire(),
        Vec::<String>::new(),
        "the callee's ACK is absorbed"
    );
}

/// A caller on TCP calling a target that asks for TCP: messages go back
/// over the streams and nothing is retransmitted (RFC 3261 §17: reliable
/// transports), but timers B and H still run.
#[test]
fn over_tcp_nothing_is_retransmitted() {
    let mut sip = sip_config();
    sip.routes.push(RouteConfig {
        pattern: "6001".into(),
        target: Some(format!("sip:6001@{CALLEE};transport=tcp")),
        reject: None,
        reason: None,
        srtp: None,
        record: None,
        org: None,
    });
    let mut net = Net::new(sip, media_config());
    let mut inv = net.caller.invite("6001", &sdp("192.0.2.10", 4000));
    let via = format!("SIP/2.0/TCP {CALLER};branch=z9hG4bKtcp1");
    inv.set_header("Via", via);
    net.caller.invite = Some(inv.clone());
    net.deliver_stream(addr(CALLER), Transport::Tcp, &inv);
    assert_eq!(
        net.wire(),
        ["caller <- 100 INVITE (TCP)", "callee <- INVITE (TCP)"]
    );
    net.caller.expect("100 INVITE");
    let b_inv = net.callee.expect("INVITE");
    assert!(b_inv.header("Via").unwrap().starts_with("SIP/2.0/TCP "));
    net.advance(Duration::from_secs(1));
    let ok = net
        .callee
        .respond(&b_inv, 200, Some(&sdp("192.0.2.20", 5000)));
    net.deliver_stream(addr(CALLEE), Transport::Tcp, &ok);
    assert_eq!(
        net.wire(),
        ["callee <- ACK (TCP)", "caller <- 200 INVITE (TCP)"]
    );
    net.advance(Duration::from_millis(31_999));
    assert_eq!(
        net.wire(),
        Vec::<String>::new(),
        "no 200 resent, though no ACK"
    );
    net.advance(Duration::from_millis(1));
    assert_eq!(
        net.wire(),
        ["caller <- BYE (TCP)", "callee <- BYE (TCP)"],
        "timer H: no ACK, the call ends"
    );
    assert_eq!(net.cdrs()[0].legs[1].transport.as_deref(), Some("tcp"));
}

/// The callee's 2xx fixes its dialog's route set (RFC 3261 §13.2.2.4): a
/// Record-Route only a provisional carried is not used, and one on a later
/// 2xx (to a re-INVITE) changes nothing.
#[test]
fn the_callees_2xx_fixes_the_route_set() {
    let mut net = Net::default();
    let b_inv = invite(&mut net);
    let mut ringing = net.callee.respond(&b_inv, 180, None);
    ringing.add_header("Record-Route", "<sip:early.example.com;lr>");
    net.callee_sends(&ringing);
    net.caller.expect("180 INVITE");
    let ok = net
        .callee
        .respond(&b_inv, 200, Some(&sdp("192.0.2.20", 5000)));
    net.callee_sends(&ok);
    assert_eq!(
        net.wire(),
        [
            "caller <- 180 INVITE",
            "callee <- ACK",
            "caller <- 200 INVITE"
        ]
    );
    let ack = net.callee.expect("ACK");
    assert_eq!(ack.header("Route"), None, "the 2xx had no Record-Route");
    let ok_a = net.caller.expect("200 INVITE");
    let m = net.caller.ack(&ok_a);
    net.caller_sends(&m);

    let reinvite = net.caller.request("INVITE", Some(&sdp("192.0.2.10", 4000)));
    net.caller_sends(&reinvite);
    net.caller.expect("100 INVITE");
    let relayed = net.callee.expect("INVITE");
    assert_eq!(relayed.header("Route"), None);
    let mut ok = net
        .callee
        .respond(&relayed, 200, Some(&sdp("192.0.2.20", 5000)));
    ok.add_header("Record-Route", "<sip:late.example.com;lr>");
    net.callee_sends(&ok);
    net.callee.expect("ACK");
    let ok_a = net.caller.expect("200 INVITE");
    let m = net.caller.ack(&ok_a);
    net.caller_sends(&m);
    net.wire();

    let bye = net.caller.request("BYE", None);
    net.caller_sends(&bye);
    assert_eq!(net.wire(), ["caller <- 200 BYE", "callee <- BYE"]);
    let b_bye = net.callee.expect("BYE");
    assert_eq!(b_bye.header("Route"), None, "the route set stayed empty");
}

/// An in-dialog request with a CSeq lower than the last one from its side
/// is out of order: answered 500 and not relayed (RFC 3261 §12.2.2), on
/// either leg; the call goes on.
#[test]
fn an_out_of_order_cseq_is_answered_500() {
    let mut net = Net::default();
    establish(&mut net);
    let info = net.caller.request("INFO", None);
    net.caller_sends(&info);
    let got = net.callee.expect("INFO");
    let m = net.callee.respond(&got, 200, None);
    net.callee_sends(&m);
    assert_eq!(net.wire(), ["callee <- INFO", "caller <- 200 INFO"]);
    net.caller.expect("200 INFO");
    let mut stale = net.caller.request("INFO", None);
    stale.set_header("CSeq", "1 INFO");
    net.caller_sends(&stale);
    assert_eq!(net.wire(), ["caller <- 500 INFO"], "not relayed");
    net.caller.expect("500 INFO");

    let info = net.callee.request("INFO", None);
    net.callee_sends(&info);
    let got = net.caller.expect("INFO");
    let m = net.caller.respond(&got, 200, None);
    net.caller_sends(&m);
    assert_eq!(net.wire(), ["caller <- INFO", "callee <- 200 INFO"]);
    net.callee.expect("200 INFO");
    let mut stale = net.callee.request("INFO", None);
    stale.set_header("CSeq", "0 INFO");
    net.callee_sends(&stale);
    assert_eq!(net.wire(), ["callee <- 500 INFO"], "not relayed");

    let bye = net.caller.request("BYE", None);
    net.caller_sends(&bye);
    assert_eq!(net.wire(), ["caller <- 200 BYE", "callee <- BYE"]);
    assert_eq!(net.cdrs()[0].status, Some(Disposition::Answered));
}

/// A callee that sends no Contact: its 180 makes no dialog, so a request
/// the caller sends in its early dialog has nowhere to go (481); its 200
/// leaves it reached at the INVITE's Request-URI, as before.
#[test]
fn a_callee_without_contact_is_reached_at_the_request_uri() {
    let mut net = Net::default();
    let b_inv = invite(&mut net);
    let mut ringing = net.callee.respond(&b_inv, 180, None);
    ringing.remove_header("Contact");
    net.callee_sends(&ringing);
    let ringing_a = net.caller.expect("180 INVITE");
    net.caller.dialog.remote_tag = ringing_a.to_tag();
    let info = net.caller.request("INFO", None);
    net.caller_sends(&info);
    assert_eq!(net.wire(), ["caller <- 180 INVITE", "caller <- 481 INFO"]);
    net.caller.expect("481 INFO");

    let mut ok = net
        .callee
        .respond(&b_inv, 200, Some(&sdp("192.0.2.20", 5000)));
    ok.remove_header("Contact");
    net.callee_sends(&ok);
    assert_eq!(net.wire(), ["callee <- ACK", "caller <- 200 INVITE"]);
    let ack = net.callee.expect("ACK");
    assert_eq!(ack.request_uri(), b_inv.request_uri());
    assert_eq!(ack.to_tag(), Some(net.callee.dialog.local_tag.clone()));
    let ok_a = net.caller.expect("200 INVITE");
    let m = net.caller.ack(&ok_a);
    net.caller_sends(&m);
    let bye = net.caller.request("BYE", None);
    net.caller_sends(&bye);
    assert_eq!(net.wire(), ["caller <- 200 BYE", "callee <- BYE"]);
    let b_bye = net.callee.expect("BYE");
    assert_eq!(b_bye.request_uri(), b_inv.request_uri());
}

/// A route with `srtp = "sdes"`: the callee is offered SDES-SRTP, its
/// answer's key decrypts what it sends and the relay's key of the tag it
/// picked encrypts what it gets; the caller keeps plain RTP, also through
/// a re-INVITE that names no profile.
#[test]
fn a_route_with_srtp_sdes_offers_the_callee_srtp_and_transcrypts() {
    use tollgate::b2bua::config::RouteSrtp;
    use tollgate_dataplane::pipeline::StageSpec;
    let mut sip = sip_config();
    sip.routes[0].srtp = Some(RouteSrtp::Sdes);
    let mut net = Net::new(sip, media_config());
    let b_inv = invite(&mut net);
    let offer = String::from_utf8_lossy(&b_inv.body).to_string();
    assert!(offer.contains(" RTP/SAVP 0"), "{offer}");
    assert!(
        offer.contains("a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{offer}"
    );
    let answer = sdp("192.0.2.20", 5000).replace("RTP/AVP", "RTP/SAVP")
        + "a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj\r\n";
    let ok = net.callee.respond(&b_inv, 200, Some(&answer));
    net.callee_sends(&ok);
    net.wire();
    net.callee.expect("ACK");
    let ok_a = net.caller.expect("200 INVITE");
    let to_caller = String::from_utf8_lossy(&ok_a.body).to_string();
    assert!(
        to_caller.contains(" RTP/AVP 0") && !to_caller.contains("crypto"),
        "{to_caller}"
    );
    let stages = |port: u16| -> Vec<&'static str> {
        let flows = net.plane.flows();
        let f = flows
            .values()
            .find(|f| f.destination.port() == port)
            .expect("a flow");
        f.stages
            .iter()
            .map(|s| match s {
                StageSpec::SrtpDecrypt(_) => "decrypt",
                StageSpec::SrtpEncrypt(_) => "encrypt",
                _ => "other",
            })
            .collect()
    };
    assert_eq!(stages(5000), ["encrypt"], "towards the callee");
    assert_eq!(stages(4000), ["decrypt"], "from the callee");
    let ack = net.caller.ack(&ok_a);
    net.caller_sends(&ack);
    net.wire();
    let reinvite = net.caller.request("INVITE", Some(&sdp("192.0.2.10", 4000)));
    net.caller_sends(&reinvite);
    net.wire();
    let b_re = net.callee.expect("INVITE");
    let again = String::from_utf8_lossy(&b_re.body).to_string();
    assert!(
        again.contains(" RTP/SAVP 0") && again.contains("a=crypto:5 "),
        "{again}"
    );
}
