//! The tamper-evident audit log.
//!
//! Every issuance, status change, amendment, client registration and verification (allowed or
//! refused) is appended as an entry whose hash is SHA-256 over the previous entry's hash and the
//! entry's canonical content (`seq`, time, actor, action, subject, details). Every
//! [`CHECKPOINT_EVERY`] entries a checkpoint `{seq, hash, at}` is signed (COSE_Sign1, ES256) with
//! the region root key, so a removed tail is detected too. `elicense audit verify` recomputes it
//! all and names the first bad entry.
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

type Job = (Entry, oneshot::Sender<Result<i64>>);

/// A handle to this node's audit writer.
#[derive(Clone, Debug)]
pub struct Audit {
    tx: mpsc::Sender<Job>,
}

/// The hash of an entry in the chain.
pub fn link(prev: &[u8], seq: i64, e: &NewAuditEntry) -> Vec<u8> {
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

fn checkpoint_payload(seq: i64, hash: &[u8], at: i64) -> Vec<u8> {
    serde_json::to_vec(&Canonical(
        &json!({"seq": seq, "hash": hex::encode(hash), "at": at}),
    ))
    .unwrap_or_default()
}

impl Audit {
    /// Starts the writer task.
    pub fn start(store: Store, pki: Pki, clock: SharedClock) -> Audit {
        let (tx, mut rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(async move {
            // The newest checkpoint this writer knows of (never newer than the database's).
            let mut known_checkpoint = None;
            // Where the chain ends, as of this writer's last append (None: ask the database).
            let mut tail = None;
            while let Some(first) = rx.recv().await {
                let mut jobs = vec![first];
                while jobs.len() < crate::store::MAX_AUDIT_BATCH {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                let at = clock.unix();
                let entries: Vec<NewAuditEntry> = jobs
                    .iter()
                    .map(|(e, _)| NewAuditEntry {
                        at,
                        actor: e.actor.clone(),
                        action: e.action.clone(),
                        subject: e.subject.clone(),
                        details: serde_json::to_string(&Canonical(&e.details)).unwrap_or_default(),
                    })
                    .collect();
                match store.append_audit(&entries, link, &mut tail).await {
                    Ok(seqs) => {
                        for ((_, reply), seq) in jobs.into_iter().zip(seqs) {
                            let _ = reply.send(Ok(seq));
                        }
                        if let Some((last, last_hash)) = &tail
                            && let Err(e) = checkpoint_if_due(
                                &store,
                                &pki,
                                *last,
                                last_hash,
                                at,
                                &mut known_checkpoint,
                            )
                            .await
                        {
                            tracing::error!(error = %e, "audit checkpoint failed");
                        }
                    }
                    Err(e) => {
                        let unavailable = e.kind() == crate::error::Kind::Unavailable;
                        if unavailable {
                            tracing::warn!(error = %e, "audit append failed");
                        } else {
                            tracing::error!(error = %e, "audit append failed");
                        }
                        for (_, reply) in jobs {
                            let _ = reply.send(Err(e.for_waiter("audit")));
                        }
                    }
                }
            }
        });
        Audit { tx }
    }

    /// Appends an entry; returns its sequence number once it is committed.
    pub async fn append(&self, e: Entry) -> Result<i64> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((e, reply))
            .await
            .map_err(|_| Error::internal("audit writer stopped"))?;
        rx.await
            .map_err(|_| Error::internal("audit writer stopped"))?
    }
}

/// Signs a checkpoint when the entries up to `last` crossed a multiple of [`CHECKPOINT_EVERY`]
/// since the newest checkpoint. `known` is the newest one this writer has seen: while `last`
/// is within its block, the database (which can only be further along) is not asked.
async fn checkpoint_if_due(
    store: &Store,
    pki: &Pki,
    last: i64,
    hash: &[u8],
    at: i64,
    known: &mut Option<i64>,
) -> Result<()> {
    if known.is_some_and(|k| last / CHECKPOINT_EVERY <= k / CHECKPOINT_EVERY) {
        return Ok(());
    }
    let done = store.last_checkpoint_seq().await?;
    *known = Some(done);
    if last / CHECKPOINT_EVERY <= done / CHECKPOINT_EVERY {
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

/// Recomputes the whole chain and checks every checkpoint.
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
    Ok(Report {
        entries,
        checkpoints: checkpoints.len(),
        problem,
    })
}
