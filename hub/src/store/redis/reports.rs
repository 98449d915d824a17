//! Leads' reports in Redis.

use super::*;

impl RedisStore {
    /// See [`Store::add_report`].
    pub(super) async fn insert_report(
        &self,
        mut report: ReportView,
    ) -> Result<ReportView, StoreError> {
        let mut c = self.connection();
        let n: u64 = self.seen(c.incr(REPORT_SEQ, 1).await)?;
        report.id = format!("REP-{n:06}");
        let json = serde_json::to_string(&report).map_err(io)?;
        self.seen(c.hset::<_, _, _, ()>(REPORTS, &report.id, json).await)?;
        Ok(report)
    }

    /// See [`Store::reports`].
    pub(super) async fn read_reports(&self) -> Result<Vec<ReportView>, StoreError> {
        let mut c = self.connection();
        let (all, links): (HashMap<String, String>, HashMap<String, String>) = self.seen(
            redis::pipe()
                .hgetall(REPORTS)
                .hgetall(REPORT_LINKS)
                .query_async(&mut c)
                .await,
        )?;
        let mut out: Vec<ReportView> = all
            .values()
            .map(|j| parse::<ReportView>(j))
            .collect::<Result<_, _>>()?;
        for r in &mut out {
            r.incident = links.get(&r.id).cloned();
        }
        // Newest first: ids are zero-padded and grow.
        out.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(out)
    }

    /// See [`Store::link_report`].
    pub(super) async fn link_report_once(
        &self,
        report: &str,
        incident: &str,
    ) -> Result<bool, StoreError> {
        let mut c = self.connection();
        let exists: bool = self.seen(c.hexists(REPORTS, report).await)?;
        if !exists {
            return Ok(false);
        }
        // First promotion wins.
        self.seen(c.hset_nx(REPORT_LINKS, report, incident).await)
    }
}
