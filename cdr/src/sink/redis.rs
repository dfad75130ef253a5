//! Real-time call state in Redis, as the other services of the platform
//! read it: the SET `active_calls` of call ids, a HASH `session:{call_id}`
//! per call (with a TTL, so a lost end cannot leave it forever), and each
//! event as JSON on the `call_events` channel. A batch is one MULTI/EXEC
//! pipeline. The state commands are idempotent and replays come in order,
//! so a replayed batch leaves the same state; PUBLISH is at least once
//! (subscribers drop repeats by the event's call id and name).

use super::{Sink, SinkError};
use crate::model::Record;
use redis::aio::MultiplexedConnection;

impl From<redis::RedisError> for SinkError {
    fn from(e: redis::RedisError) -> Self {
        SinkError(format!("Redis: {e}"))
    }
}

pub struct RedisSink {
    url: String,
    session_ttl: u64,
    ended_ttl: u64,
    conn: Option<MultiplexedConnection>,
}

impl RedisSink {
    pub fn new(url: String, session_ttl: u64, ended_ttl: u64) -> Self {
        RedisSink {
            url,
            session_ttl,
            ended_ttl,
            conn: None,
        }
    }

    fn pipeline(&self, batch: &[(u64, Record)]) -> redis::Pipeline {
        let mut p = redis::pipe();
        p.atomic();
        for (_, rec) in batch {
            let id = rec.call_id();
            let key = format!("session:{id}");
            match rec {
                Record::Started(s) => {
                    p.sadd("active_calls", id).ignore();
                    p.hset_multiple(
                        &key,
                        &[
                            ("call_id", id.to_string()),
                            ("status", "ringing".into()),
                            ("from_number", s.from_number.clone()),
                            ("to_number", s.to_number.clone()),
                            ("start_ms", s.at_ms.to_string()),
                            (
                                "source_ip",
                                s.source_ip.map(|a| a.to_string()).unwrap_or_default(),
                            ),
                            ("org_id", s.org_id.clone().unwrap_or_default()),
                        ],
                    )
                    .ignore();
                    p.expire(&key, self.session_ttl as i64).ignore();
                }
                Record::Answered { at_ms, .. } => {
                    p.hset_multiple(
                        &key,
                        &[
                            ("status", "answered".to_string()),
                            ("answer_ms", at_ms.to_string()),
                        ],
                    )
                    .ignore();
                    p.expire(&key, self.session_ttl as i64).ignore();
                }
                Record::Ended(c) => {
                    p.srem("active_calls", id).ignore();
                    p.hset_multiple(
                        &key,
                        &[
                            ("call_id", id.to_string()),
                            ("status", c.disposition().as_str().to_string()),
                            ("end_ms", c.end_ms.to_string()),
                            ("duration", c.duration_secs().to_string()),
                        ],
                    )
                    .ignore();
                    p.expire(&key, self.ended_ttl as i64).ignore();
                }
            }
            let json = serde_json::to_string(rec).expect("records serialise");
            p.publish("call_events", json).ignore();
        }
        p
    }
}

impl Sink for RedisSink {
    async fn deliver(&mut self, batch: &[(u64, Record)]) -> Result<(), SinkError> {
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => {
                redis::Client::open(self.url.as_str())?
                    .get_multiplexed_tokio_connection()
                    .await?
            }
        };
        let () = self.pipeline(batch).query_async(&mut conn).await?;
        self.conn = Some(conn);
        Ok(())
    }
}
