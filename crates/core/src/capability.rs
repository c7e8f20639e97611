//! Capability tokens (SPEC §11, seeds/001): what the anonymous uploader of a
//! receive link holds instead of a token. A capability names one gate of one
//! namespace, the gate's epoch when it was minted, the ticket operations it
//! allows and its expiry; the server signs it with HMAC-SHA256 under the first
//! of its keys and accepts a signature by any of them, so a key can be rotated.
//!
//! The wire form is `lsc_<claims>.<mac>`, both parts base64url without padding;
//! the claims are JSON. Signing and checking are pure: the keys and `now` are
//! given. The epoch and the expiry are decided again inside the transaction of
//! the operation a capability tries ([`CapabilityCheck`]), with the storage's
//! clock, so a revoke and a late upload cannot race.

use crate::{Error, Millis};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The prefix that tells a capability from a token secret.
pub const PREFIX: &str = "lsc_";

/// The shortest key accepted for signing, in bytes.
pub const KEY_BYTES_MIN: usize = 32;

/// A ticket operation a capability may allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum CapOp {
    /// `POST /gates/{id}/tickets`.
    Admit,
    /// `.../check`.
    Check,
    /// `.../commit`.
    Commit,
    /// `.../abort`.
    Abort,
    /// `.../finalize`.
    Finalize,
}

impl CapOp {
    /// Every operation: what a capability allows when minted without `ops`.
    pub const ALL: [CapOp; 5] = [
        CapOp::Admit,
        CapOp::Check,
        CapOp::Commit,
        CapOp::Abort,
        CapOp::Finalize,
    ];

    /// The operation's name, as in a ticket route.
    pub fn as_str(self) -> &'static str {
        match self {
            CapOp::Admit => "admit",
            CapOp::Check => "check",
            CapOp::Commit => "commit",
            CapOp::Abort => "abort",
            CapOp::Finalize => "finalize",
        }
    }

    /// The operation of a ticket route's `{op}` segment.
    pub fn parse(s: &str) -> Option<CapOp> {
        CapOp::ALL.into_iter().find(|op| op.as_str() == s)
    }
}

/// What a capability says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The namespace.
    pub ns: String,
    /// The gate id.
    pub gate: String,
    /// The gate's epoch at minting.
    pub epoch: u64,
    /// The ticket operations allowed.
    pub ops: Vec<CapOp>,
    /// Expiry, milliseconds since the epoch (storage clock).
    pub exp: i64,
}

impl Claims {
    /// The check a ticket command carries for this capability.
    pub fn check(&self) -> CapabilityCheck {
        CapabilityCheck {
            epoch: self.epoch,
            expires_at: Millis(self.exp),
        }
    }

    /// Whether the capability allows `op` on `gate` of `ns`.
    pub fn allows(&self, ns: &str, gate: &str, op: CapOp) -> bool {
        self.ns == ns && self.gate == gate && self.ops.contains(&op)
    }
}

/// What a ticket command made with a capability must still hold inside its
/// transaction: the gate is at the capability's epoch, and it has not expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapabilityCheck {
    /// The gate's epoch at minting.
    pub epoch: u64,
    /// When the capability stops working (storage clock).
    pub expires_at: Millis,
}

impl CapabilityCheck {
    /// 401 once expired; 410 `gate_closed` once the gate's epoch moved on.
    pub fn check(&self, gate: &str, gate_epoch: u64, now: Millis) -> Result<(), Error> {
        if now >= self.expires_at {
            return Err(Error::Unauthorized("the capability has expired".into()));
        }
        if gate_epoch != self.epoch {
            return Err(Error::GateClosed(format!(
                "the capability was minted for epoch {} of gate {gate:?}, which is now at epoch {gate_epoch}",
                self.epoch
            )));
        }
        Ok(())
    }
}

fn mac(key: &[u8], claims: &str) -> Result<Hmac<Sha256>, Error> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .map_err(|_| Error::invalid("a capability key cannot be used"))?;
    mac.update(claims.as_bytes());
    Ok(mac)
}

/// Signs `claims` with `key`: the capability's wire form.
pub fn sign(claims: &Claims, key: &[u8]) -> Result<String, Error> {
    let json = serde_json::to_vec(claims).map_err(|e| Error::invalid(e.to_string()))?;
    let body = URL_SAFE_NO_PAD.encode(json);
    let tag = mac(key, &body)?.finalize().into_bytes();
    Ok(format!("{PREFIX}{body}.{}", URL_SAFE_NO_PAD.encode(tag)))
}

/// Why a presented capability is refused at the door (all 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not of the capability form.
    #[error("malformed capability")]
    Malformed,
    /// No key signed it: forged or tampered with (or signed by a retired key).
    #[error("the capability's signature does not verify")]
    BadSignature,
}

/// Verifies a capability against every key (constant-time comparison of the
/// signature) and returns its claims. Expiry and epoch are checked later, in
/// the operation's transaction ([`CapabilityCheck`]).
pub fn verify(capability: &str, keys: &[Vec<u8>]) -> Result<Claims, Refused> {
    let rest = capability.strip_prefix(PREFIX).ok_or(Refused::Malformed)?;
    let (body, tag) = rest.split_once('.').ok_or(Refused::Malformed)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| Refused::Malformed)?;
    let signed = keys.iter().any(|k| {
        mac(k, body)
            .map(|m| m.verify_slice(&tag).is_ok())
            .unwrap_or(false)
    });
    if !signed {
        return Err(Refused::BadSignature);
    }
    let json = URL_SAFE_NO_PAD.decode(body).map_err(|_| Refused::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| Refused::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            ns: "shop".into(),
            gate: "link-1".into(),
            epoch: 3,
            ops: CapOp::ALL.to_vec(),
            exp: 1_000,
        }
    }

    #[test]
    fn signs_verifies_and_rotates() {
        let (k1, k2) = (vec![1u8; 32], vec![2u8; 32]);
        let cap = sign(&claims(), &k1).unwrap_or_else(|e| panic!("{e}"));
        assert!(cap.starts_with(PREFIX));
        assert_eq!(verify(&cap, std::slice::from_ref(&k1)), Ok(claims()));
        // Rotation: a new first key signs, the old one still verifies.
        assert_eq!(verify(&cap, &[k2.clone(), k1.clone()]), Ok(claims()));
        assert_eq!(
            verify(&cap, std::slice::from_ref(&k2)),
            Err(Refused::BadSignature)
        );
    }

    #[test]
    fn tampering_is_refused() {
        let key = vec![7u8; 32];
        let cap = sign(&claims(), &key).unwrap_or_else(|e| panic!("{e}"));
        let (body, tag) = cap
            .strip_prefix(PREFIX)
            .and_then(|r| r.split_once('.'))
            .unwrap_or_else(|| panic!("form"));
        // Another gate's claims under the same signature.
        let forged = Claims {
            gate: "link-2".into(),
            ..claims()
        };
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap_or_default());
        assert_eq!(
            verify(
                &format!("{PREFIX}{forged_body}.{tag}"),
                std::slice::from_ref(&key)
            ),
            Err(Refused::BadSignature)
        );
        for bad in [
            String::new(),
            "lsc_".into(),
            format!("{PREFIX}{body}"),
            format!("{PREFIX}{body}.!!"),
            format!("lst_{body}.{tag}"),
            format!("{PREFIX}{body}x.{tag}"),
        ] {
            assert!(verify(&bad, std::slice::from_ref(&key)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_check_decides_expiry_then_epoch() {
        let c = claims().check();
        assert_eq!(c.check("g", 3, Millis(999)), Ok(()));
        assert!(matches!(
            c.check("g", 3, Millis(1_000)),
            Err(Error::Unauthorized(_))
        ));
        assert!(matches!(c.check("g", 4, Millis(10)), Err(Error::GateClosed(_))));
        assert!(claims().allows("shop", "link-1", CapOp::Commit));
        assert!(!claims().allows("shop", "link-2", CapOp::Commit));
        assert!(!Claims {
            ops: vec![CapOp::Admit],
            ..claims()
        }
        .allows("shop", "link-1", CapOp::Finalize));
    }
}
