//! `recording.ready` on the events exchange: for every AMQP sink in
//! `[cdr]`, a persistent JSON message (the recording's row) published
//! through the CDR crate's AMQP link and confirmed by the broker before the
//! step counts as done. A crash before the journal notes it publishes again:
//! at least once, with `message_id` `{recording_id}/recording.ready` for
//! consumers to drop repeats.

use crate::catalog::RecordingRow;
use tollgate_cdr::sink::amqp;
use tollgate_cdr::sink::SinkError;

pub const ROUTING_KEY: &str = "recording.ready";

/// One broker to tell, connected on first use and again after a failure.
pub struct Publisher {
    url: String,
    exchange: String,
    link: Option<(lapin::Connection, lapin::Channel)>,
}

impl Publisher {
    pub fn new(url: String, exchange: String) -> Publisher {
        Publisher {
            url,
            exchange,
            link: None,
        }
    }

    pub async fn publish(&mut self, row: &RecordingRow) -> Result<(), SinkError> {
        let link = match self.link.take() {
            Some(l) if l.1.status().connected() => l,
            _ => amqp::connect(&self.url, &self.exchange).await?,
        };
        let body = serde_json::to_vec(row).expect("rows serialise");
        let id = format!("{}/{ROUTING_KEY}", row.recording_id);
        let confirm = amqp::send(&link.1, &self.exchange, ROUTING_KEY, &id, &body).await?;
        amqp::confirmed(confirm.await.map_err(SinkError::from)?)?;
        self.link = Some(link);
        Ok(())
    }
}
