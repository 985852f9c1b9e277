//! The page's charts as shapes: coordinates computed with `Decimal` (never a float) and
//! formatted to one decimal place; the template draws them as inline SVG and escapes every
//! label, so the markup is never built from strings here.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use super::{AzureTrend, Period, PeriodTotal, Review};

/// At most this many companies in the margin chart (the largest by revenue).
const MARGIN_BARS: usize = 15;
/// At most this many Azure subscriptions drawn (the largest this period); the table has all.
const AZURE_LINES: usize = 8;
/// Colours that stay apart in print and for the common colour-vision deficiencies.
const PALETTE: [&str; 8] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

#[derive(Debug, Serialize)]
pub struct Charts {
    pub margin: MarginChart,
    pub revenue: RevenueChart,
    pub azure: AzureChart,
}

#[derive(Debug, Serialize)]
pub struct MarginChart {
    pub height: u32,
    pub axis_x: String,
    pub bars: Vec<MarginBar>,
    pub shown: usize,
    pub total: usize,
}

#[derive(Debug, Serialize)]
pub struct MarginBar {
    pub label: String,
    pub y: u32,
    pub text_y: u32,
    pub x: String,
    pub width: String,
    pub negative: bool,
    pub value: Decimal,
    pub percent: Option<Decimal>,
}

#[derive(Debug, Serialize)]
pub struct RevenueChart {
    pub width: u32,
    pub max: Decimal,
    pub bars: Vec<RevenueBar>,
}

#[derive(Debug, Serialize)]
pub struct RevenueBar {
    pub period: String,
    pub x: String,
    pub cost_x: String,
    pub label_x: String,
    pub bar_width: String,
    pub revenue_y: String,
    pub revenue_height: String,
    pub cost_y: String,
    pub cost_height: String,
    pub revenue: Decimal,
    pub cost: Decimal,
    pub current: bool,
}

#[derive(Debug, Serialize)]
pub struct AzureChart {
    pub width: u32,
    pub periods: Vec<AxisLabel>,
    pub lines: Vec<AzureLine>,
    pub max: Decimal,
    pub shown: usize,
    pub total: usize,
}

#[derive(Debug, Serialize)]
pub struct AxisLabel {
    pub x: String,
    pub label: String,
}

#[derive(Debug, Serialize)]
pub struct AzureLine {
    pub label: String,
    pub colour: &'static str,
    pub points: String,
    pub dots: Vec<Dot>,
}

#[derive(Debug, Serialize)]
pub struct Dot {
    pub x: String,
    pub y: String,
    pub title: String,
}

fn coordinate(value: Decimal) -> String {
    value.round_dp_with_strategy(1, RoundingStrategy::MidpointAwayFromZero).normalize().to_string()
}

/// `value / max × length`, 0 when max is 0.
fn scale(value: Decimal, max: Decimal, length: u32) -> Decimal {
    if max.is_zero() {
        Decimal::ZERO
    } else {
        value * Decimal::from(length) / max
    }
}

pub fn charts(review: &Review) -> Charts {
    Charts { margin: margin(review), revenue: revenue(review), azure: azure(review) }
}

/// Horizontal bars: each company's margin this period, from a zero line that leaves room
/// for losses on the left.
fn margin(review: &Review) -> MarginChart {
    let companies: Vec<_> = review
        .companies
        .iter()
        .filter(|c| !c.figures.revenue.is_zero())
        .take(MARGIN_BARS)
        .collect();
    let largest =
        companies.iter().map(|c| c.figures.margin.max(Decimal::ZERO)).max().unwrap_or_default();
    let deepest =
        companies.iter().map(|c| (-c.figures.margin).max(Decimal::ZERO)).max().unwrap_or_default();
    // Bars live between x = 180 and x = 470 (290 units), split by the zero line.
    let span = largest + deepest;
    let zero = Decimal::from(180) + scale(deepest, span, 290);
    let bars = companies
        .iter()
        .enumerate()
        .map(|(index, company)| {
            let length = scale(company.figures.margin.abs(), span, 290);
            let negative =
                company.figures.margin.is_sign_negative() && !company.figures.margin.is_zero();
            MarginBar {
                label: company.organization.clone(),
                y: 8 + index as u32 * 24,
                text_y: 24 + index as u32 * 24,
                x: coordinate(if negative { zero - length } else { zero }),
                width: coordinate(length.max(Decimal::ONE)),
                negative,
                value: company.figures.margin,
                percent: company.figures.margin_percent,
            }
        })
        .collect::<Vec<_>>();
    MarginChart {
        height: 16 + bars.len() as u32 * 24,
        axis_x: coordinate(zero),
        shown: bars.len(),
        total: review.companies.iter().filter(|c| !c.figures.revenue.is_zero()).count(),
        bars,
    }
}

/// Vertical bars per imported period: revenue and cost side by side.
fn revenue(review: &Review) -> RevenueChart {
    let max = review
        .history
        .iter()
        .map(|p| p.figures.revenue.max(p.figures.cost))
        .max()
        .unwrap_or_default();
    let bars = review
        .history
        .iter()
        .enumerate()
        .map(|(index, point)| {
            // Periods share 490 units from x = 60; a bar pair takes 70 % of its slot.
            let slot = Decimal::from(490) / Decimal::from(review.history.len().max(6) as u32);
            let x = Decimal::from(60) + slot * Decimal::from(index as u32);
            let bar = slot * Decimal::new(35, 2);
            let revenue = scale(point.figures.revenue.max(Decimal::ZERO), max, 180);
            let cost = scale(point.figures.cost.max(Decimal::ZERO), max, 180);
            RevenueBar {
                period: point.period.to_string(),
                x: coordinate(x),
                cost_x: coordinate(x + bar),
                label_x: coordinate(x + bar),
                bar_width: coordinate(bar),
                revenue_y: coordinate(Decimal::from(200) - revenue),
                revenue_height: coordinate(revenue),
                cost_y: coordinate(Decimal::from(200) - cost),
                cost_height: coordinate(cost),
                revenue: point.figures.revenue,
                cost: point.figures.cost,
                current: point.period == review.period,
            }
        })
        .collect::<Vec<_>>();
    RevenueChart { width: 560, max, bars }
}

/// One line per Azure subscription over every imported period.
fn azure(review: &Review) -> AzureChart {
    let mut periods: Vec<_> =
        review.azure.iter().flat_map(|trend| trend.points.iter().map(|p| p.period)).collect();
    periods.sort();
    periods.dedup();
    let shown: Vec<_> = review.azure.iter().take(AZURE_LINES).collect();
    let max = shown
        .iter()
        .flat_map(|trend| trend.points.iter().map(|p| p.figures.revenue))
        .max()
        .unwrap_or_default()
        .max(Decimal::ZERO);
    // Periods spread over x = 80..500.
    let step = Decimal::from(420) / Decimal::from((periods.len().max(2) - 1) as u32);
    let plot = AzurePlot { periods: &periods, step, max };
    let lines = shown.iter().enumerate().map(|(index, trend)| plot.line(index, trend)).collect();
    AzureChart {
        width: 560,
        periods: periods
            .iter()
            .map(|p| AxisLabel { x: coordinate(plot.x_of(*p)), label: p.to_string() })
            .collect(),
        lines,
        max,
        shown: shown.len(),
        total: review.azure.len(),
    }
}

/// Where the Azure chart puts a period and an amount.
struct AzurePlot<'a> {
    /// Every period on the x axis, in order.
    periods: &'a [Period],
    /// The distance between two periods.
    step: Decimal,
    /// The largest revenue shown: the top of the y axis.
    max: Decimal,
}

impl AzurePlot<'_> {
    fn x_of(&self, period: Period) -> Decimal {
        let index = self.periods.iter().position(|p| *p == period).unwrap_or(0) as u32;
        Decimal::from(80) + self.step * Decimal::from(index)
    }

    fn y_of(&self, value: Decimal) -> Decimal {
        Decimal::from(200) - scale(value.max(Decimal::ZERO), self.max, 180)
    }

    /// One subscription's line (the `index`th, for its colour), with a dot a period.
    fn line(&self, index: usize, trend: &AzureTrend) -> AzureLine {
        let label = format!("{} · {}", trend.organization, trend.subscription_name);
        let point = |p: &PeriodTotal| {
            format!(
                "{},{}",
                coordinate(self.x_of(p.period)),
                coordinate(self.y_of(p.figures.revenue))
            )
        };
        AzureLine {
            colour: PALETTE[index % PALETTE.len()],
            points: trend.points.iter().map(point).collect::<Vec<_>>().join(" "),
            dots: trend
                .points
                .iter()
                .map(|p| Dot {
                    x: coordinate(self.x_of(p.period)),
                    y: coordinate(self.y_of(p.figures.revenue)),
                    title: format!("{label}: {} {}", p.period, p.figures.revenue.round_dp(2)),
                })
                .collect(),
            label,
        }
    }
}
