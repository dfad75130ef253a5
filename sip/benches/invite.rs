//! What one incoming INVITE costs the SIP thread: parsing it, and parsing
//! it plus the header reads the B2BUA makes while handling it (validation,
//! transaction key, dialog tags, Call-ID, CSeq, the Via loop check,
//! Max-Forwards, From/To/Contact name-addrs), through the API the B2BUA
//! uses today, and the same reads through the typed view (`Message::view`);
//! and parse plus building the view, what parsing it eagerly would cost.
//! `cargo bench -p tollgate-sip`. It prints allocations per INVITE first.
//! On a shared or virtual machine, instruction counts are steadier than
//! times: `valgrind --tool=callgrind <the invite bench binary> --bench
//! --profile-time 1`, then `callgrind_annotate --inclusive=yes --tree=caller`
//! gives each function's instructions and calls.

use criterion::{criterion_group, criterion_main, Criterion};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use tollgate_sip::message::{Message, NameAddr};

/// Counts heap allocations, a figure the machine's load cannot blur.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations<T>(f: impl Fn() -> T) -> usize {
    let before = ALLOCATIONS.load(Relaxed);
    black_box(f());
    ALLOCATIONS.load(Relaxed) - before
}

const INVITE: &[u8] = b"INVITE sip:6000@198.51.100.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---e3bb36e0c23d1c2c;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:alice@192.0.2.10:5060;transport=UDP>\r\n\
To: <sip:6000@198.51.100.1>\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=a73kszlfl\r\n\
Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Content-Type: application/sdp\r\n\
Supported: replaces, norefersub, extended-refer, timer, X-cisco-serviceuri\r\n\
User-Agent: Z 5.4.12 v2.10.13.2\r\n\
Allow-Events: presence, kpml, talk\r\n\
Content-Length: 130\r\n\
\r\n\
v=0\r\n\
o=Z 0 0 IN IP4 192.0.2.10\r\n\
s=Z\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 8000 RTP/AVP 0 8 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

/// The reads `b2bua` makes on an INVITE between receiving it and sending
/// the B-leg INVITE (receive, transaction key, on_invite, the A-leg dialog).
fn b2bua_reads(m: &Message) -> usize {
    let mut n = 0;
    m.validate().unwrap();
    n += m.method().map_or(0, str::len);
    n += usize::from(m.to_tag().is_none());
    let via = m.top_via().unwrap();
    n += via.branch().map_or(0, str::len);
    n += m.cseq().unwrap().0 as usize;
    n += m.header_values("Via").len();
    n += m.call_id().map_or(0, str::len);
    n += m.max_forwards().unwrap_or(0) as usize;
    for h in ["From", "To", "From"] {
        n += NameAddr::parse(m.header(h).unwrap()).unwrap().uri.len();
    }
    n += m.from_tag().map_or(0, |t| t.len());
    n += m.header_values("Contact").len();
    n += m.header_values("Record-Route").len();
    n
}

/// The same reads through the typed view, as the B2BUA will make them.
fn view_reads(m: &Message) -> usize {
    let mut n = 0;
    m.validate().unwrap();
    let v = m.view();
    n += m.request_method().map_or(0, |m| m.as_str().len());
    n += usize::from(v.to_tag().is_none());
    n += v.via().unwrap().branch.map_or(0, str::len);
    n += v.cseq().unwrap().number as usize;
    n += m.values("Via").count();
    n += v.call_id().map_or(0, str::len);
    n += v.max_forwards().unwrap().unwrap_or(0) as usize;
    for h in [v.from(), v.to(), v.from()] {
        n += h.unwrap().uri.len();
    }
    n += v.from_tag().map_or(0, str::len);
    n += usize::from(v.contact().unwrap().is_some());
    n += m.values("Record-Route").count();
    n
}

fn bench(c: &mut Criterion) {
    let parse = || Message::parse(black_box(INVITE)).unwrap();
    eprintln!(
        "allocations per INVITE: parse {}, + view {}, + B2BUA reads {}, + reads through the view {}",
        allocations(parse),
        allocations(|| parse().view().call_id().map_or(0, str::len)),
        allocations(|| b2bua_reads(&parse())),
        allocations(|| view_reads(&parse())),
    );
    c.bench_function("parse INVITE", |b| {
        b.iter(|| Message::parse(black_box(INVITE)).unwrap())
    });
    // What building the view at parse time would add to every message.
    c.bench_function("parse INVITE + build the view", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(INVITE)).unwrap();
            m.view().call_id().map_or(0, str::len)
        })
    });
    c.bench_function("parse INVITE + B2BUA reads", |b| {
        b.iter(|| b2bua_reads(&Message::parse(black_box(INVITE)).unwrap()))
    });
    c.bench_function("parse INVITE + the same reads through the view", |b| {
        b.iter(|| view_reads(&Message::parse(black_box(INVITE)).unwrap()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
