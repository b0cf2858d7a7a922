//! The governable parameters: every default the design names is data here, changed only by a
//! passed `SetParameter` of a class high enough for the key.

use std::collections::BTreeMap;

use crate::governance::mixture::{self, MixtureRules};
use crate::governance::tally::{ProposalClass, Threshold};
use crate::register::Register;

pub const DAY_MS: u64 = 24 * 3600 * 1000;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Parameters {
    /// The register vocabulary deposits and mixtures draw on.
    pub registers: Vec<Register>,
    /// Voting windows per class, ms of the log's integrated time.
    pub windows: Windows,
    /// Majority and approval quorum per class and chamber.
    pub thresholds: Thresholds,
    /// How long an attestation of a verified human holds.
    pub attestation_days: u32,
    /// Verified members who must vouch for someone to verify them without a steward; 0 turns
    /// vouching off.
    pub vouches_required: u32,
    /// Board signatures a dispute ruling needs; 0 means a majority of the board.
    pub board_quorum: u32,
    /// The largest text a deposit may carry.
    pub deposit_max_bytes: u64,
    pub credits: CreditRates,
    /// No ballot may give a register more than its cap (ballots are clipped).
    pub mixture_caps: BTreeMap<Register, f64>,
    /// The aggregate gives a register at least its floor.
    pub mixture_floors: BTreeMap<Register, f64>,
    /// The share of job results re-executed by another operator, in parts per million.
    /// Absent from the JSON at its default, so the records of logs kept before it read and
    /// hash as they did.
    #[serde(default = "default_check_ppm", skip_serializing_if = "is_default_check_ppm")]
    pub check_ppm: u32,
}

fn default_check_ppm() -> u32 {
    crate::governance::jobs::DEFAULT_CHECK_PPM
}

fn is_default_check_ppm(ppm: &u32) -> bool {
    *ppm == default_check_ppm()
}

/// The (contributor, technical) thresholds of each class.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Thresholds {
    pub ordinary: ChamberThresholds,
    pub resource: ChamberThresholds,
    pub constitutional: ChamberThresholds,
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChamberThresholds {
    pub contributor: Threshold,
    pub technical: Threshold,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Windows {
    pub ordinary: u64,
    pub resource: u64,
    pub constitutional: u64,
}

/// What each contribution earns, in credits; grants are kept in thousandths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreditRates {
    pub deposit: u64,
    /// Per unit (CPU-second) of verified compute.
    pub compute: u64,
    /// For a dispute that the ruling upheld.
    pub review: u64,
    /// For each board signature on a ruling.
    pub dispute: u64,
    /// The daily inference allowance of every verified person, funded by the stability pool.
    pub floor: u64,
    /// The stability pool's share of every grant, in parts per million.
    pub stability_share_ppm: u32,
    pub half_life_days: u32,
    /// Per 1,000 tokens of inference served to a member (prompt, answer, texts embedded).
    /// Absent from the JSON at its default, so the records of logs kept before it read and
    /// hash as they did.
    #[serde(default = "default_inference", skip_serializing_if = "is_default_inference")]
    pub inference: u64,
}

/// What 1,000 tokens of inference cost unless the chambers set another price: a commons floor
/// of 20 credits is 20,000 tokens a day.
pub const DEFAULT_INFERENCE: u64 = 1;

fn default_inference() -> u64 {
    DEFAULT_INFERENCE
}

fn is_default_inference(rate: &u64) -> bool {
    *rate == DEFAULT_INFERENCE
}

impl Parameters {
    pub fn new(registers: Vec<Register>) -> Parameters {
        Parameters {
            registers,
            windows: Windows { ordinary: 7 * DAY_MS, resource: 7 * DAY_MS, constitutional: 14 * DAY_MS },
            thresholds: {
                let of = |class: ProposalClass| {
                    let (contributor, technical) = class.thresholds();
                    ChamberThresholds { contributor, technical }
                };
                Thresholds {
                    ordinary: of(ProposalClass::Ordinary),
                    resource: of(ProposalClass::Resource),
                    constitutional: of(ProposalClass::Constitutional),
                }
            },
            attestation_days: 365,
            vouches_required: 0,
            board_quorum: 0,
            deposit_max_bytes: 16 * 1024 * 1024,
            credits: CreditRates {
                deposit: 10,
                compute: 1,
                review: 5,
                dispute: 5,
                floor: 20,
                stability_share_ppm: 100_000,
                half_life_days: 180,
                inference: DEFAULT_INFERENCE,
            },
            mixture_caps: BTreeMap::new(),
            mixture_floors: BTreeMap::new(),
            check_ppm: default_check_ppm(),
        }
    }

    pub fn window(&self, class: ProposalClass) -> u64 {
        match class {
            ProposalClass::Ordinary => self.windows.ordinary,
            ProposalClass::Resource => self.windows.resource,
            ProposalClass::Constitutional => self.windows.constitutional,
        }
    }

    /// The (contributor, technical) thresholds a proposal of `class` needs.
    pub fn thresholds(&self, class: ProposalClass) -> (Threshold, Threshold) {
        let t = match class {
            ProposalClass::Ordinary => self.thresholds.ordinary,
            ProposalClass::Resource => self.thresholds.resource,
            ProposalClass::Constitutional => self.thresholds.constitutional,
        };
        (t.contributor, t.technical)
    }

    pub fn mixture_rules(&self) -> MixtureRules {
        MixtureRules { caps: self.mixture_caps.clone(), floors: self.mixture_floors.clone() }
    }

    /// Board signatures a ruling needs from a board of `board` members.
    pub fn ruling_quorum(&self, board: usize) -> usize {
        if self.board_quorum == 0 { board / 2 + 1 } else { (self.board_quorum as usize).min(board.max(1)) }
    }

    /// The lowest class of proposal that may change `key`, or why the key is unknown.
    pub fn class_of(key: &str) -> Result<ProposalClass, String> {
        Ok(match key {
            "registers"
            | "window.ordinary"
            | "window.resource"
            | "window.constitutional"
            | "attestation.days"
            | "vouching.required"
            | "board.quorum" => ProposalClass::Constitutional,
            "deposit.max-bytes"
            | "credits.deposit"
            | "credits.compute"
            | "credits.review"
            | "credits.dispute"
            | "credits.floor"
            | "credits.stability-share"
            | "credits.half-life-days"
            | "credits.inference"
            | "jobs.check-ppm" => ProposalClass::Resource,
            _ if key.starts_with("mixture.cap.") || key.starts_with("mixture.floor.") => {
                ProposalClass::Ordinary
            }
            _ if threshold_slot(key).is_some() => ProposalClass::Constitutional,
            _ => return Err(format!("unknown parameter '{key}'; the parameters are {}", KEYS.join(", "))),
        })
    }

    /// Sets `key` to `value`, checking its type and range; on error nothing changes.
    pub fn set(&mut self, key: &str, value: &serde_json::Value) -> Result<(), String> {
        Parameters::class_of(key)?;
        let mut next = self.clone();
        let whole = |min: u64, max: u64| -> Result<u64, String> {
            value
                .as_u64()
                .filter(|v| (min..=max).contains(v))
                .ok_or_else(|| format!("{key} must be a whole number from {min} to {max}, not {value}"))
        };
        let small = |min: u64, max: u64| whole(min, max).map(|v| v as u32);
        let in_ms = |e: String| format!("{e} (milliseconds; 604800000 is 7 days)");
        match key {
            "registers" => {
                let registers: Vec<Register> = serde_json::from_value(value.clone())
                    .map_err(|e| format!("registers must be a list of register names: {e}"))?;
                let distinct: std::collections::BTreeSet<_> = registers.iter().collect();
                if distinct.len() != registers.len() || registers.len() > crate::event::MAX_REGISTERS {
                    return Err(format!(
                        "registers must be distinct, at most {}",
                        crate::event::MAX_REGISTERS
                    ));
                }
                if let Some(gone) = self.registers.iter().find(|r| !registers.contains(r)) {
                    return Err(format!(
                        "registers can be added but not removed: deposits carry them ('{gone}' is missing)"
                    ));
                }
                next.registers = registers;
            }
            "window.ordinary" => next.windows.ordinary = whole(1000, 365 * DAY_MS).map_err(in_ms)?,
            "window.resource" => next.windows.resource = whole(1000, 365 * DAY_MS).map_err(in_ms)?,
            "window.constitutional" => {
                next.windows.constitutional = whole(1000, 365 * DAY_MS).map_err(in_ms)?
            }
            "attestation.days" => next.attestation_days = small(1, 3650)?,
            "vouching.required" => next.vouches_required = small(0, 3)?,
            "board.quorum" => next.board_quorum = small(0, 99)?,
            "deposit.max-bytes" => next.deposit_max_bytes = whole(1, 1 << 30)?,
            "credits.deposit" => next.credits.deposit = whole(0, 1_000_000)?,
            "credits.compute" => next.credits.compute = whole(0, 1_000_000)?,
            "credits.review" => next.credits.review = whole(0, 1_000_000)?,
            "credits.dispute" => next.credits.dispute = whole(0, 1_000_000)?,
            "credits.floor" => next.credits.floor = whole(0, 1_000_000)?,
            "credits.stability-share" => next.credits.stability_share_ppm = small(0, 1_000_000)?,
            "credits.half-life-days" => next.credits.half_life_days = small(1, 3650)?,
            "credits.inference" => next.credits.inference = whole(0, 1_000_000)?,
            "jobs.check-ppm" => next.check_ppm = small(0, 1_000_000)?,
            _ if threshold_slot(key).is_some() => {
                let (class, chamber, field) = threshold_slot(key).unwrap_or_default();
                let share = value
                    .as_f64()
                    .filter(|v| (0.0..=1.0).contains(v))
                    .ok_or_else(|| format!("{key} must be a number from 0 to 1"))?;
                if field == "majority" && !(0.5..1.0).contains(&share) {
                    return Err(format!("{key} must be at least 0.5 (a majority) and below 1"));
                }
                let class = match class {
                    "ordinary" => &mut next.thresholds.ordinary,
                    "resource" => &mut next.thresholds.resource,
                    _ => &mut next.thresholds.constitutional,
                };
                let chamber =
                    if chamber == "contributor" { &mut class.contributor } else { &mut class.technical };
                if field == "majority" {
                    chamber.majority = share;
                } else {
                    chamber.quorum = share;
                }
            }
            _ => {
                let (map, name) = match key.strip_prefix("mixture.cap.") {
                    Some(name) => (&mut next.mixture_caps, name),
                    None => (&mut next.mixture_floors, key.trim_start_matches("mixture.floor.")),
                };
                let register = Register::new(name).map_err(|e| e.to_string())?;
                match value {
                    serde_json::Value::Null => {
                        map.remove(&register);
                    }
                    _ => {
                        let share = value.as_f64().filter(|v| (0.0..=1.0).contains(v)).ok_or_else(|| {
                            format!("{key} must be a number from 0 to 1 (or null to clear it)")
                        })?;
                        map.insert(register, share);
                    }
                }
                mixture::check_rules(&next.registers, &next.mixture_rules()).map_err(|e| e.to_string())?;
            }
        }
        *self = next;
        Ok(())
    }
}

/// `threshold.<class>.<chamber>.<majority|quorum>` as its three parts.
fn threshold_slot(key: &str) -> Option<(&str, &str, &str)> {
    let mut parts = key.strip_prefix("threshold.")?.split('.');
    let slot = (parts.next()?, parts.next()?, parts.next()?);
    let known = ["ordinary", "resource", "constitutional"].contains(&slot.0)
        && ["contributor", "technical"].contains(&slot.1)
        && ["majority", "quorum"].contains(&slot.2)
        && parts.next().is_none();
    known.then_some(slot)
}

/// The parameter keys, for error messages.
pub const KEYS: [&str; 20] = [
    "registers",
    "window.ordinary",
    "window.resource",
    "window.constitutional",
    "attestation.days",
    "vouching.required",
    "board.quorum",
    "deposit.max-bytes",
    "credits.deposit",
    "credits.compute",
    "credits.review",
    "credits.dispute",
    "credits.floor",
    "credits.stability-share",
    "credits.half-life-days",
    "credits.inference",
    "jobs.check-ppm",
    "mixture.cap.<register>",
    "mixture.floor.<register>",
    "threshold.<ordinary|resource|constitutional>.<contributor|technical>.<majority|quorum>",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_check_type_range_and_class() {
        let mut params = Parameters::new(Register::defaults());
        assert_eq!(Parameters::class_of("registers"), Ok(ProposalClass::Constitutional));
        assert_eq!(Parameters::class_of("mixture.cap.sacred"), Ok(ProposalClass::Ordinary));
        assert!(
            Parameters::class_of("transfer.enabled").expect_err("unknown key").contains("window.ordinary")
        );

        params.set("mixture.cap.sacred", &serde_json::json!(0.0)).expect("cap");
        assert_eq!(params.mixture_caps[&Register::new("sacred").expect("r")], 0.0);
        let err = params.set("mixture.floor.sacred", &serde_json::json!(0.1)).expect_err("floor over cap");
        assert!(err.contains("sacred"), "{err}");
        assert!(params.set("window.ordinary", &serde_json::json!(-3)).is_err());
        assert!(params.set("mixture.cap.poetry", &serde_json::json!(0.5)).is_err(), "unknown register");
        let shrink = serde_json::json!(["narrative"]);
        assert!(params.set("registers", &shrink).expect_err("shrinks").contains("not removed"));
        let grow = serde_json::json!([
            "narrative",
            "conversational",
            "technical",
            "sacred",
            "oral",
            "pedagogical",
            "lyric",
            "encyclopedic",
            "legal"
        ]);
        params.set("registers", &grow).expect("adds a register");
        assert_eq!(params.registers.len(), 9);
        assert_eq!(
            Parameters::class_of("threshold.ordinary.contributor.quorum"),
            Ok(ProposalClass::Constitutional)
        );
        params.set("threshold.ordinary.contributor.quorum", &serde_json::json!(0.2)).expect("quorum");
        assert_eq!(params.thresholds(ProposalClass::Ordinary).0.quorum, 0.2);
        assert!(params.set("threshold.ordinary.technical.majority", &serde_json::json!(0.3)).is_err());
        assert!(Parameters::class_of("threshold.ordinary.board.quorum").is_err());
        assert_eq!(params.ruling_quorum(3), 2);
        assert_eq!(params.ruling_quorum(4), 3);
    }
}
