//! Call events on RabbitMQ (AMQP 0-9-1 through lapin): a durable topic
//! exchange (`events` by default), routing keys `call.started`,
//! `call.answered` and `call.ended`, JSON bodies, persistent messages.
//! The channel is in confirm mode and a batch counts as delivered only
//! when the broker has confirmed every message, so the spool cursor never
//! passes a message the broker might not have. A crash between the
//! confirms and the cursor moving publishes those messages again: delivery
//! is at least once, and `message_id` (`{call_id}/{event}`) is the key a
//! consumer drops repeats by.

use super::{Sink, SinkError};
use crate::model::Record;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::publisher_confirm::{Confirmation, PublisherConfirm};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

impl From<lapin::Error> for SinkError {
    fn from(e: lapin::Error) -> Self {
        SinkError(format!("AMQP: {e}"))
    }
}

pub struct AmqpSink {
    url: String,
    exchange: String,
    link: Option<(Connection, Channel)>,
}

impl AmqpSink {
    pub fn new(url: String, exchange: String) -> Self {
        AmqpSink {
            url,
            exchange,
            link: None,
        }
    }

    async fn publish(&self, channel: &Channel, batch: &[(u64, Record)]) -> Result<(), SinkError> {
        let mut confirms = Vec::with_capacity(batch.len());
        for (_, rec) in batch {
            let body = serde_json::to_vec(rec).expect("records serialise");
            let key = rec.dedup_key();
            confirms.push(send(channel, &self.exchange, rec.event(), &key, &body).await?);
        }
        for c in confirms {
            confirmed(c.await?)?;
        }
        Ok(())
    }
}

/// A connection and a confirm-mode channel to `url`, with the durable
/// topic `exchange` declared.
pub async fn connect(url: &str, exchange: &str) -> Result<(Connection, Channel), SinkError> {
    let props = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    let conn = Connection::connect(url, props).await?;
    let channel = conn.create_channel().await?;
    channel
        .exchange_declare(
            exchange,
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok((conn, channel))
}

/// Publishes one persistent JSON message; the broker's confirm comes with
/// the returned future (check it with [`confirmed`]).
pub async fn send(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    message_id: &str,
    body: &[u8],
) -> Result<PublisherConfirm, SinkError> {
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(message_id.into())
        .with_timestamp((crate::model::now_ms() / 1000) as u64);
    Ok(channel
        .basic_publish(
            exchange,
            routing_key,
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await?)
}

/// An error unless the broker acknowledged the message.
pub fn confirmed(c: Confirmation) -> Result<(), SinkError> {
    if c.is_nack() {
        return Err(SinkError(
            "AMQP: the broker refused (nacked) a message".into(),
        ));
    }
    Ok(())
}

impl Sink for AmqpSink {
    async fn deliver(&mut self, batch: &[(u64, Record)]) -> Result<(), SinkError> {
        let link = match self.link.take() {
            Some(l) if l.1.status().connected() => l,
            _ => connect(&self.url, &self.exchange).await?,
        };
        self.publish(&link.1, batch).await?;
        self.link = Some(link);
        Ok(())
    }
}
