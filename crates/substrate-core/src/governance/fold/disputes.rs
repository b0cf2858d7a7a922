//! The fold of disputes and rulings: opening one, the board's endorsements, and what a ruling or
//! a removal does to the deposit.

use super::*;

impl State {
    pub(super) fn open_dispute(
        &self,
        index: u64,
        time: u64,
        signer: &str,
        d: &Dispute,
        params: &Parameters,
    ) -> Result<Vec<Change>, Rejection> {
        self.require_member(signer, time)?;
        let cid = d.cid.clone().ok_or(Rejection::NoGenesis)?;
        self.active_deposit(&cid)?;
        if d.ground == Ground::WrongRegister {
            let Some(register) = &d.register else {
                return Err(Rejection::DisputeRegister);
            };
            self.check_ruling(&cid, &Ruling::Relabel { register: register.clone() }, params)?;
        }
        Ok(vec![Change::Record(Record::Dispute(DisputeRecord {
            id: index,
            cid,
            ground: d.ground,
            detail: d.detail.clone(),
            register: d.register.clone(),
            opened_by: signer.to_owned(),
            opened_at: time,
            status: DisputeStatus::Open,
            endorsements: Vec::new(),
        }))])
    }

    pub(super) fn endorse_ruling(
        &self,
        index: u64,
        time: u64,
        signers: &[String],
        r: &DisputeRuling,
        params: &Parameters,
    ) -> Result<Vec<Change>, Rejection> {
        let g = &self.governance;
        self.require_stewards(signers, time)?;
        let mut dispute = g.disputes.get(&r.dispute).cloned().ok_or(Rejection::UnknownDispute(r.dispute))?;
        if dispute.status != DisputeStatus::Open {
            return Err(Rejection::AlreadyRuled(r.dispute));
        }
        self.check_ruling(&dispute.cid, &r.ruling, params)?;
        let position = match dispute.endorsements.iter().position(|e| e.ruling == r.ruling) {
            Some(position) => position,
            None => {
                dispute.endorsements.push(Endorsement { ruling: r.ruling.clone(), signers: Vec::new() });
                dispute.endorsements.len() - 1
            }
        };
        let endorsement = &mut dispute.endorsements[position];
        // An entry that adds no signature would be an act that changed nothing: say so instead.
        if signers.iter().all(|s| endorsement.signers.contains(s)) {
            return Err(Rejection::AlreadyEndorsed(r.dispute));
        }
        for signer in signers {
            if !endorsement.signers.contains(signer) {
                endorsement.signers.push(signer.clone());
            }
        }
        // Signatures of stewards who have since left the board no longer count.
        let signed_by: Vec<String> =
            endorsement.signers.iter().filter(|s| self.acting_steward(s, time)).cloned().collect();
        let mut changes = Vec::new();
        if signed_by.len() >= params.ruling_quorum(g.board.members.len()) {
            let mut credits = CreditBook::new(g, params);
            let mut touched = BTreeMap::new();
            self.apply_ruling(&dispute.cid, &r.ruling, index, time, &mut touched, &mut credits);
            changes.extend(touched.into_values().map(Change::Deposit));
            for signer in &signed_by {
                credits.grant(signer, params.credits.dispute, time);
            }
            if r.ruling != Ruling::Dismiss {
                credits.grant(&dispute.opened_by, params.credits.review, time);
            }
            dispute.status =
                DisputeStatus::Ruled { ruling: r.ruling.clone(), log_index: index, signers: signed_by };
            changes.push(Change::Record(Record::Dispute(dispute)));
            changes.extend(credits.into_changes());
        } else {
            changes.push(Change::Record(Record::Dispute(dispute)));
        }
        Ok(changes)
    }

    pub(super) fn active_deposit(&self, cid: &Cid) -> Result<&DepositRecord, Rejection> {
        let record = self.deposits.get(cid).ok_or_else(|| Rejection::UnknownDeposit(cid.to_string()))?;
        if record.status.is_gone() {
            return Err(Rejection::Withdrawn(cid.to_string()));
        }
        Ok(record)
    }

    /// Whether `ruling` can apply to the deposit `cid` as it stands.
    pub(super) fn check_ruling(
        &self,
        cid: &Cid,
        ruling: &Ruling,
        params: &Parameters,
    ) -> Result<(), Rejection> {
        let record = self.active_deposit(cid)?;
        match ruling {
            Ruling::Relabel { register } => {
                if !params.registers.contains(register) {
                    return Err(Rejection::UnknownRegister {
                        register: register.to_string(),
                        vocabulary: params.registers.iter().map(ToString::to_string).collect(),
                    });
                }
                if &record.register == register {
                    return Err(Rejection::SameRegister {
                        cid: cid.to_string(),
                        register: register.to_string(),
                    });
                }
            }
            Ruling::NarrowConsent { consent } => {
                if !record.consent.narrows_to(*consent) || record.consent == *consent {
                    return Err(Rejection::ConsentWidening { from: record.consent, to: *consent });
                }
            }
            Ruling::Remove | Ruling::Dismiss => {}
        }
        Ok(())
    }

    /// Applies `ruling` to the deposit `cid` as `touched` (this entry's changed deposits) or the
    /// state has it; a deposit already gone is left alone.
    pub(super) fn apply_ruling(
        &self,
        cid: &Cid,
        ruling: &Ruling,
        index: u64,
        time: u64,
        touched: &mut BTreeMap<Cid, DepositRecord>,
        credits: &mut CreditBook,
    ) {
        let Some(mut record) = self.current(cid, touched) else { return };
        match ruling {
            Ruling::Relabel { register } => {
                record.secondary_registers.retain(|r| r != register);
                record.register = register.clone();
            }
            Ruling::NarrowConsent { consent } => {
                if !record.consent.narrows_to(*consent) {
                    return;
                }
                record.consent = *consent;
            }
            Ruling::Remove => return self.remove(cid, index, time, touched, credits),
            Ruling::Dismiss => return,
        }
        record.history.push(index);
        touched.insert(cid.clone(), record);
    }

    /// Removes a deposit by the commons' decision; the depositor's credit for it is taken back.
    pub(super) fn remove(
        &self,
        cid: &Cid,
        index: u64,
        time: u64,
        touched: &mut BTreeMap<Cid, DepositRecord>,
        credits: &mut CreditBook,
    ) {
        let Some(mut record) = self.current(cid, touched) else { return };
        record.status = DepositStatus::Removed { log_index: index, at: time };
        record.history.push(index);
        credits.take_back(&record.depositor, credits.rates_deposit(), time);
        touched.insert(cid.clone(), record);
    }

    /// The deposit `cid` as this entry has changed it so far, if it is still active.
    pub(super) fn current(&self, cid: &Cid, touched: &BTreeMap<Cid, DepositRecord>) -> Option<DepositRecord> {
        touched.get(cid).or_else(|| self.deposits.get(cid)).filter(|d| !d.status.is_gone()).cloned()
    }
}
