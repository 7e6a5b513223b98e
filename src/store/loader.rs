//! Batched reads of licenses by lineage, the lookup of every verification.
//!
//! Each query through sqlx is a hand-off to a database connection's worker (a thread for
//! SQLite, a socket round trip for PostgreSQL) and back. Under load, verifications arrive many
//! at a time: one loader task per node takes whatever lookups have queued up and answers them
//! all with one query (the read-side twin of the audit log's group commit). An idle node sends
//! a batch of one at once, so a lone request waits for nothing. Nothing is cached: every batch
//! reads the database, so a status change committed anywhere is seen by the next batch.

use super::{LicenseRow, Store};
use crate::error::Result;
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};

/// The most lookups answered by one query.
pub const MAX_BATCH: usize = 128;

type Job = (String, oneshot::Sender<Result<Option<LicenseRow>>>);

/// A handle to this node's loader task.
#[derive(Clone, Debug)]
pub struct LineageLoader {
    tx: mpsc::Sender<Job>,
    store: Store,
}

impl LineageLoader {
    /// Starts the loader task on the current runtime.
    pub fn start(store: Store) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(4096);
        let db = store.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut jobs = vec![first];
                while jobs.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                let mut wanted: Vec<String> = jobs.iter().map(|(l, _)| l.clone()).collect();
                wanted.sort_unstable();
                wanted.dedup();
                match db.licenses_by_lineages(&wanted).await {
                    Ok(rows) => {
                        let by: HashMap<String, LicenseRow> =
                            rows.into_iter().map(|r| (r.lineage.clone(), r)).collect();
                        for (lineage, reply) in jobs {
                            let _ = reply.send(Ok(by.get(&lineage).cloned()));
                        }
                    }
                    Err(e) => {
                        for (_, reply) in jobs {
                            let _ = reply.send(Err(e.for_waiter("license lookup")));
                        }
                    }
                }
            }
        });
        LineageLoader { tx, store }
    }

    /// The current version of a lineage, if it exists.
    pub async fn get(&self, lineage: &str) -> Result<Option<LicenseRow>> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send((lineage.to_string(), reply)).await.is_ok()
            && let Ok(answer) = rx.await
        {
            return answer;
        }
        // The loader task is gone (its runtime is shutting down): ask directly.
        self.store.license_by_lineage(lineage).await
    }
}
