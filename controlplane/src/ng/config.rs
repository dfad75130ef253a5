//! The `[ng]` section: where the rtpengine-compatible control protocol listens.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NgConfig {
    /// UDP and TCP address of the NG control protocol.
    pub listen: SocketAddr,
}

impl Default for NgConfig {
    fn default() -> Self {
        NgConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 22222)),
        }
    }
}
