//! The names of the channel's state entries. Zalo's ids are digits or hex, which a state key takes as they are;
//! anything else (or anything long) is replaced by a hash so a key is always valid and short.

use sha2::{Digest, Sha256};

/// A key segment for an id: the id itself when it is letters, digits and `-` (at most 64), else `_` and 32 hex
/// digits of its SHA-256 (`_` never starts a plain id, so the two forms cannot meet).
pub fn segment(id: &str) -> String {
    if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        id.to_owned()
    } else {
        format!("_{}", crate::signature::hex(&Sha256::digest(id.as_bytes())[..16]))
    }
}

/// A citizen's message waiting to be turned into a petition (the raw event, see `inbox.rs`).
pub fn inbox(user: &str, msg: &str) -> String {
    format!("inbox.{}.{}", segment(user), segment(msg))
}

/// A group of a citizen's messages decided on and on its way to intake.
pub fn batch(user: &str, first_msg: &str) -> String {
    format!("batch.{}.{}", segment(user), segment(first_msg))
}

/// A message already handed to intake (value: the group's first message id). Kept, so a redelivery at any delay
/// is recognised even when the message was not the first of its group.
pub fn seen(user: &str, msg: &str) -> String {
    format!("seen.{}.{}", segment(user), segment(msg))
}

/// Whether a citizen follows the OA.
pub fn follower(user: &str) -> String {
    format!("follower.{}", segment(user))
}

/// The contact details a citizen shared (`user_submit_info`).
pub fn contact(user: &str) -> String {
    format!("contact.{}", segment(user))
}

/// When the hotline last asked a citizen a question (their next message goes to intake at once).
pub fn asked(user: &str) -> String {
    format!("asked.{}", segment(user))
}

/// How many parts of a reply were sent already.
pub fn sent(reply: uuid::Uuid) -> String {
    format!("sent.{}", reply.simple())
}

/// Every state entry (or prefix of entries) about one citizen, within the channel's namespace: what erasing the
/// citizen's personal data must remove (docs/privacy.md). Exact keys end without a dot; prefixes end with one.
pub fn citizen_state(user: &str) -> Vec<String> {
    let user = segment(user);
    let mut keys: Vec<String> = ["follower", "contact", "asked"].iter().map(|k| format!("{k}.{user}")).collect();
    keys.extend(["inbox", "batch", "seen"].iter().map(|k| format!("{k}.{user}.")));
    keys
}

/// Which process runs the inbox worker, until when.
pub const WORKER: &str = "worker";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zalo_ids_stay_readable_and_anything_else_is_hashed() {
        assert_eq!(inbox("246845883529197922", "96d3cdf3af150460909"), "inbox.246845883529197922.96d3cdf3af150460909");
        let odd = segment("a.b*c");
        assert!(odd.starts_with('_') && odd.len() == 33, "{odd}");
        assert_ne!(segment("_x"), "_x");
        assert_eq!(segment(&"9".repeat(65)).len(), 33);
    }
}
