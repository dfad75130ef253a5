//! Registrations shared between nodes through Redis, so a call reaching any
//! node finds a user who registered on another. Each node keeps serving
//! from its own registrar; this task writes the users whose bindings
//! changed here to `tollgate:registration:{user}` (JSON, expiring with the
//! last binding) and announces them on the `tollgate:registrations`
//! channel, and merges what other nodes announce. At start, and after a
//! lost connection, the registrations changed here meanwhile are written
//! first (a write that failed gives its users back, so a REGISTER taken
//! while Redis was down is shared once it is back), then every stored
//! registration is read back.

use crate::b2bua::registrar::Shared;
use crate::b2bua::B2bua;
use crate::sync::lock;
use crate::time::Now;
use futures_util::StreamExt;
use redis::AsyncCommands;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CHANNEL: &str = "tollgate:registrations";
const PREFIX: &str = "tollgate:registration:";

/// Keeps registrations in step with Redis at `url` until `stop`.
pub async fn run(url: String, b2b: Arc<Mutex<B2bua>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = session(&url, &b2b, &stop).await {
            tracing::warn!(error = %e, "shared registrations: Redis unavailable; retrying");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn read(
    conn: &mut redis::aio::MultiplexedConnection,
    user: &str,
) -> redis::RedisResult<Vec<Shared>> {
    let v: Option<String> = conn.get(format!("{PREFIX}{user}")).await?;
    Ok(v.and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default())
}

async fn session(url: &str, b2b: &Mutex<B2bua>, stop: &AtomicBool) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(CHANNEL).await?;
    let mut announced = pubsub.into_on_message();
    // What changed here while Redis was away, before the stored state is
    // read back over it.
    share(&mut conn, b2b).await?;
    // Everything stored so far (subscribed first, so nothing is missed).
    let keys: Vec<String> = {
        let mut it = conn.scan_match::<_, String>(format!("{PREFIX}*")).await?;
        let mut keys = Vec::new();
        while let Some(k) = it.next_item().await {
            keys.push(k);
        }
        keys
    };
    for k in keys {
        let user = &k[PREFIX.len()..];
        let list = read(&mut conn, user).await?;
        lock(b2b).merge_registration(Now::real(), user, &list);
    }
    tracing::info!("shared registrations: in step with Redis");
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while !stop.load(Ordering::Relaxed) {
        tokio::select! {
            msg = announced.next() => {
                let Some(msg) = msg else { return Ok(()) };
                let user: String = msg.get_payload()?;
                let list = read(&mut conn, &user).await?;
                lock(b2b).merge_registration(Now::real(), &user, &list);
            }
            _ = tick.tick() => share(&mut conn, b2b).await?,
        }
    }
    Ok(())
}

/// Writes and announces the registrations changed here; if Redis fails
/// meanwhile, their users are given back to be shared on the next
/// connection.
async fn share(
    conn: &mut redis::aio::MultiplexedConnection,
    b2b: &Mutex<B2bua>,
) -> redis::RedisResult<()> {
    let changes = lock(b2b).take_registrations(Now::real());
    let users: Vec<String> = changes.iter().map(|(u, _)| u.clone()).collect();
    for (user, list) in changes {
        let key = format!("{PREFIX}{user}");
        let now = tollgate_cdr::model::now_ms();
        let ttl = list.iter().map(|b| b.expires_ms - now).max().unwrap_or(0);
        let written: redis::RedisResult<()> = async {
            if ttl > 0 {
                let json = serde_json::to_string(&list).unwrap_or_default();
                conn.pset_ex::<_, _, ()>(&key, json, ttl as u64).await?;
            } else {
                conn.del::<_, ()>(&key).await?;
            }
            conn.publish::<_, _, ()>(CHANNEL, &user).await
        }
        .await;
        if let Err(e) = written {
            lock(b2b).unshared_registrations(users);
            return Err(e);
        }
    }
    Ok(())
}
