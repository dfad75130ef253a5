//! CDRs through the spool into every sink kind, against real PostgreSQL,
//! MariaDB, SQLite, RabbitMQ and Redis servers started on loopback.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate_cdr::model::{CallStart, Record};
use tollgate_cdr::sink::sql::Db;
use tollgate_cdr::spool::Spool;
use tollgate_tests::cdrs::{self, all_sinks, full_cdr, landed, EventQueue};
use tollgate_tests::netns::unique;
use tollgate_tests::TempDir;

fn expected_call(call_id: &str, t0: i64) -> Vec<(String, String)> {
    let t = |ms: i64| (t0 + ms).to_string();
    [
        ("call_id", call_id.to_string()),
        ("from_number", "+15551230001".into()),
        ("to_number", "+442071230002".into()),
        ("status", "answered".into()),
        ("start_time", t(0)),
        ("end_time", t(64_200)),
        ("duration", "64".into()),
        ("recording_url", format!("s3://recordings/{call_id}.wav")),
        ("answer_time", t(2_500)),
        ("billable_seconds", "62".into()),
        ("sip_code", "200".into()),
        ("sip_reason", "OK".into()),
        ("hangup_by", "callee".into()),
        ("from_uri", "sip:+15551230001@carrier.example".into()),
        ("to_uri", "sip:+442071230002@tollgate.example".into()),
        ("request_uri", "sip:+442071230002@tollgate.example".into()),
        ("source_ip", "192.0.2.10".into()),
        ("destination_ip", "198.51.100.20".into()),
        ("transport", "udp".into()),
        ("trunk", "uk-trunk".into()),
        ("gateway", "gw2.carrier.example".into()),
        ("carrier", "CarrierB".into()),
        ("org_id", "org-42".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn expected_leg(call_id: &str, t0: i64, leg: &str) -> Vec<(String, String)> {
    let t = |ms: i64| (t0 + ms).to_string();
    let (sip_call_id, signal, media) = if leg == "a" {
        (call_id.to_string(), "192.0.2.10", "192.0.2.11")
    } else {
        (format!("{call_id}-b"), "198.51.100.20", "198.51.100.21")
    };
    [
        ("call_id", call_id.to_string()),
        ("leg", leg.to_string()),
        ("sip_call_id", sip_call_id),
        ("from_tag", format!("{leg}-from")),
        ("to_tag", format!("{leg}-to")),
        ("from_uri", "sip:+15551230001@carrier.example".into()),
        ("to_uri", "sip:+442071230002@tollgate.example".into()),
        ("request_uri", "sip:+442071230002@10.0.0.5".into()),
        ("signal_ip", signal.into()),
        ("media_ip", media.into()),
        ("transport", "udp".into()),
        ("codec", "PCMU/8000".into()),
        ("start_time", t(0)),
        ("answer_time", t(2_500)),
        ("end_time", t(64_200)),
        ("sip_code", "200".into()),
        ("rx_packets", "3000".into()),
        ("rx_bytes", "516000".into()),
        ("rx_lost", "30".into()),
        ("rx_jitter_ms", "1.25".into()),
        ("rx_mos", "4.31".into()),
        ("tx_packets", "2990".into()),
        ("tx_bytes", "514280".into()),
        ("tx_lost", "29".into()),
        ("tx_jitter_ms", "1.25".into()),
        ("tx_mos", "4.31".into()),
        ("remote_lost", "10".into()),
        ("remote_jitter_ms", "1.5".into()),
        ("rtt_ms", "38.25".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_lands_in_every_sink() {
    let dir = TempDir::new("cdr-fields");
    let cfg = all_sinks(&dir.0);
    let call_id = unique("fields");
    let t0 = 1_795_315_089_530;
    let cdr = full_cdr(&call_id, t0);

    let mut events = EventQueue::bind(&cdrs::all_sinks_url(&cfg, "amqp"), &call_id).await;
    let redis_url = cdrs::all_sinks_url(&cfg, "redis");
    let redis = redis::Client::open(redis_url.as_str()).unwrap();
    let mut pubsub = redis.get_async_pubsub().await.unwrap();
    pubsub.subscribe("call_events").await.unwrap();

    let (spool, repairs) = Spool::open(cfg.spool(), &cfg.sink_names()).unwrap();
    assert!(repairs.is_empty());
    let spool = Arc::new(spool);
    let runners = tollgate_cdr::sink::spawn_all(&spool, &cfg);
    let started = Record::Started(CallStart {
        call_id: call_id.clone(),
        at_ms: t0,
        from_number: cdr.from_number.clone(),
        to_number: cdr.to_number.clone(),
        source_ip: cdr.source_ip,
        org_id: cdr.org_id.clone(),
    });
    spool.append(&started).durable().await.unwrap();

    // While the call is up, Redis shows it as active.
    let mut conn = redis.get_multiplexed_tokio_connection().await.unwrap();
    let key = format!("session:{call_id}");
    let up = Instant::now();
    loop {
        let active: bool = redis::cmd("SISMEMBER")
            .arg("active_calls")
            .arg(&call_id)
            .query_async(&mut conn)
            .await
            .unwrap();
        if active {
            break;
        }
        assert!(
            up.elapsed() < Duration::from_secs(10),
            "Redis: {call_id} not in the SET active_calls 10 s after its call.started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status: Option<String> = redis::cmd("HGET")
        .arg(&key)
        .arg("status")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(status.as_deref(), Some("ringing"));

    let answered = Record::Answered {
        call_id: call_id.clone(),
        at_ms: t0 + 2_500,
    };
    spool.append(&answered).durable().await.unwrap();
    spool
        .append(&Record::Ended(Box::new(cdr.clone())))
        .durable()
        .await
        .unwrap();
    let s = spool.clone();
    tokio::task::spawn_blocking(move || cdrs::wait_drained(|| s.status(), Duration::from_secs(60)))
        .await
        .unwrap();

    // SQL: every column of the call row and both leg rows, in each engine.
    let pg = sqlx::PgPool::connect(&cdrs::all_sinks_url(&cfg, "postgres"))
        .await
        .unwrap();
    let my = sqlx::MySqlPool::connect(&cdrs::all_sinks_url(&cfg, "mysql"))
        .await
        .unwrap();
    let lite = sqlx::SqlitePool::connect(&cdrs::all_sinks_url(&cfg, "sqlite"))
        .await
        .unwrap();
    let got = [
        ("postgres", landed(&pg, "call_logs", &call_id).await),
        ("mariadb", landed(&my, "cdrs", &call_id).await),
        ("sqlite", landed(&lite, "call_logs", &call_id).await),
    ];
    for (engine, l) in got {
        assert_eq!(l.columns, expected_call(&call_id, t0), "{engine} call row");
        assert_eq!(l.legs.len(), 2, "{engine} legs");
        assert_eq!(l.legs[0], expected_leg(&call_id, t0, "a"), "{engine} leg a");
        assert_eq!(l.legs[1], expected_leg(&call_id, t0, "b"), "{engine} leg b");
        assert_eq!(l.record, cdr, "{engine} keeps the whole CDR");
    }

    // Export reads the same CDR back from the database.
    let db = Db::connect(
        tollgate_cdr::config::SinkKind::Postgres,
        &cdrs::all_sinks_url(&cfg, "postgres"),
    )
    .await
    .unwrap();
    let mut exported = Vec::new();
    db.export(chrono::DateTime::from_timestamp_millis(t0).unwrap(), |c| {
        if c.call_id == call_id {
            exported.push(c);
        }
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0], cdr);

    // JSON lines: the CDR with its spool sequence number.
    let lines = cdrs::jsonl(&dir.0.join("cdr.jsonl"));
    assert_eq!(lines.len(), 1, "only the finished call is a line");
    assert_eq!(lines[0]["seq"], 3);
    assert_eq!(lines[0]["event"], "call.ended");
    let mut body = lines[0].clone();
    body.as_object_mut().unwrap().remove("seq");
    assert_eq!(
        serde_json::from_value::<Record>(body).unwrap(),
        Record::Ended(Box::new(cdr.clone()))
    );

    // AMQP: three events, in order, with their routing keys and ids.
    let got = events.drain(&call_id, Duration::from_secs(2)).await;
    let keys: Vec<&str> = got.iter().map(|e| e.routing_key.as_str()).collect();
    assert_eq!(keys, ["call.started", "call.answered", "call.ended"]);
    assert_eq!(got[2].message_id, format!("{call_id}/call.ended"));
    assert_eq!(
        serde_json::from_value::<Record>(got[2].body.clone()).unwrap(),
        Record::Ended(Box::new(cdr.clone()))
    );

    // Redis: no longer active, the session shows how it ended, with a TTL,
    // and the three events were published.
    let active: bool = redis::cmd("SISMEMBER")
        .arg("active_calls")
        .arg(&call_id)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        !active,
        "Redis: {call_id} still in active_calls after its CDR"
    );
    let (status, duration): (String, String) = redis::cmd("HMGET")
        .arg(&key)
        .arg("status")
        .arg("duration")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((status.as_str(), duration.as_str()), ("answered", "64"));
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 600, "ttl {ttl}");
    let mut published = Vec::new();
    let mut stream = pubsub.on_message();
    while published.len() < 3 {
        let msg = tokio::time::timeout(
            Duration::from_secs(5),
            futures_util::StreamExt::next(&mut stream),
        )
        .await
        .expect("published events")
        .unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&msg.get_payload::<String>().unwrap()).unwrap();
        if v["call_id"] == call_id.as_str() {
            published.push(v["event"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(published, ["call.started", "call.answered", "call.ended"]);

    for r in runners {
        r.abort();
    }
}
