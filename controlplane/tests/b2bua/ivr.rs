//! Calls the IVR answers, on virtual time: what the caller's flow plays
//! as the engine walks, digits from the data plane's events and from SIP
//! INFO, the digit timer, the IVR's BYE and the one CDR; and a transfer
//! bridged on the callee's answer.

use super::harness::*;
use std::net::SocketAddr;
use std::time::Duration;
use tollgate::b2bua::config::{RouteConfig, SipConfig};
use tollgate::ivr::config::IvrConfig;
use tollgate::ivr::engine::Engine;
use tollgate::ivr::menu::{MenuRow, Menus, OptionRow};
use tollgate_cdr::model::HangupBy;
use tollgate_dataplane::pipeline::{EventKind, StageSpec};

/// `main` (prompt 7): 1 hangs up, 2 transfers to the callee.
fn menus() -> Menus {
    let menu = MenuRow {
        menu_id: "main".into(),
        name: "Main".into(),
        welcome_message: "prompt:7".into(),
    };
    let option = |digit: &str, action_type: &str, value: Option<String>| OptionRow {
        menu_id: "main".into(),
        digit: digit.into(),
        action_type: action_type.into(),
        action_value: value,
    };
    let options = vec![
        option("1", "hangup", None),
        option("2", "transfer", Some(format!("sip:6000@{CALLEE}"))),
    ];
    let (menus, left_out) = Menus::from_rows(vec![menu], options);
    assert!(left_out.is_empty(), "{left_out:?}");
    menus
}

/// A relay whose 8000 is the IVR's `main` (one retry, 2 s to press; its
/// invalid prompt, 99, is not in the data plane's cache), prompt 7 loaded.
fn ivr_net() -> Net {
    tollgate_dataplane::prompt::insert(7, &[0; 800]);
    let sip = SipConfig {
        routes: vec![RouteConfig {
            pattern: "8000".into(),
            target: Some("ivr:main".into()),
            ..RouteConfig::default()
        }],
        ..sip_config()
    };
    let mut net = Net::new(sip, media_config());
    let cfg = IvrConfig {
        digit_timeout_ms: 2000,
        max_retries: 1,
        invalid_prompt: "prompt:99".into(),
        ..IvrConfig::default()
    };
    net.b2b.set_ivr(Engine::new(&cfg, menus()));
    net
}

/// The caller offers PCMU and telephone-event 101 at 192.0.2.10:4000.
fn offer() -> String {
    sdp("192.0.2.10", 4000).replace(
        "RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        "RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
    )
}

/// The caller calls 8000 and ACKs the IVR's 200: the IVR's port.
fn answered(net: &mut Net) -> SocketAddr {
    let inv = net.caller.invite("8000", &offer());
    net.caller_sends(&inv);
    assert_eq!(net.wire(), ["caller <- 100 INVITE", "caller <- 200 INVITE"]);
    net.caller.expect("100 INVITE");
    let ok = net.caller.expect("200 INVITE");
    let body = String::from_utf8_lossy(&ok.body).into_owned();
    assert!(body.contains(" RTP/AVP 0 101\r\n"), "{body}");
    let ack = net.caller.ack(&ok);
    net.caller_sends(&ack);
    let port = sdp_port(&ok);
    assert!((30000..30100).contains(&port), "{port}");
    addr(&format!("127.0.0.1:{port}"))
}

/// What the caller's flow at `local` plays (behind digit detection).
fn heard(net: &Net, local: SocketAddr) -> String {
    let flow = net.plane.flow(local).expect("the IVR's flow");
    assert_eq!(flow.destination, addr("192.0.2.10:4000"));
    let detect = StageSpec::DtmfDetect {
        payload_type: 101,
        consume: true,
    };
    match &flow.stages[..] {
        [StageSpec::Tone { repeat: 0, .. }] => "ringback".into(),
        [d, StageSpec::Prompt { prompt, .. }] if *d == detect => format!("prompt {prompt}"),
        [d, StageSpec::Tone { .. }] if *d == detect => "beep".into(),
        [d, StageSpec::Silence { .. }] if *d == detect => "silence".into(),
        other => format!("{other:?}"),
    }
}

#[test]
fn timeouts_lead_to_goodbye_and_the_ivrs_bye_with_one_cdr() {
    let mut net = ivr_net();
    let local = answered(&mut net);
    assert_eq!(heard(&net, local), "prompt 7");
    net.plane
        .push_event(local, EventKind::PromptDone { prompt: 7 });
    net.advance(Duration::from_millis(20));
    assert_eq!(heard(&net, local), "silence", "waiting for a digit");
    // No digit in 2 s: the timeout notice (text: a beep for now), the menu
    // again, no digit again: goodbye, then the IVR hangs up.
    net.advance(Duration::from_millis(2000));
    let wire = net.wire();
    assert!(wire.is_empty(), "{wire:?} {:?}", net.cdrs());
    assert_eq!(heard(&net, local), "beep");
    net.plane.push_event(local, EventKind::ToneDone);
    net.advance(Duration::from_millis(20));
    assert_eq!(heard(&net, local), "prompt 7");
    net.plane
        .push_event(local, EventKind::PromptDone { prompt: 6 });
    net.advance(Duration::from_millis(20));
    assert_eq!(
        heard(&net, local),
        "prompt 7",
        "another prompt's end is not this one's"
    );
    net.plane
        .push_event(local, EventKind::PromptDone { prompt: 7 });
    net.advance(Duration::from_millis(2020));
    assert_eq!(heard(&net, local), "beep", "goodbye");
    assert!(net.wire().is_empty());
    net.plane.push_event(local, EventKind::ToneDone);
    net.advance(Duration::from_millis(20));
    assert_eq!(net.wire(), ["caller <- BYE"]);
    assert!(net.plane.flow(local).is_none(), "the flow is removed");
    assert_eq!(net.sessions.ports_in_use(), 0, "the port is given back");
    let bye = net.caller.expect("BYE");
    let ok = net.caller.respond(&bye, 200, None);
    net.caller_sends(&ok);
    net.advance(Duration::from_secs(40));
    let cdrs = net.cdrs();
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(cdrs[0].hangup_by, Some(HangupBy::Relay));
    assert_eq!(
        cdrs[0].sip_reason.as_deref(),
        Some("IVR hangup; menus main; digits none")
    );
    assert_eq!(cdrs[0].trunk.as_deref(), Some("ivr:main"));
}

#[test]
fn rfc4733_and_info_digits_reach_the_engine() {
    let mut net = ivr_net();
    let local = answered(&mut net);
    // A digit during the prompt cuts it short; 9 is no option: the invalid
    // notice, not in the cache, plays as the beep.
    let nine = EventKind::Dtmf {
        digit: '9',
        duration_ms: 100,
        volume: 10,
    };
    net.plane.push_event(local, nine);
    net.advance(Duration::from_millis(20));
    assert_eq!(heard(&net, local), "beep");
    let mut junk = net.caller.request("INFO", None);
    junk.set_header("Content-Type", "application/dtmf-relay");
    junk.body = b"Signal=77\r\n".to_vec();
    net.caller_sends(&junk);
    assert_eq!(net.wire(), ["caller <- 400 INFO"], "no digit in it");
    net.caller.expect("400 INFO");
    let mut info = net.caller.request("INFO", None);
    info.set_header("Content-Type", "application/dtmf-relay");
    info.body = b"Signal=1\r\nDuration=160\r\n".to_vec();
    net.caller_sends(&info);
    assert_eq!(net.wire(), ["caller <- 200 INFO", "caller <- BYE"]);
    net.caller.expect("200 INFO");
    let cdrs = net.cdrs();
    assert_eq!(cdrs.len(), 1);
    assert_eq!(
        cdrs[0].sip_reason.as_deref(),
        Some("IVR hangup; menus main; digits 91")
    );
}

#[test]
fn a_transfer_calls_the_callee_from_a_second_port_and_bridges_on_answer() {
    let mut net = ivr_net();
    let local = answered(&mut net);
    let two = EventKind::Dtmf {
        digit: '2',
        duration_ms: 100,
        volume: 10,
    };
    net.plane.push_event(local, two);
    net.advance(Duration::from_millis(20));
    assert_eq!(net.wire(), ["callee <- INVITE"]);
    assert_eq!(heard(&net, local), "ringback");
    let b_inv = net.callee.recv();
    let b_port = sdp_port(&b_inv);
    assert!((30000..30100).contains(&b_port) && b_port != local.port());
    let ok = net
        .callee
        .respond(&b_inv, 200, Some(&sdp("192.0.2.20", 5000)));
    net.callee_sends(&ok);
    assert_eq!(
        net.wire(),
        ["callee <- ACK"],
        "the caller gets no re-INVITE"
    );
    net.callee.expect("ACK");
    let b_local = addr(&format!("127.0.0.1:{b_port}"));
    let (a_flow, b_flow) = (
        net.plane.flow(local).unwrap(),
        net.plane.flow(b_local).unwrap(),
    );
    assert_eq!(
        (a_flow.source, a_flow.destination, a_flow.stages.len()),
        (b_local, addr("192.0.2.20:5000"), 0)
    );
    assert_eq!(
        (b_flow.source, b_flow.destination),
        (local, addr("192.0.2.10:4000"))
    );
    // The callee hangs up: 200, BYE to the caller, one CDR with both legs.
    let bye = net.callee.request("BYE", None);
    net.callee_sends(&bye);
    assert_eq!(net.wire(), ["callee <- 200 BYE", "caller <- BYE"]);
    assert!(net.plane.flows().is_empty());
    assert_eq!(net.sessions.ports_in_use(), 0);
    let cdrs = net.cdrs();
    assert_eq!(cdrs.len(), 1);
    assert_eq!(cdrs[0].hangup_by, Some(HangupBy::Callee));
    assert_eq!(cdrs[0].legs.len(), 2, "{:?}", cdrs[0]);
    assert_eq!(
        cdrs[0].sip_reason.as_deref(),
        Some(
            format!("IVR transfer to sip:6000@{CALLEE}, callee hung up; menus main; digits 2")
                .as_str()
        )
    );
}

#[test]
fn a_busy_transfer_target_puts_the_caller_back_in_the_menu() {
    let mut net = ivr_net();
    let local = answered(&mut net);
    let digit = |d| EventKind::Dtmf {
        digit: d,
        duration_ms: 100,
        volume: 10,
    };
    net.plane.push_event(local, digit('2'));
    net.advance(Duration::from_millis(20));
    assert_eq!(net.wire(), ["callee <- INVITE"]);
    let b_inv = net.callee.recv();
    let busy = net.callee.respond(&b_inv, 486, None);
    net.callee_sends(&busy);
    assert_eq!(net.wire(), ["callee <- ACK"], "no BYE to the caller");
    assert_eq!(heard(&net, local), "prompt 7", "the menu again");
    assert_eq!(net.plane.flows().len(), 1, "the callee's port is gone");
    assert_eq!(net.sessions.ports_in_use(), 1);
    net.plane.push_event(local, digit('1'));
    net.advance(Duration::from_millis(20));
    assert_eq!(net.wire(), ["caller <- BYE"]);
    let cdrs = net.cdrs();
    assert_eq!(cdrs.len(), 1);
    assert_eq!(
        cdrs[0].sip_reason.as_deref(),
        Some("IVR hangup; menus main>main; digits 21")
    );
}
