//! Which MQTT leads said a good `hello`: a lead's frames count only from then until its
//! token expires or is revoked. Known on every node through the store; each node keeps
//! what it learnt until the token expires.

use gridcast_protocol::ErrorCode;

use super::Mqtt;
use crate::auth::TokenRole;
use crate::{Hub, now_ms};

impl Mqtt {
    /// Ok when `lead` said hello (on any node) with a token that has not expired and
    /// is not revoked. This node remembers what it learnt until the token expires.
    pub(super) async fn check_verified(
        &self,
        hub: &Hub,
        lead: &str,
    ) -> Result<(), (ErrorCode, String)> {
        let now = now_ms() / 1000;
        let cached = self
            .verified
            .get(lead)
            .map(|v| v.clone())
            .filter(|v| v.exp > now);
        let v = match cached {
            Some(v) => v,
            None => match hub.store.mqtt_lead(lead).await {
                Ok(Some(v)) => {
                    self.verified.insert(lead.to_owned(), v.clone());
                    v
                }
                Ok(None) => {
                    let m = "send hello with your token first (or again: it has expired)";
                    return Err((ErrorCode::Unauthorized, m.into()));
                }
                Err(e) => {
                    let m = format!("the hub could not check your hello ({e}); retry");
                    return Err((ErrorCode::Unavailable, m));
                }
            },
        };
        let claims = crate::auth::Claims {
            sub: lead.to_owned(),
            role: TokenRole::Lead,
            scope: String::new(),
            exp: v.exp,
            jti: v.jti,
        };
        if hub.revocations.is_revoked(&claims) {
            self.verified.remove(lead);
            return Err((ErrorCode::Unauthorized, "token has been revoked".into()));
        }
        Ok(())
    }
}
