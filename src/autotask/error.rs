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
    /// Refused for the thread threshold on every attempt within the retry budget (never
    /// processed).
    #[error("{request}: Autotask's thread threshold was still exceeded (HTTP {status}) after {attempts} attempts over {}s of waiting; the request was not processed", .waited.as_secs())]
    ThreadThreshold { request: String, status: u16, attempts: u32, waited: std::time::Duration },
    /// The tenant is over its hourly request threshold: Autotask refuses every request, from
    /// every integration, until the rolling hour frees some. Not retried: cmat stops here.
    #[error("{request}: Autotask refuses every request because the tenant's hourly request threshold is used up (by every integration on it, not only cmat); this request was not processed and cmat stopped. {}", lockout_advice(*.retry_after, *.resume_at))]
    HourlyLockout {
        request: String,
        status: u16,
        /// Autotask's `Retry-After`, when it sent one.
        retry_after: Option<std::time::Duration>,
        /// When to run again: now plus `retry_after`.
        resume_at: Option<chrono::DateTime<chrono::Utc>>,
    },
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
            AutotaskError::HourlyLockout { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// What Autotask refused, when it answered with a refusal.
    pub fn rejection(&self) -> Option<Rejection> {
        match self {
            AutotaskError::Api { kind, .. } => Some(*kind),
            AutotaskError::ThreadThreshold { .. } => Some(Rejection::ThreadThreshold),
            AutotaskError::HourlyLockout { .. } => Some(Rejection::HourlyLockout),
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
    /// The tenant's hourly request threshold is used up: every request is refused for a while.
    HourlyLockout,
    /// A reference to a record Autotask does not have ("… does not reference an existing
    /// entity").
    UnknownReference,
    /// "… does not exist or is invalid" (a record or value Autotask does not know).
    NotFoundOrInvalid,
    /// A date outside the contract's ("effectiveDate must be between the start date and end
    /// date of the Contract").
    OutsideContractDates,
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
        if has("thread threshold") || has(THREAD_THRESHOLD_CODE) {
            Rejection::ThreadThreshold
        } else if is_lockout_text(&text) {
            Rejection::HourlyLockout
        } else if has("does not reference an existing entity")
            || (has("reference value on field") && has("does not exist"))
        {
            Rejection::UnknownReference
        } else if has("does not exist or is invalid") {
            Rejection::NotFoundOrInvalid
        } else if has("must be between the start date and end date") {
            Rejection::OutsideContractDates
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

/// Autotask's error code for a thread-threshold refusal, the one seen live (lower case: it is
/// matched in lowered text).
pub const THREAD_THRESHOLD_CODE: &str = "itgenatr005";

/// Whether a refusal's (lowered) text speaks of the hourly request threshold rather than the
/// thread threshold: "The request threshold of 10000 requests per 60 minutes has been
/// exceeded", "hourly threshold", "request limit … hour".
pub fn is_lockout_text(lowered: &str) -> bool {
    let has = |fragment: &str| lowered.contains(fragment);
    !has("thread threshold")
        && !has(THREAD_THRESHOLD_CODE)
        && (has("request threshold")
            || has("hourly threshold")
            || has("hourly request")
            || (has("threshold") && (has("per 60 minutes") || has("per hour"))))
}

/// When to run again after a lockout, as far as Autotask said.
fn lockout_advice(
    retry_after: Option<std::time::Duration>,
    resume_at: Option<chrono::DateTime<chrono::Utc>>,
) -> String {
    match (retry_after, resume_at) {
        (Some(wait), Some(at)) => format!(
            "Autotask asks to wait {} minute(s): run again after {} UTC",
            wait.as_secs().div_ceil(60),
            at.format("%Y-%m-%d %H:%M")
        ),
        _ => "Autotask did not say for how long: the threshold counts a rolling hour, so run again within the hour (`cmat doctor` shows the hour's usage)".to_string(),
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
            ("Itgenatr005", Rejection::ThreadThreshold),
            (
                "The request threshold of 10000 requests per 60 minutes has been exceeded; try again later.",
                Rejection::HourlyLockout,
            ),
            (
                "Value 77 of field serviceID does not reference an existing entity.",
                Rejection::UnknownReference,
            ),
            ("The contract 99 does not exist or is invalid.", Rejection::NotFoundOrInvalid),
            (
                "effectiveDate must be between the start date and end date of the Contract",
                Rejection::OutsideContractDates,
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
