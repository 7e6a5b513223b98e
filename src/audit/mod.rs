//! The tamper-evident audit log.
//!
//! Every issuance, status change, amendment, client registration and verification (allowed or
//! refused) is appended as an entry whose hash is SHA-256 over the previous entry's hash and the
//! entry's canonical content (`seq`, time, actor, action, subject, details). Every
//! [`CHECKPOINT_EVERY`] entries a checkpoint `{seq, hash, at}` is signed (COSE_Sign1, ES256) with
//! the region root key, and no later than [`DEFAULT_CHECKPOINT_WITHIN`] (`audit_checkpoint_seconds`)
//! after an entry was appended (while the node that appended it runs), so a removed tail is
//! detected too, however quiet the log. `elicense audit verify` recomputes it all and names the
//! first bad entry.
//!
//! The holder's access list finds a subject's entries through `audit_subjects`, which each
//! node's indexer fills in bulk from the committed log once a second (the unindexed tail
//! is scanned directly); `audit verify` checks that index against the log too.
//!
//! Appends go through one writer task per node that commits whatever has queued up as one
//! multi-row INSERT (group commit: one round trip to the database per batch, the chain's end
//! remembered between batches) and answers each caller after the commit: a request is
//! acknowledged only once its entry is durable.

use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::license::record::{Canonical, sign_detached, verify_detached};
use crate::pki::{Pki, cert_kid};
use crate::store::{CheckpointRow, NewAuditEntry, Store};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

/// A checkpoint is signed at least every this many entries.
pub const CHECKPOINT_EVERY: i64 = 1000;

/// A checkpoint covers an entry at the latest this long after the entry was appended (the
/// default of `audit_checkpoint_seconds`): on a quiet log the tail would otherwise wait for
/// [`CHECKPOINT_EVERY`] entries, and until then could be cut off unnoticed.
pub const DEFAULT_CHECKPOINT_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// How often each node's indexer brings the subject index (`audit_subjects`, which the
/// holder's access list reads) up to the end of the log. Until then the access list scans the
/// unindexed tail by sequence number, so this bounds that scan (about a second of the log),
/// not what a holder sees. Each run writes every index page it touches once, however many of
/// its entries landed there: the longer the interval, the more entries about one subject share
/// a write. `bench --verify-only --quick --verify-seconds 10` (2,000 licenses), experiment
/// builds with the interval as a switch: every 200 ms 0.42 of the raw verify rate with p99
/// 36-39 ms (each run rewrote nearly as many pages as it had entries, holding SQLite's write
/// lock while the log's commits waited); every second 0.45-0.49 with p99 6.6-7.3 ms.
pub const INDEX_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Most entries indexed in one transaction. On SQLite the indexer holds the one write lock
/// while it runs, and the audit log's next commit waits behind it; this bounds that wait when
/// the indexer catches up after a pause, while a run at full verification load (one interval's
/// entries) is still one transaction (splitting it rewrites the shared pages once per part).
pub const INDEX_CHUNK: i64 = 20_000;

/// An entry to append.
#[derive(Debug, Clone)]
pub struct Entry {
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: Value,
}

impl Entry {
    pub fn new(actor: &str, action: &str, subject: &str, details: Value) -> Self {
        Entry {
            actor: actor.to_string(),
            action: action.to_string(),
            subject: subject.to_string(),
            details,
        }
    }
}

/// Makes a receipt's statements from the sequence number and time of the entry it cites.
pub type Statements = Box<dyn FnOnce(i64, i64) -> Result<Vec<u8>> + Send>;

/// An entry to append, the receipt to sign with it (if any), and where to send the entry's
/// sequence number, its time and the receipt.
type Job = (
    Entry,
    Option<Statements>,
    oneshot::Sender<Result<(i64, i64, Option<String>)>>,
);

/// A handle to this node's audit writer.
#[derive(Clone, Debug)]
pub struct Audit {
    tx: mpsc::Sender<Job>,
}

/// The hash of an entry in the chain: SHA-256 over the previous hash and the canonical JSON of
/// `{seq, at, actor, action, subject, details}` (keys sorted, no spaces).
///
/// `details` is stored as canonical JSON text (the writer serialises it so), and goes into the
/// content as it is stored: written here directly, the content is the text `Canonical` of the
/// same object gives (a test checks it against that definition), without parsing the details
/// back into a value first. A stored text that is not canonical — edited behind the service's
/// back, even into an equivalent form — no longer hashes to the stored hash.
pub fn link(prev: &[u8], seq: i64, e: &NewAuditEntry) -> Vec<u8> {
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let content = format!(
        "{{\"action\":{},\"actor\":{},\"at\":{},\"details\":{},\"seq\":{},\"subject\":{}}}",
        quoted(&e.action),
        quoted(&e.actor),
        e.at,
        e.details,
        seq,
        quoted(&e.subject),
    );
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(prev);
    ctx.update(content.as_bytes());
    ctx.finish().as_ref().to_vec()
}

fn checkpoint_payload(seq: i64, hash: &[u8], at: i64) -> Vec<u8> {
    serde_json::to_vec(&Canonical(
        &json!({"seq": seq, "hash": hex::encode(hash), "at": at}),
    ))
    .unwrap_or_default()
}

/// The jobs that queued up behind `first` (at most [`crate::store::MAX_AUDIT_BATCH`]).
fn take_batch(first: Job, rx: &mut mpsc::Receiver<Job>) -> Vec<Job> {
    let mut jobs = vec![first];
    while jobs.len() < crate::store::MAX_AUDIT_BATCH {
        match rx.try_recv() {
            Ok(j) => jobs.push(j),
            Err(_) => break,
        }
    }
    jobs
}

/// The entries of a batch, stamped with one time, details as canonical JSON.
fn entries_of(jobs: &[Job], at: i64) -> Vec<NewAuditEntry> {
    jobs.iter()
        .map(|(e, _, _)| NewAuditEntry {
            at,
            actor: e.actor.clone(),
            action: e.action.clone(),
            subject: e.subject.clone(),
            details: serde_json::to_string(&Canonical(&e.details)).unwrap_or_default(),
        })
        .collect()
}

/// Answers every job of a batch with its sequence number and time, or all of them with the
/// error. The jobs that asked for a receipt are answered by a task of their own that signs
/// their statements under one signature (receipt::sign_batch), so the writer goes on to its
/// next batch meanwhile.
fn answer(jobs: Vec<Job>, r: &Result<Vec<i64>>, pki: &Pki, at: i64) {
    match r {
        Ok(seqs) => {
            let mut with = Vec::new();
            for ((_, f, reply), seq) in jobs.into_iter().zip(seqs) {
                match f {
                    None => {
                        let _ = reply.send(Ok((*seq, at, None)));
                    }
                    Some(f) => match f(*seq, at) {
                        Ok(st) => with.push((st, *seq, reply)),
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    },
                }
            }
            if !with.is_empty() {
                let pki = pki.clone();
                tokio::spawn(async move {
                    let texts = {
                        let leaves: Vec<&[u8]> =
                            with.iter().map(|(s, _, _)| s.as_slice()).collect();
                        crate::verify::receipt::sign_batch(&pki, &leaves).await
                    };
                    match texts {
                        Ok(texts) => {
                            for ((_, seq, reply), t) in with.into_iter().zip(texts) {
                                let _ = reply.send(Ok((seq, at, Some(t))));
                            }
                        }
                        Err(e) => {
                            for (_, _, reply) in with {
                                let _ = reply.send(Err(e.for_waiter("receipt signer")));
                            }
                        }
                    }
                });
            }
        }
        Err(e) => {
            if e.kind() == crate::error::Kind::Unavailable {
                tracing::warn!(error = %e, "audit append failed");
            } else {
                tracing::error!(error = %e, "audit append failed");
            }
            for (_, _, reply) in jobs {
                let _ = reply.send(Err(e.for_waiter("audit")));
            }
        }
    }
}

/// What a writer remembers between batches.
#[derive(Default)]
struct WriterState {
    /// The newest checkpoint this writer knows of (never newer than the database's).
    known_checkpoint: Option<i64>,
    /// Where the chain ends, as of this writer's last append (None: ask the database).
    tail: Option<crate::store::ChainTail>,
    /// Since when that end has been beyond every checkpoint this writer knows of.
    unsigned_since: Option<tokio::time::Instant>,
}

impl WriterState {
    /// Where this writer starts: the chain's end and the newest checkpoint. A tail left
    /// unsigned by an earlier run (a crash, a kill) is then signed within the interval too.
    async fn load(store: &Store) -> Result<WriterState> {
        let tail = store.audit_tail().await?;
        let done = store.last_checkpoint_seq().await?;
        let unsigned = tail.0 > done;
        Ok(WriterState {
            known_checkpoint: Some(done),
            tail: unsigned.then_some(tail),
            unsigned_since: unsigned.then(tokio::time::Instant::now),
        })
    }

    /// After an append: signs a checkpoint when the chain crossed a block of
    /// [`CHECKPOINT_EVERY`] entries, or when `force` (its end has waited its interval, or the
    /// writer stops) and no checkpoint covers it yet.
    async fn checkpoint(&mut self, store: &Store, pki: &Pki, at: i64, force: bool) {
        let Some((last, last_hash)) = &self.tail else {
            return;
        };
        if self.known_checkpoint.is_none_or(|k| k < *last) && self.unsigned_since.is_none() {
            self.unsigned_since = Some(tokio::time::Instant::now());
        }
        match checkpoint_if_due(
            store,
            pki,
            *last,
            last_hash,
            at,
            &mut self.known_checkpoint,
            force,
        )
        .await
        {
            Ok(()) => {
                if self.known_checkpoint.is_some_and(|k| k >= *last) {
                    self.unsigned_since = None;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "audit checkpoint failed");
                // Tried again after another interval (or with the next append's block), not
                // in a loop against a database that just failed.
                if force {
                    self.unsigned_since = Some(tokio::time::Instant::now());
                }
            }
        }
    }
}

impl Audit {
    /// Starts the writer task, with checkpoints every [`CHECKPOINT_EVERY`] entries and within
    /// [`DEFAULT_CHECKPOINT_WITHIN`] of an entry.
    pub fn start(store: Store, pki: Pki, clock: SharedClock) -> Audit {
        Self::start_with(store, pki, clock, DEFAULT_CHECKPOINT_WITHIN)
    }

    /// [`Audit::start`], with every entry covered by a checkpoint within `within` of its append.
    pub fn start_with(
        store: Store,
        pki: Pki,
        clock: SharedClock,
        within: std::time::Duration,
    ) -> Audit {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(index_subjects(store.clone(), tx.downgrade()));
        tokio::spawn(async move {
            let mut rx = rx;
            let mut state = WriterState::load(&store).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "audit writer starts without the chain's end");
                WriterState::default()
            });
            loop {
                // Wait for entries; or, with an unsigned tail, until its interval is over.
                let next = match state.unsigned_since {
                    Some(since) => tokio::select! {
                        j = rx.recv() => j,
                        () = tokio::time::sleep_until(since + within) => {
                            state.checkpoint(&store, &pki, clock.unix(), true).await;
                            continue;
                        }
                    },
                    None => rx.recv().await,
                };
                let Some(first) = next else {
                    // Every handle is gone: the node stops. Its tail gets its checkpoint now.
                    state.checkpoint(&store, &pki, clock.unix(), true).await;
                    return;
                };
                let jobs = take_batch(first, &mut rx);
                let at = clock.unix();
                let entries = entries_of(&jobs, at);
                let r = store.append_audit(&entries, link, &mut state.tail).await;
                answer(jobs, &r, &pki, at);
                if r.is_ok() {
                    let due = state.unsigned_since.is_some_and(|t| t.elapsed() >= within);
                    state.checkpoint(&store, &pki, at, due).await;
                }
            }
        });
        Audit { tx }
    }

    /// Appends an entry; returns its sequence number once it is committed.
    pub async fn append(&self, e: Entry) -> Result<i64> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((e, None, reply))
            .await
            .map_err(|_| Error::internal("audit writer stopped"))?;
        rx.await
            .map_err(|_| Error::internal("audit writer stopped"))?
            .map(|(seq, _, _)| seq)
    }
}

/// The subject indexer of one node: every [`INDEX_EVERY`], indexes what the log gained since
/// (in chunks of [`INDEX_CHUNK`] until it has caught up), for as long as the node's audit
/// writer takes appends. It keeps no state of its own: the index's end is in the database, so
/// a restarted node, or another node, carries on where any indexer stopped.
async fn index_subjects(store: Store, writer: mpsc::WeakSender<Job>) {
    let mut tick = tokio::time::interval(INDEX_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if writer.upgrade().is_none() {
            return;
        }
        loop {
            match store.index_audit_subjects(INDEX_CHUNK).await {
                Ok(n) if n >= INDEX_CHUNK => tokio::task::yield_now().await,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "audit subject index not brought up to date");
                    break;
                }
            }
        }
    }
}

impl Audit {
    /// Appends an entry and, once it is committed, signs the receipt whose statements `f` makes
    /// from the entry's sequence number and time, together with the other receipts of its
    /// batch. Returns the sequence number, the time and the receipt's text.
    pub async fn append_with_receipt(&self, e: Entry, f: Statements) -> Result<(i64, i64, String)> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((e, Some(f), reply))
            .await
            .map_err(|_| Error::internal("audit writer stopped"))?;
        let (seq, at, receipt) = rx
            .await
            .map_err(|_| Error::internal("audit writer stopped"))??;
        let receipt = receipt.ok_or_else(|| Error::internal("receipt missing"))?;
        Ok((seq, at, receipt))
    }
}

/// Signs a checkpoint when the entries up to `last` crossed a multiple of [`CHECKPOINT_EVERY`]
/// since the newest checkpoint, or, with `force`, when no checkpoint covers `last` yet. `known`
/// is the newest one this writer has seen: while `last` is within its block (and not forced),
/// the database (which can only be further along) is not asked.
async fn checkpoint_if_due(
    store: &Store,
    pki: &Pki,
    last: i64,
    hash: &[u8],
    at: i64,
    known: &mut Option<i64>,
    force: bool,
) -> Result<()> {
    let same_block = |k: i64| last / CHECKPOINT_EVERY <= k / CHECKPOINT_EVERY;
    if known.is_some_and(|k| k >= last || (!force && same_block(k))) {
        return Ok(());
    }
    let done = store.last_checkpoint_seq().await?;
    *known = Some(done);
    if done >= last || (!force && same_block(done)) {
        return Ok(());
    }
    sign_checkpoint(store, pki, last, hash, at).await?;
    *known = Some(last);
    Ok(())
}

/// Signs and stores a checkpoint for the entry `seq` with hash `hash`.
pub async fn sign_checkpoint(
    store: &Store,
    pki: &Pki,
    seq: i64,
    hash: &[u8],
    at: i64,
) -> Result<()> {
    let root = pki.root().await?;
    let key = pki.keys().signer(root.key()?).await?;
    let signature = sign_detached(
        &checkpoint_payload(seq, hash, at),
        &cert_kid(&root.der),
        key.as_ref(),
    )?;
    store
        .insert_checkpoint(&CheckpointRow {
            seq,
            hash: hash.to_vec(),
            at,
            signature,
            cert_serial: root.serial,
        })
        .await
}

/// The outcome of `audit verify`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub entries: i64,
    pub checkpoints: usize,
    /// The first problem found, naming the entry.
    pub problem: Option<String>,
}

/// Recomputes the whole chain, checks every checkpoint, then the subject index against the log.
pub async fn verify(store: &Store, pki: &Pki) -> Result<Report> {
    let mut prev = vec![0u8; 32];
    let mut expected = 1i64;
    let mut hashes_at = std::collections::HashMap::new();
    let checkpoints = store.checkpoints().await?;
    let wanted: std::collections::HashSet<i64> = checkpoints.iter().map(|c| c.seq).collect();
    let mut problem = None;
    'outer: loop {
        let page = store.audit_page(expected - 1, 5000).await?;
        if page.is_empty() {
            break;
        }
        for row in page {
            if row.seq != expected {
                problem = Some(format!("entry {expected} is missing (next is {})", row.seq));
                break 'outer;
            }
            if row.prev_hash != prev {
                problem = Some(format!(
                    "entry {} does not follow entry {}: the chain is broken",
                    row.seq,
                    row.seq - 1
                ));
                break 'outer;
            }
            let e = NewAuditEntry {
                at: row.at,
                actor: row.actor.clone(),
                action: row.action.clone(),
                subject: row.subject.clone(),
                details: row.details.clone(),
            };
            if link(&prev, row.seq, &e) != row.hash {
                problem = Some(format!(
                    "entry {} was changed: its hash does not match its content",
                    row.seq
                ));
                break 'outer;
            }
            if wanted.contains(&row.seq) {
                hashes_at.insert(row.seq, row.hash.clone());
            }
            prev = row.hash;
            expected += 1;
        }
    }
    let entries = expected - 1;
    if problem.is_none() {
        let root = pki.root().await?;
        let (_, cert) = x509_parser::parse_x509_certificate(&root.der)
            .map_err(|e| Error::internal(format!("root: {e}")))?;
        let key = cert.public_key().subject_public_key.data.to_vec();
        for c in &checkpoints {
            if verify_detached(
                &c.signature,
                &checkpoint_payload(c.seq, &c.hash, c.at),
                &key,
            )
            .is_err()
            {
                problem = Some(format!("checkpoint at entry {} has a bad signature", c.seq));
                break;
            }
            match hashes_at.get(&c.seq) {
                Some(h) if *h == c.hash => {}
                Some(_) => {
                    problem = Some(format!(
                        "entry {} differs from its signed checkpoint",
                        c.seq
                    ));
                    break;
                }
                None => {
                    problem = Some(format!(
                        "entries after {entries} were removed: a signed checkpoint covers entry {}",
                        c.seq
                    ));
                    break;
                }
            }
        }
    }
    // The chain and its checkpoints are whole: the index the access list reads must match it.
    if problem.is_none() {
        problem = store.audit_subjects_problem().await?;
    }
    Ok(Report {
        entries,
        checkpoints: checkpoints.len(),
        problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition `link` implements: the canonical JSON of the whole content as a value.
    fn link_by_definition(prev: &[u8], seq: i64, e: &NewAuditEntry) -> Vec<u8> {
        let details: Value = serde_json::from_str(&e.details).unwrap_or(Value::Null);
        let content = json!({
            "seq": seq, "at": e.at, "actor": e.actor, "action": e.action, "subject": e.subject,
            "details": details,
        });
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(prev);
        ctx.update(
            serde_json::to_string(&Canonical(&content))
                .unwrap_or_default()
                .as_bytes(),
        );
        ctx.finish().as_ref().to_vec()
    }

    #[test]
    fn link_is_the_canonical_content_hash() {
        let details = [
            json!({}),
            json!({"matter_code": "M-1", "case_number": "案件/2026\"x\"\\\n\u{1}", "basis": "grant",
                   "fields_released": ["holder_name", "b", "a"], "authentic": true, "status": "01",
                   "grants": [], "n": -12, "f": 1.5, "big": u64::MAX, "nested": {"z": null, "a": [1, {"y": 2, "x": 3}]}}),
            json!({"emoji": "😀", "tab": "\t", "slash": "/", "e": 1e300}),
        ];
        let texts = ["unauthenticated", "客户端-1", "a\"b", "", "\u{7f}\u{2028}"];
        let mut prev = vec![7u8; 32];
        for (i, d) in details.iter().enumerate() {
            for (j, t) in texts.iter().enumerate() {
                let e = NewAuditEntry {
                    at: 1_700_000_000 + i as i64,
                    actor: t.to_string(),
                    action: texts[(j + 1) % texts.len()].to_string(),
                    subject: texts[(j + 2) % texts.len()].to_string(),
                    details: serde_json::to_string(&Canonical(d)).unwrap(),
                };
                let seq = (i * 10 + j) as i64 + 1;
                let h = link(&prev, seq, &e);
                assert_eq!(h, link_by_definition(&prev, seq, &e), "{e:?}");
                prev = h;
            }
        }
        // Stored text that is not canonical no longer matches its hash.
        let e = NewAuditEntry {
            at: 1,
            actor: "a".into(),
            action: "b".into(),
            subject: "c".into(),
            details: r#"{"b":1,"a":2}"#.into(),
        };
        assert_ne!(link(&prev, 1, &e), link_by_definition(&prev, 1, &e));
    }
}
