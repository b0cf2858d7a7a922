//! Credits within the fold: the grants one entry makes on top of the balances before it, and a
//! holder's statement (balance after decay, today's commons floor). Credits are derived by rule
//! and never move between holders.

use std::collections::BTreeMap;

use crate::governance::book::*;
use crate::governance::params::Parameters;
use crate::state::Change;

/// Credit grants within one entry, applied on top of the balances before it.
pub(crate) struct CreditBook<'a> {
    base: &'a Governance,
    rates: crate::governance::params::CreditRates,
    touched: BTreeMap<String, Credits>,
}

impl<'a> CreditBook<'a> {
    pub(crate) fn new(base: &'a Governance, params: &Parameters) -> CreditBook<'a> {
        CreditBook { base, rates: params.credits, touched: BTreeMap::new() }
    }

    fn account(&mut self, holder: &str, time: u64) -> &mut Credits {
        let half_life = self.rates.half_life_days;
        let base = self.base;
        let account = self
            .touched
            .entry(holder.to_owned())
            .or_insert_with(|| base.credits.get(holder).cloned().unwrap_or_else(|| Credits::new(holder)));
        let today = day_of(time);
        if account.as_of_day < today {
            account.balance = account.balance_on(today, half_life);
            account.as_of_day = today;
        }
        account
    }

    pub(crate) fn rates_deposit(&self) -> u64 {
        self.rates.deposit
    }

    /// Grants `credits` (whole) to `holder`; the stability pool's share goes to the pool.
    pub(crate) fn grant(&mut self, holder: &str, credits: u64, time: u64) {
        if credits == 0 {
            return;
        }
        let milli = credits.saturating_mul(1000);
        let pool = (u128::from(milli) * u128::from(self.rates.stability_share_ppm) / 1_000_000) as u64;
        let account = self.account(holder, time);
        account.balance = account.balance.saturating_add(milli - pool);
        account.earned = account.earned.saturating_add(milli - pool);
        account.grants += 1;
        if pool > 0 {
            let account = self.account(STABILITY_POOL, time);
            account.balance = account.balance.saturating_add(pool);
            account.earned = account.earned.saturating_add(pool);
            account.grants += 1;
        }
    }

    /// Takes back what a grant of `credits` gave `holder` (never below zero).
    pub(crate) fn take_back(&mut self, holder: &str, credits: u64, time: u64) {
        let milli = credits.saturating_mul(1000);
        let pool = (u128::from(milli) * u128::from(self.rates.stability_share_ppm) / 1_000_000) as u64;
        let account = self.account(holder, time);
        account.balance = account.balance.saturating_sub(milli - pool);
    }

    /// What `holder` has at `time`, in thousandths, after decay.
    pub(crate) fn balance(&mut self, holder: &str, time: u64) -> u64 {
        self.account(holder, time).balance
    }

    /// Holds `milli` back from `holder` (a job's reservation); the caller checked the balance.
    pub(crate) fn debit(&mut self, holder: &str, milli: u64, time: u64) {
        let account = self.account(holder, time);
        account.balance = account.balance.saturating_sub(milli);
    }

    /// Returns `milli` held back from `holder`: not a grant, nothing goes to the pool.
    pub(crate) fn credit_back(&mut self, holder: &str, milli: u64, time: u64) {
        if milli == 0 {
            return;
        }
        let account = self.account(holder, time);
        account.balance = account.balance.saturating_add(milli);
    }

    /// What is left of `holder`'s commons floor today (thousandths): the floor, as far as the
    /// stability pool funds it shared among the verified members, less what their jobs drew.
    pub(crate) fn floor_left(&mut self, holder: &str, time: u64) -> u64 {
        let allowance = self.base.floor_allowance(holder, time, self.rates.floor);
        let pool = self.account(STABILITY_POOL, time).balance;
        let used = self.account(holder, time).floor_used_on(day_of(time));
        allowance.saturating_sub(used).min(pool)
    }

    /// Draws `milli` of `holder`'s floor today: it comes out of the stability pool.
    pub(crate) fn draw_floor(&mut self, holder: &str, milli: u64, time: u64) {
        if milli == 0 {
            return;
        }
        let today = day_of(time);
        let account = self.account(holder, time);
        account.floor_used = account.floor_used_on(today).saturating_add(milli);
        account.floor_day = today;
        let pool = self.account(STABILITY_POOL, time);
        pool.balance = pool.balance.saturating_sub(milli);
    }

    /// Returns `milli` drawn from `holder`'s floor on day `day`: to the pool, and to today's
    /// floor if that day is today (yesterday's unused floor is gone, as every day's is).
    pub(crate) fn return_floor(&mut self, holder: &str, milli: u64, day: u64, time: u64) {
        if milli == 0 {
            return;
        }
        let today = day_of(time);
        let account = self.account(holder, time);
        if day == today && account.floor_day == today {
            account.floor_used = account.floor_used.saturating_sub(milli);
        }
        let pool = self.account(STABILITY_POOL, time);
        pool.balance = pool.balance.saturating_add(milli);
    }

    pub(crate) fn into_changes(self) -> Vec<Change> {
        self.touched.into_values().map(|c| Change::Record(Record::Credits(c))).collect()
    }
}

/// A person's credits as of `now`, with the commons floor they may draw on today.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreditStatement {
    pub holder: String,
    /// Credits (not thousandths) after decay.
    pub balance: f64,
    pub earned: f64,
    pub grants: u64,
    pub verified: bool,
    /// What is left of today's commons floor: the allowance jobs of the inference-sized kinds
    /// draw on before the balance, as far as the stability pool funds it.
    pub floor_today: f64,
    pub stability_pool: f64,
    pub half_life_days: u32,
}

impl Governance {
    /// The commons floor `holder` may draw each day at `at` (thousandths), before what they drew:
    /// `floor` credits for a verified member, as far as the stability pool funds it shared among
    /// all of them; nothing for anyone else.
    pub(crate) fn floor_allowance(&self, holder: &str, at: u64, floor: u64) -> u64 {
        let rates = self.params.as_ref().map(|p| p.credits).unwrap_or(Parameters::new(Vec::new()).credits);
        let pool = self
            .credits
            .get(STABILITY_POOL)
            .map(|c| c.balance_on(day_of(at), rates.half_life_days))
            .unwrap_or(0);
        let verified_count = self.members.values().filter(|m| m.verified_at(at)).count() as u64;
        if self.is_verified(holder, at) && verified_count > 0 {
            floor.saturating_mul(1000).min(pool / verified_count)
        } else {
            0
        }
    }

    /// What `holder` has at `now`.
    pub fn credit_statement(&self, holder: &str, now: u64) -> CreditStatement {
        let rates = self.params.as_ref().map(|p| p.credits).unwrap_or(Parameters::new(Vec::new()).credits);
        let today = day_of(now);
        let account = self.credits.get(holder).cloned().unwrap_or_else(|| Credits::new(holder));
        let pool =
            self.credits.get(STABILITY_POOL).map(|c| c.balance_on(today, rates.half_life_days)).unwrap_or(0);
        let verified = self.is_verified(holder, now);
        // What is left of it today where jobs draw on it (state encoding 4).
        let floor = self
            .floor_allowance(holder, now, rates.floor)
            .saturating_sub(if self.later_job_rules() { account.floor_used_on(today) } else { 0 });
        CreditStatement {
            holder: holder.to_owned(),
            balance: account.balance_on(today, rates.half_life_days) as f64 / 1000.0,
            earned: account.earned as f64 / 1000.0,
            grants: account.grants,
            verified,
            floor_today: floor as f64 / 1000.0,
            stability_pool: pool as f64 / 1000.0,
            half_life_days: rates.half_life_days,
        }
    }
}
