//! What can go wrong talking to Autotask, and what kind of "no" Autotask said.
//!
//! Autotask answers most refusals as HTTP 500 with `{"errors":["…"]}` and no code, so the kind of
//! a refusal is read from its text, here and only here ([`Rejection::classify`]): callers match
//! on [`Rejection`], never on message strings.

use rust_decimal::Decimal;

use super::query::FilterError;

const CREDENTIALS_HINT: &str =
    "check CMAT_AUTOTASK_USERNAME, CMAT_AUTOTASK_SECRET and CMAT_AUTOTASK_INTEGRATION_CODE";

#[derive(Debug, thiserror::Error)]
pub enum AutotaskError {
    #[error("Autotask connection settings: {0}")]
    Config(String),
    #[error("{request}: Autotask refused the credentials (HTTP 401); {CREDENTIALS_HINT}")]
    Unauthorized { request: String },
    /// Autotask answered and refused; `kind` says what it refused, as far as its text tells.
    #[error("{request}: Autotask answered HTTP {status}: {}", .messages.join("; "))]
    Api { request: String, status: u16, kind: Rejection, messages: Vec<String> },
    /// Refused for the thread threshold on every attempt (never processed).
    #[error("{request}: Autotask's thread threshold was still exceeded (HTTP {status}) after {attempts} attempts")]
    ThreadThreshold { request: String, status: u16, attempts: u32 },
    #[error("{request}: {message}")]
    Transport { request: String, message: String },
    /// A write was sent and no clear answer came back: it may or may not have happened. Never
    /// re-send it blindly; look the record up by its natural key first.
    #[error("{request}: the outcome is unknown ({reason}); the write may have been applied, so look the record up before sending it again")]
    OutcomeUnknown { request: String, reason: String },
    #[error("{request}: Autotask's answer could not be understood: {message}")]
    BadResponse { request: String, message: String },
    #[error("Autotask's hourly request threshold: {used} of {limit} requests already used on the tenant this hour; cmat stops at {} % (max_hourly_share = {share} in cmat.toml) so that other integrations keep working. Run again after the hour rolls over, or raise max_hourly_share", (share * Decimal::ONE_HUNDRED).normalize())]
    HourlyBudget { used: u64, limit: u64, share: Decimal },
    #[error("zone lookup for API user {user:?} ({request}): {message}")]
    Zone { request: String, user: String, message: String },
    #[error("{request}: bad query: {source}")]
    Filter { request: String, source: FilterError },
}

impl AutotaskError {
    /// The HTTP status Autotask answered, when there was one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            AutotaskError::Unauthorized { .. } => Some(401),
            AutotaskError::Api { status, .. } => Some(*status),
            AutotaskError::ThreadThreshold { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// What Autotask refused, when it answered with a refusal.
    pub fn rejection(&self) -> Option<Rejection> {
        match self {
            AutotaskError::Api { kind, .. } => Some(*kind),
            AutotaskError::ThreadThreshold { .. } => Some(Rejection::ThreadThreshold),
            _ => None,
        }
    }
}

/// The kinds of refusal Autotask sends (mostly as HTTP 500 `{"errors":[…]}`), told apart by
/// their text. Nothing was written when Autotask refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// "API thread threshold of 3 threads has been exceeded": too many requests in flight on the
    /// endpoint. Comes as 429 or as another status (API-NOTES "Shapes seen on live tenants");
    /// the request was not processed, so the client sends it again, writes included.
    ThreadThreshold,
    /// A second ContractServiceAdjustment for the same contract service and day ("Cannot
    /// insert duplicate key row in object 'dbo.contract_service_period'").
    DuplicateAdjustment,
    /// A field that cannot be written (on create, or on update, like a contract service's
    /// `unitPrice`).
    ReadOnlyField,
    /// A picklist number the tenant does not have (or has inactive).
    InvalidPicklistValue,
    /// An update or delete of a contract charge already billed.
    BilledCharge,
    /// "String value exceeds maximum length".
    StringTooLong,
    /// Any other refusal (required field, unknown reference, not found, …).
    Other,
}

impl Rejection {
    /// Reads the kind from Autotask's messages; the first message that says something known
    /// decides. Case-insensitive, on fragments that Autotask's wording (DH, LIVE) and cmat-sim's
    /// share; an unknown wording is [`Rejection::Other`], which is always safe: only
    /// [`Rejection::ThreadThreshold`] makes the client send a request again.
    pub fn classify<S: AsRef<str>>(messages: &[S]) -> Rejection {
        messages
            .iter()
            .map(|message| Rejection::of_message(message.as_ref()))
            .find(|kind| *kind != Rejection::Other)
            .unwrap_or(Rejection::Other)
    }

    fn of_message(message: &str) -> Rejection {
        let text = message.to_ascii_lowercase();
        let has = |fragment: &str| text.contains(fragment);
        if has("thread threshold") {
            Rejection::ThreadThreshold
        } else if has("duplicate")
            && (has("contract_service_period") || has("adjustment") || has("same day"))
        {
            Rejection::DuplicateAdjustment
        } else if has("read-only") || has("read only") || has("readonly") {
            Rejection::ReadOnlyField
        } else if has("picklist") || has("pick list") {
            Rejection::InvalidPicklistValue
        } else if has("billed charge")
            || has("has been billed")
            || has("already billed")
            || has("is billed")
            || has("been invoiced")
        {
            Rejection::BilledCharge
        } else if has("exceeds maximum length") || has("exceeds the maximum length") {
            Rejection::StringTooLong
        } else {
            Rejection::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rejection;

    #[test]
    fn refusals_are_classified_by_their_text() {
        let cases = [
            ("API thread threshold of 3 threads has been exceeded", Rejection::ThreadThreshold),
            ("api Thread Threshold exceeded", Rejection::ThreadThreshold),
            (
                "Cannot insert duplicate key row in object 'dbo.contract_service_period' for contract service 7 on 2026-11-01.",
                Rejection::DuplicateAdjustment,
            ),
            ("unitPrice is read-only.", Rejection::ReadOnlyField),
            ("Field UnitPrice is read only", Rejection::ReadOnlyField),
            ("Value 1 is not a valid value for picklist contractPeriodType.", Rejection::InvalidPicklistValue),
            ("A billed charge cannot be changed.", Rejection::BilledCharge),
            ("The charge cannot be deleted because it has been billed.", Rejection::BilledCharge),
            (
                "String value exceeds maximum length: contractName holds at most 100 characters.",
                Rejection::StringTooLong,
            ),
            ("contractName is required.", Rejection::Other),
            ("Simulated failure: the write was not committed.", Rejection::Other),
        ];
        for (message, kind) in cases {
            assert_eq!(Rejection::classify(&[message]), kind, "{message}");
        }
        assert_eq!(
            Rejection::classify(&["contractName is required.", "unitPrice is read-only."]),
            Rejection::ReadOnlyField
        );
        assert_eq!(Rejection::classify::<&str>(&[]), Rejection::Other);
    }
}
