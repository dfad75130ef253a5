//! Which SRTP implementation the transcrypt stages use, decided by packets
//! per second on one core at G.711's 160-byte payloads: Tollgate's
//! (`tollgate_dataplane::srtp`, RustCrypto underneath) beside libsrtp 2.5
//! (Debian's libsrtp2, through the tests' binding of its C API), per suite, for protect
//! (RTP in, SRTP out) and unprotect (SRTP in, RTP out). A burst of 64
//! packets per iteration with sequence numbers running on, as a relay sees
//! them; unprotect is measured on a round trip (protect, then unprotect)
//! less the protect alone. `cargo bench -p tollgate-dataplane --bench srtp`.

use criterion::{criterion_group, criterion_main, measurement::WallTime, BenchmarkGroup};
use criterion::{Criterion, Throughput};
use std::hint::black_box;
use tollgate_dataplane::srtp::{Context, Keying, MasterKey, Suite};
// The end-to-end tests' libsrtp binding, shared rather than copied; the
// bench uses only part of it.
#[allow(dead_code)]
#[path = "../../tests/src/libsrtp.rs"]
mod libsrtp;
use libsrtp::{Direction, Session};

const BURST: usize = 64;
const LEN: usize = 12 + 160;

fn key(suite: Suite) -> Vec<u8> {
    (0..suite.key_len() + suite.salt_len())
        .map(|i| i as u8 * 7 + 1)
        .collect()
}

/// Writes packet `seq` of the stream into `buf`.
fn packet(buf: &mut [u8], seq: u16) {
    buf[..12].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44]);
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[12..LEN].fill(0xd5);
}

/// The two operations of one implementation, on a buffer with room.
trait Srtp {
    fn protect(&mut self, buf: &mut [u8]) -> usize;
    fn unprotect(&mut self, buf: &mut [u8], len: usize) -> usize;
}

struct Ours(Context, Context);

impl Srtp for Ours {
    fn protect(&mut self, buf: &mut [u8]) -> usize {
        let out = LEN + self.0.rtp_overhead();
        self.0.protect_rtp(&mut buf[..out], LEN).unwrap()
    }
    fn unprotect(&mut self, buf: &mut [u8], len: usize) -> usize {
        self.1.unprotect_rtp(&mut buf[..len]).unwrap()
    }
}

struct Libsrtp(Session, Session);

impl Srtp for Libsrtp {
    fn protect(&mut self, buf: &mut [u8]) -> usize {
        self.0.protect_in_place(buf, LEN)
    }
    fn unprotect(&mut self, buf: &mut [u8], len: usize) -> usize {
        self.1.unprotect_in_place(buf, len)
    }
}

/// Measures fresh sender/receiver pairs from `make`: the round trip's
/// receiver starts where its sender does.
fn measure(g: &mut BenchmarkGroup<WallTime>, name: String, make: &dyn Fn() -> Box<dyn Srtp>) {
    let mut buf = [0u8; 256];
    let mut seq = 0u16;
    let mut imp = make();
    g.bench_function(format!("{name} protect"), |b| {
        b.iter(|| {
            for _ in 0..BURST {
                seq = seq.wrapping_add(1);
                packet(&mut buf, seq);
                black_box(imp.protect(&mut buf));
            }
        })
    });
    let (mut imp, mut seq) = (make(), 0u16);
    g.bench_function(format!("{name} round trip"), |b| {
        b.iter(|| {
            for _ in 0..BURST {
                seq = seq.wrapping_add(1);
                packet(&mut buf, seq);
                let n = imp.protect(&mut buf);
                black_box(imp.unprotect(&mut buf, n));
            }
        })
    });
}

fn srtp(c: &mut Criterion) {
    let mut g = c.benchmark_group("srtp");
    g.throughput(Throughput::Elements(BURST as u64));
    for suite in Suite::ALL {
        let k = key(suite);
        let keying = Keying {
            suite,
            key: MasterKey::new(&k).unwrap(),
            mki: None,
            lifetime: None,
        };
        let ours =
            || -> Box<dyn Srtp> { Box::new(Ours(Context::new(&keying), Context::new(&keying))) };
        measure(&mut g, format!("{}: ours", suite.name()), &ours);
        let libsrtp = || -> Box<dyn Srtp> {
            Box::new(Libsrtp(
                Session::new(suite, &k, Direction::Outbound),
                Session::new(suite, &k, Direction::Inbound),
            ))
        };
        measure(&mut g, format!("{}: libsrtp2", suite.name()), &libsrtp);
    }
    g.finish();
}

criterion_group!(benches, srtp);
criterion_main!(benches);
