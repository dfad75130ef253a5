//! `prompt`: an originating endpoint stage that plays a cached prompt
//! (see [`crate::prompt`]) as G.711 RTP: `repeat` times back to back (0:
//! until replaced), then `prompt_done` is reported and the stream either
//! goes on with silence or stops. The prompt's encoded bytes are shared
//! with every other player of it; a packet is a copy of the next slice.

use super::rtp_out::{RtpOut, HEADER};
use crate::pipeline::{Cx, EventKind};
use crate::prompt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tollgate_codec::Law;

/// What a player does once its prompt has played `repeat` times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterPrompt {
    /// Stop sending.
    #[default]
    Stop,
    /// Keep the stream alive with silence.
    Silence,
}

pub struct Player {
    id: u32,
    audio: Arc<[u8]>,
    silence: u8,
    ptime_ms: u32,
    /// Plays still to start after the current one; None: forever.
    left: Option<u32>,
    then: AfterPrompt,
    out: RtpOut,
    at: usize,
    started: bool,
    finished: bool,
}

/// The prompt's length, not its bytes (a flow's Debug may be logged).
impl std::fmt::Debug for Player {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Player")
            .field("id", &self.id)
            .field("samples", &self.audio.len())
            .field("at", &self.at)
            .field("left", &self.left)
            .field("then", &self.then)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Player {
    /// Player of prompt `id` (checked to be loaded; one unloaded since
    /// plays nothing and reports done at once).
    pub fn new(
        id: u32,
        law: Law,
        ptime_ms: u32,
        repeat: u32,
        then: AfterPrompt,
        seed: u32,
    ) -> Self {
        let audio = prompt::get(id).map_or_else(|| Arc::from(&[][..]), |p| p.encoded(law).clone());
        Player {
            id,
            audio,
            silence: law.silence(),
            ptime_ms,
            left: (repeat > 0).then(|| repeat - 1),
            then,
            out: RtpOut::new(law.payload_type(), seed),
            at: 0,
            started: false,
            finished: false,
        }
    }

    pub fn interval_ns(&self) -> u64 {
        u64::from(self.ptime_ms) * 1_000_000
    }

    pub fn originate(&mut self, cx: &mut Cx, buf: &mut [u8]) -> Option<usize> {
        if self.finished && self.then == AfterPrompt::Stop {
            return None;
        }
        let samples = 8 * self.ptime_ms as usize;
        let out = buf.get_mut(..HEADER + samples)?;
        let mut filled = HEADER;
        while filled < out.len() && !self.finished {
            let n = (out.len() - filled).min(self.audio.len() - self.at);
            out[filled..filled + n].copy_from_slice(&self.audio[self.at..self.at + n]);
            filled += n;
            self.at += n;
            if self.at == self.audio.len() {
                self.end_of_play(cx);
            }
        }
        out[filled..].fill(self.silence);
        self.out.header(out, !self.started);
        self.started = true;
        self.out.advance(samples as u32);
        Some(out.len())
    }

    /// At the end of one play: the next, or done.
    fn end_of_play(&mut self, cx: &mut Cx) {
        self.at = 0;
        match &mut self.left {
            Some(0) => {
                self.finished = true;
                cx.report(EventKind::PromptDone { prompt: self.id });
            }
            Some(n) => *n -= 1,
            // An empty prompt played forever would never fill a packet.
            None if self.audio.is_empty() => self.finished = true,
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::test_events::Events;
    use crate::wire::rtp;

    fn play(p: &mut Player, packets: usize) -> (Vec<Vec<u8>>, Vec<EventKind>) {
        let mut events = Events::new();
        let mut cx = events.cx();
        let mut buf = [0u8; 200];
        let sent = std::iter::from_fn(|| p.originate(&mut cx, &mut buf).map(|n| buf[..n].to_vec()))
            .take(packets)
            .collect();
        (sent, events.kinds())
    }

    #[test]
    fn plays_a_cached_prompt_twice_back_to_back_then_stops() {
        // 250 samples: one packet and a half each play.
        let pcm: Vec<i16> = (0..250).map(|i| (i * 100 - 12_000) as i16).collect();
        prompt::insert(9001, &pcm);
        let mut p = Player::new(9001, Law::Pcmu, 20, 2, AfterPrompt::Stop, 5);
        let (sent, events) = play(&mut p, 10);
        assert_eq!(sent.len(), 4, "500 samples in 160-sample packets");
        let audio: Vec<u8> = sent.iter().flat_map(|p| p[12..].to_vec()).collect();
        let want: Vec<u8> = pcm
            .iter()
            .chain(&pcm)
            .map(|&s| Law::Pcmu.encode(s))
            .collect();
        assert_eq!(&audio[..500], &want[..]);
        assert!(
            audio[500..].iter().all(|&c| c == 0xff),
            "silence after the end"
        );
        assert_eq!(events, vec![EventKind::PromptDone { prompt: 9001 }]);
        let first = rtp::Packet::new_checked(&sent[0][..]).unwrap();
        assert!(first.marker());
        let last = rtp::Packet::new_checked(&sent[3][..]).unwrap();
        assert_eq!(last.timestamp(), first.timestamp().wrapping_add(480));
    }

    #[test]
    fn then_silence_keeps_the_stream_going() {
        prompt::insert(9002, &[1000; 100]);
        let mut p = Player::new(9002, Law::Pcma, 20, 1, AfterPrompt::Silence, 5);
        let (sent, events) = play(&mut p, 10);
        assert_eq!(sent.len(), 10);
        assert!(sent[1..].iter().all(|p| p[12..].iter().all(|&c| c == 0xd5)));
        assert_eq!(events, vec![EventKind::PromptDone { prompt: 9002 }]);
    }
}
