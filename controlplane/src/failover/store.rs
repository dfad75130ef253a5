//! The keyspaces in Redis: per keyspace `K`, the hash
//! `tollgate:keyspace:K:calls` (field: the journal's key, `sip/CALL-ID` or
//! `media/CALL-ID`; value: its JSON) and the string
//! `tollgate:keyspace:K:owner` (the keyspace of the node that owns K).
//! Every write is a Lua script that checks the owner in the same atomic
//! step, so a node whose keyspace was taken over cannot write into it
//! any more (the fence), and a takeover claims and reads in one step, so
//! nothing a fenced node wrote is missed or written after.

use super::mirror::Batch;
use redis::{Script, ScriptInvocation};
use std::sync::OnceLock;
use std::time::Duration;

/// How long one Redis request may take before it counts as failed.
pub const TIMEOUT: Duration = Duration::from_secs(2);

pub fn calls_key(keyspace: &str) -> String {
    format!("tollgate:keyspace:{keyspace}:calls")
}

pub fn owner_key(keyspace: &str) -> String {
    format!("tollgate:keyspace:{keyspace}:owner")
}

/// The outcome of a takeover, written for `tollgate ctl takeover`.
pub fn taken_key(keyspace: &str) -> String {
    format!("tollgate:keyspace:{keyspace}:taken")
}

/// KEYS owner, calls; ARGV me, "resync"|"delta", then field, value pairs
/// ("" deletes). Applied only while the owner is `me` (claimed when
/// unowned); returns the owner.
const WRITE: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return owner end
if not owner then redis.call('SET', KEYS[1], ARGV[1]) end
if ARGV[2] == 'resync' then redis.call('DEL', KEYS[2]) end
for i = 3, #ARGV, 2 do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[2], ARGV[i])
  else redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
end
return ARGV[1]
";

/// KEYS owner; ARGV me. Claims the keyspace unless another node holds
/// it; returns the owner.
const CLAIM_IF_FREE: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return owner end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
";

/// KEYS owner, calls; ARGV me. Claims the keyspace and returns its calls
/// (field, value, ...), in one step.
const TAKE: &str = r"
redis.call('SET', KEYS[1], ARGV[1])
return redis.call('HGETALL', KEYS[2])
";

/// A prepared invocation of script `src`, loaded once into `cell`.
fn invocation(cell: &'static OnceLock<Script>, src: &str) -> ScriptInvocation<'static> {
    cell.get_or_init(|| Script::new(src)).prepare_invoke()
}

/// The invocation writing `batch` into `keyspace` as `me`.
pub fn write(me: &str, keyspace: &str, batch: Batch) -> ScriptInvocation<'static> {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    let mut inv = invocation(&SCRIPT, WRITE);
    inv.key(owner_key(keyspace))
        .key(calls_key(keyspace))
        .arg(me);
    match batch {
        Batch::Resync(all) => {
            inv.arg("resync");
            for (k, v) in all {
                inv.arg(k).arg(v);
            }
        }
        Batch::Delta(changes) => {
            inv.arg("delta");
            for (k, v) in changes {
                inv.arg(k).arg(v.unwrap_or_default());
            }
        }
    }
    inv
}

/// Claims `me`'s own keyspace unless another node took it over.
pub fn claim_if_free(me: &str) -> ScriptInvocation<'static> {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    let mut inv = invocation(&SCRIPT, CLAIM_IF_FREE);
    inv.key(owner_key(me)).arg(me);
    inv
}

/// Claims `keyspace` for `me` and reads its calls.
pub fn take(me: &str, keyspace: &str) -> ScriptInvocation<'static> {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    let mut inv = invocation(&SCRIPT, TAKE);
    inv.key(owner_key(keyspace))
        .key(calls_key(keyspace))
        .arg(me);
    inv
}
