//! Autotask's hourly request threshold, shared by every integration on the tenant: read from
//! `ThresholdInformation`, re-read every so often, slowed down past half of it, and never
//! exceeded beyond cmat's share (`max_hourly_share`).

use reqwest::Method;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::Value;

use super::{AutotaskClient, AutotaskError, Safety, Target, Threshold};
use crate::locks::lock;

#[derive(Debug, Clone, Copy)]
pub(super) struct BudgetState {
    pub(super) reading: Threshold,
    /// `requests_sent` when `reading` was taken.
    pub(super) sent_at_reading: u64,
}

impl AutotaskClient {
    /// Reads `ThresholdInformation` and keeps it as the budget reading.
    pub(super) fn refresh_budget(&self) -> Result<Threshold, AutotaskError> {
        let path = "ThresholdInformation";
        let request = format!("GET {path}");
        let answer = self.send_raw_threshold(path)?;
        let number = |field: &str| -> Result<u64, AutotaskError> {
            match answer.get(field) {
                Some(Value::Number(n)) => n.as_u64().or_else(|| {
                    n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64)
                }),
                _ => None,
            }
            .ok_or_else(|| AutotaskError::BadResponse {
                request: request.clone(),
                message: format!("`{field}` should be a whole number"),
            })
        };
        let reading = Threshold {
            limit: number("externalRequestThreshold")?,
            timeframe_minutes: match answer.get("requestThresholdTimeframe") {
                None | Some(Value::Null) => 60,
                Some(_) => number("requestThresholdTimeframe")?,
            },
            used: number("currentTimeframeRequestCount")?,
        };
        if reading.limit == 0 {
            return Err(AutotaskError::BadResponse {
                request,
                message: "`externalRequestThreshold` is 0".into(),
            });
        }
        *lock(&self.budget) = Some(BudgetState {
            reading,
            // The reading counts the threshold request itself.
            sent_at_reading: self.requests_sent(),
        });
        Ok(reading)
    }

    /// The threshold read goes through the normal path minus the budget gate (no recursion).
    pub(super) fn send_raw_threshold(&self, path: &str) -> Result<Value, AutotaskError> {
        let request = format!("GET {path}");
        self.send_named(&request, Method::GET, Target::Path(path), None, Safety::Repeatable)
    }

    /// Stops when the next request would take the tenant past cmat's share of the hour.
    pub(super) fn check_budget(&self) -> Result<Option<Decimal>, AutotaskError> {
        let Some(state) = *lock(&self.budget) else {
            return Ok(None);
        };
        let since = self.requests_sent().saturating_sub(state.sent_at_reading);
        let used = state.reading.used + since;
        let limit = state.reading.limit;
        let allowed = (Decimal::from(limit) * self.share).floor().to_u64().unwrap_or(0);
        if used + 1 > allowed {
            return Err(AutotaskError::HourlyBudget { used, limit, share: self.share });
        }
        Ok(Some(Decimal::from(used + 1) / Decimal::from(limit)))
    }

    /// The budget gate before each request: re-reads the threshold every so often, slows down
    /// past half of the hour's threshold, and stops before cmat's share is exceeded.
    pub(super) fn before_request(&self, endpoint: &str) -> Result<(), AutotaskError> {
        if endpoint == "thresholdinformation" {
            return Ok(());
        }
        let due = {
            // Claim the refresh under the lock so parallel threads do not all re-read.
            let mut budget = lock(&self.budget);
            let sent = self.requests_sent();
            match budget.as_mut() {
                Some(state)
                    if sent.saturating_sub(state.sent_at_reading)
                        >= self.options.threshold_every =>
                {
                    state.sent_at_reading = sent;
                    true
                }
                _ => false,
            }
        };
        if due {
            self.refresh_budget()?;
        }
        let Some(usage) = self.check_budget()? else {
            return Ok(());
        };
        let half = Decimal::new(5, 1);
        if usage > half && self.share > half {
            let fraction =
                ((usage - half) / (self.share - half)).min(Decimal::ONE).to_f64().unwrap_or(1.0);
            self.options.clock.sleep(self.options.slowdown_max.mul_f64(fraction.clamp(0.0, 1.0)));
        }
        Ok(())
    }
}
