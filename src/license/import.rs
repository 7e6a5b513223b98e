//! Bulk import: JSONL in, one line one license.
//!
//! Resumable and idempotent: progress (`lines_done`) is committed in the same transaction as the
//! licenses of each batch, so after a crash a re-run starts at the first unsettled line; and a
//! license number that is already issued from the same request is skipped, so re-running a file
//! never issues twice. Bad lines are reported with their line number and do not stop the others.

use super::id::IdPrefix;
use super::service::{Checked, IssueRequest, Licenses, SigningAuthority, Status};
use super::types::LicenseType;
use crate::error::{Error, Result};
use crate::store::{ImportRunRow, LicenseRow};
use serde::Serialize;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

/// Longest line accepted (a license with its face fields is a few KB).
pub const MAX_LINE: usize = 256 * 1024;

/// A line that was not issued, and why.
#[derive(Debug, Clone, Serialize)]
pub struct LineError {
    pub line: u64,
    pub code: String,
    pub message: String,
    pub details: serde_json::Value,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportSummary {
    pub file_hash: String,
    pub lines: u64,
    /// Lines settled by an earlier, interrupted run of the same file.
    pub resumed_from: u64,
    pub issued: u64,
    /// Of `issued`, how many this run issued (the rest, earlier runs of the same file).
    pub issued_this_run: u64,
    /// Lines whose license was already issued from the same request.
    pub skipped: u64,
    pub failed: u64,
    pub already_complete: bool,
    pub seconds: f64,
}

/// Lines per transaction by default. Each batch writes every leaf page its licenses land on
/// to the WAL once, and random holder codes spread a batch over most leaves of the holder
/// index: fewer, larger batches write each leaf fewer times. 20,000 against 5,000: 8-16% more
/// licenses per second on SQLite (`elicense bench --issuance-only`, docs/PERFORMANCE.md). A
/// batch holds the database's write lock while its rows are inserted and committed, and a
/// running service's writes wait for it: `--batch` lower for an import into a database that
/// a live service writes to.
pub const DEFAULT_BATCH: usize = 20_000;

/// Import settings.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Lines per transaction.
    pub batch: usize,
    /// Who the history records as the issuer of these licenses.
    pub actor: String,
    /// Signing threads (defaults to the number of cores).
    pub threads: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            batch: DEFAULT_BATCH,
            actor: "import".into(),
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        }
    }
}

/// Progress callbacks: a settled line count after each commit, and each bad line.
pub trait ImportObserver: Send {
    fn started(&mut self, _total_lines: u64, _resumed_from: u64) {}
    fn committed(&mut self, _lines_done: u64, _summary: &ImportSummary) {}
    fn bad_line(&mut self, _e: &LineError) {}
}

impl ImportObserver for () {}

/// Reads one line of at most `MAX_LINE` bytes; `Ok(None)` at end of file. An over-long line is
/// consumed and returned as `Err(len)`.
fn read_line(
    r: &mut impl BufRead,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Result<(), usize>>> {
    buf.clear();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.len() > MAX_LINE && buf.last() != Some(&b'\n') {
        let mut skipped = buf.len();
        let mut sink = Vec::new();
        loop {
            sink.clear();
            let m = r.by_ref().take(1 << 20).read_until(b'\n', &mut sink)?;
            skipped += m;
            if m == 0 || sink.last() == Some(&b'\n') {
                break;
            }
        }
        return Ok(Some(Err(skipped)));
    }
    Ok(Some(Ok(())))
}

fn hash_and_count(path: &Path) -> Result<(String, u64)> {
    let f = std::fs::File::open(path)
        .map_err(|e| Error::bad_request(format!("cannot open {}: {e}", path.display())))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut lines = 0u64;
    let mut last = b'\n';
    loop {
        let buf = r
            .fill_buf()
            .map_err(|e| Error::bad_request(format!("cannot read {}: {e}", path.display())))?;
        if buf.is_empty() {
            break;
        }
        ctx.update(buf);
        lines += buf.iter().filter(|b| **b == b'\n').count() as u64;
        last = buf.last().copied().unwrap_or(b'\n');
        let n = buf.len();
        r.consume(n);
    }
    if last != b'\n' {
        lines += 1;
    }
    Ok((hex::encode(ctx.finish()), lines))
}

fn line_error(line: u64, e: &Error) -> LineError {
    LineError {
        line,
        code: e.code().to_string(),
        message: e.to_string(),
        details: e.details(),
    }
}

/// (type code, license number): unique per license.
type TypeNumber = (String, String);

struct Pending {
    line: u64,
    t: Arc<LicenseType>,
    checked: Checked,
}

/// Imports a JSONL file.
pub async fn import_file(
    lic: &Licenses,
    path: &Path,
    opts: &ImportOptions,
    obs: &mut dyn ImportObserver,
) -> Result<ImportSummary> {
    let started = std::time::Instant::now();
    let (file_hash, total) = hash_and_count(path)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let run = lic.store().import_run(&file_hash).await?;
    let mut s = ImportSummary {
        file_hash: file_hash.clone(),
        lines: total,
        ..Default::default()
    };
    if let Some(r) = &run {
        s.resumed_from = r.lines_done as u64;
        s.issued = r.issued as u64;
        s.skipped = r.skipped as u64;
        s.failed = r.failed as u64;
        if r.finished != 0 {
            s.already_complete = true;
            s.seconds = started.elapsed().as_secs_f64();
            return Ok(s);
        }
    }
    obs.started(total, s.resumed_from);
    let region = lic.region_code().await?;
    let f = std::fs::File::open(path)
        .map_err(|e| Error::bad_request(format!("cannot open {}: {e}", path.display())))?;
    let mut reader = BufReader::with_capacity(1 << 20, f);
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    let mut authorities: HashMap<String, Arc<SigningAuthority>> = HashMap::new();
    let batch = opts.batch.max(1);
    // Whether each batch's numbers are looked up before its licenses are signed. A run starts
    // without: its lines are new (a re-run resumes after its last committed line), and the
    // unique index refuses a taken number anyway, at the cost of the batch's signatures; after
    // the first such refusal the run looks them up.
    let mut precheck = false;
    let mut bufs = RowBuffers::default();
    let mut eof = false;
    while !eof {
        let mut pending: Vec<Pending> = Vec::with_capacity(batch);
        let mut batch_failed = 0u64;
        let mut consumed = 0usize;
        while consumed < batch {
            let Some(res) = read_line(&mut reader, &mut buf)
                .map_err(|e| Error::bad_request(format!("reading line {}: {e}", line_no + 1)))?
            else {
                eof = true;
                break;
            };
            line_no += 1;
            if line_no <= s.resumed_from {
                continue;
            }
            consumed += 1;
            if let Err(len) = res {
                let e = Error::bad_request(format!("line is {len} bytes; the limit is {MAX_LINE}"));
                batch_failed += 1;
                obs.bad_line(&line_error(line_no, &e));
                continue;
            }
            if buf.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            match prepare(lic, &buf, &mut authorities).await {
                Ok((t, checked)) => pending.push(Pending {
                    line: line_no,
                    t,
                    checked,
                }),
                Err(e) => {
                    batch_failed += 1;
                    obs.bad_line(&line_error(line_no, &e));
                }
            }
        }
        if consumed == 0 && !eof {
            continue;
        }
        // Settled, stored; settled again if a number turned out taken (below).
        let mut conflicts = 0;
        let mut settled = loop {
            let mut settled = settle_batch(
                lic,
                &region,
                &pending,
                &authorities,
                opts,
                precheck,
                &mut bufs,
            )
            .await?;
            let progress = ImportRunRow {
                file_hash: file_hash.clone(),
                file_name: file_name.clone(),
                lines_done: line_no as i64,
                issued: (s.issued + settled.rows.len() as u64) as i64,
                skipped: (s.skipped + settled.skipped) as i64,
                failed: (s.failed + batch_failed + settled.errors.len() as u64) as i64,
                finished: i64::from(eof),
                updated_at: lic.clock().unix(),
            };
            let rows = Arc::new(std::mem::take(&mut settled.rows));
            let r = lic
                .store()
                .insert_licenses(rows.clone(), Some(progress))
                .await;
            settled.rows = Arc::try_unwrap(rows).unwrap_or_else(|shared| shared.to_vec());
            match r {
                Ok(()) => break settled,
                // A number of the batch is issued already: before this run (another file, the
                // API) or meanwhile. From now on the numbers are looked up before signing, and
                // this batch is settled again that way (its first signatures and serials go
                // unused): a line is sorted out against the issued license first and against
                // the lines before it in the batch second, so a repeat of a line whose number
                // turned out taken is reported as that line is.
                Err(Error::AlreadyExists { .. }) if conflicts < 3 => {
                    conflicts += 1;
                    precheck = true;
                    bufs.give_back(settled.rows);
                }
                Err(e) => return Err(e),
            }
        };
        settled.errors.sort_by_key(|e| e.line);
        for e in &settled.errors {
            obs.bad_line(e);
        }
        let rows = settled.rows;
        s.issued += rows.len() as u64;
        s.issued_this_run += rows.len() as u64;
        s.skipped += settled.skipped;
        s.failed += batch_failed + settled.errors.len() as u64;
        if !rows.is_empty() {
            let mut ids = ring::digest::Context::new(&ring::digest::SHA256);
            for r in &rows {
                ids.update(r.id.as_bytes());
                ids.update(b"\n");
            }
            let entry = crate::audit::Entry::new(
                &opts.actor,
                "license.import",
                &file_hash,
                serde_json::json!({
                    "through_line": line_no, "issued": rows.len(),
                    "first_id": rows.first().map(|r| r.id.clone()),
                    "last_id": rows.last().map(|r| r.id.clone()),
                    "ids_sha256": hex::encode(ids.finish()),
                }),
            );
            bufs.give_back(rows);
            lic.audit().append(entry).await?;
        }
        obs.committed(line_no, &s);
    }
    // After the last commit: the licenses are stored whatever becomes of this.
    let analyze_started = std::time::Instant::now();
    match lic.store().refresh_license_stats(s.issued_this_run).await {
        Ok(true) => tracing::info!(
            issued = s.issued_this_run,
            ms = analyze_started.elapsed().as_millis() as u64,
            "planner statistics of licenses refreshed"
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!(
            error = %e,
            "refreshing planner statistics after the import failed; autovacuum will"
        ),
    }
    s.lines = line_no;
    s.seconds = started.elapsed().as_secs_f64();
    Ok(s)
}

async fn prepare(
    lic: &Licenses,
    line: &[u8],
    authorities: &mut HashMap<String, Arc<SigningAuthority>>,
) -> Result<(Arc<LicenseType>, Checked)> {
    let req: IssueRequest = serde_json::from_slice(line)
        .map_err(|e| Error::bad_request(format!("not a valid license request: {e}")))?;
    let t = lic.license_type(&req.type_code).await?;
    if !authorities.contains_key(&req.issuer) {
        let a = lic.signing_authority(&req.issuer).await?;
        authorities.insert(req.issuer.clone(), Arc::new(a));
    }
    let auth = authorities
        .get(&req.issuer)
        .ok_or_else(|| Error::internal("authority cache"))?;
    if !auth.types.contains(&t.def.code) {
        return Err(Error::TypeNotAllowed {
            authority: req.issuer.clone(),
            type_code: t.def.code.clone(),
        });
    }
    let checked = lic.check(&t, req)?;
    Ok((t, checked))
}

/// Row vectors kept from batch to batch. A batch of 20,000 rows takes megabytes in each
/// signing thread's vector and again in the merged one; freed, mimalloc may purge that memory
/// (give it back to the system), and the next batch faults its pages in again.
#[derive(Default)]
struct RowBuffers {
    /// One per signing thread, empty between batches.
    parts: Vec<Vec<LicenseRow>>,
    /// The batch's rows in line order, as they are stored; empty between batches.
    merged: Vec<LicenseRow>,
}

impl RowBuffers {
    /// Keeps the allocation of a batch's rows (the rows themselves are dropped).
    fn give_back(&mut self, mut rows: Vec<LicenseRow>) {
        rows.clear();
        if rows.capacity() > self.merged.capacity() {
            self.merged = rows;
        }
    }
}

/// A batch ready to store: its rows, and the lines it did not issue.
struct Settled {
    rows: Vec<LicenseRow>,
    skipped: u64,
    errors: Vec<LineError>,
}

/// Whether a line whose number is taken is the same request again (skipped) or another one.
fn classify(
    line: u64,
    type_code: &str,
    number: &str,
    source_hash: &[u8],
    taken: (&str, Option<&[u8]>),
    skipped: &mut u64,
    errors: &mut Vec<LineError>,
) {
    match taken {
        (_, Some(h)) if h == source_hash => *skipped += 1,
        (id, _) => errors.push(line_error(
            line,
            &Error::DuplicateLicense {
                type_code: type_code.to_string(),
                number: number.to_string(),
                id: id.to_string(),
            },
        )),
    }
}

/// The licenses already issued under these (type, number) pairs.
async fn existing<'a>(
    lic: &Licenses,
    keys: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<HashMap<TypeNumber, (String, Option<Vec<u8>>)>> {
    let mut by_type: HashMap<&str, Vec<String>> = HashMap::new();
    for (t, n) in keys {
        by_type.entry(t).or_default().push(n.to_string());
    }
    let mut found = HashMap::new();
    for (t, numbers) in &by_type {
        for e in lic.store().existing_numbers(t, numbers).await? {
            found.insert((t.to_string(), e.number), (e.id, e.source_hash));
        }
    }
    Ok(found)
}

/// Drops lines that repeat a number of this batch (and, with `precheck`, lines whose number
/// is already issued), reserves serials, and signs the rest in parallel.
async fn settle_batch(
    lic: &Licenses,
    region: &str,
    pending: &[Pending],
    authorities: &HashMap<String, Arc<SigningAuthority>>,
    opts: &ImportOptions,
    precheck: bool,
    bufs: &mut RowBuffers,
) -> Result<Settled> {
    let taken = if precheck {
        existing(
            lic,
            pending
                .iter()
                .map(|p| (p.t.def.code.as_str(), p.checked.req.number.as_str())),
        )
        .await?
    } else {
        HashMap::new()
    };
    let mut skipped = 0;
    let mut errors = Vec::new();
    let mut fresh: Vec<&Pending> = Vec::with_capacity(pending.len());
    // Lines of this batch taken so far, by (type, number): their request hashes.
    let mut seen: HashMap<(&str, &str), &[u8]> = HashMap::with_capacity(pending.len());
    for p in pending {
        let key = (p.t.def.code.as_str(), p.checked.req.number.as_str());
        let dup_of = match seen.get(&key) {
            Some(h) => Some(("(earlier line of this file)", Some(*h))),
            None if taken.is_empty() => None,
            None => taken
                .get(&(key.0.to_string(), key.1.to_string()))
                .map(|(id, h)| (id.as_str(), h.as_deref())),
        };
        match dup_of {
            Some(t) => classify(
                p.line,
                key.0,
                key.1,
                &p.checked.source_hash,
                t,
                &mut skipped,
                &mut errors,
            ),
            None => {
                seen.insert(key, &p.checked.source_hash);
                fresh.push(p);
            }
        }
    }
    drop(seen);
    // Serials: one reservation per (type, issuer).
    let year = lic.clock().today().year();
    let mut counts: HashMap<(&str, &str), i64> = HashMap::new();
    for p in &fresh {
        *counts
            .entry((p.t.def.code.as_str(), p.checked.req.issuer.as_str()))
            .or_default() += 1;
    }
    // The next serial of each (type, issuer), and its identifiers' prefix, checked once.
    let mut next: HashMap<(&str, &str), (i64, IdPrefix)> = HashMap::with_capacity(counts.len());
    for (k, n) in counts {
        let first = lic.store().reserve_serials(k.0, k.1, year, n).await?;
        let prefix = IdPrefix::new(k.0, k.1)
            .map_err(|e| Error::internal(format!("generated identifier: {e}")))?;
        next.insert(k, (first, prefix));
    }
    let mut jobs = Vec::with_capacity(fresh.len());
    for p in fresh {
        let k = (p.t.def.code.as_str(), p.checked.req.issuer.as_str());
        let (n, prefix) = next
            .get_mut(&k)
            .ok_or_else(|| Error::internal("serial map"))?;
        let id = prefix
            .id(&Licenses::serial(year, *n), 1)
            .map_err(|e| Error::internal(format!("generated identifier: {e}")))?;
        *n += 1;
        let auth = authorities
            .get(k.1)
            .ok_or_else(|| Error::internal("authority cache"))?;
        jobs.push((p, id, auth));
    }
    let now = lic.clock().unix();
    let threads = opts.threads.clamp(1, 64);
    let chunk = jobs.len().div_ceil(threads).max(1);
    let parts_needed = jobs.len().div_ceil(chunk);
    if bufs.parts.len() < parts_needed {
        bufs.parts.resize_with(parts_needed, Vec::new);
    }
    let parts = &mut bufs.parts;
    let mut out = std::mem::take(&mut bufs.merged);
    out.clear();
    out.reserve(jobs.len());
    let sign_all = move || {
        std::thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .chunks(chunk)
                .zip(parts.iter_mut())
                .map(|(part, rows)| {
                    scope.spawn(move || {
                        rows.clear();
                        rows.reserve(part.len());
                        for (p, id, auth) in part {
                            rows.push(lic.sign_row(
                                region,
                                &p.t,
                                auth,
                                &p.checked,
                                id,
                                Status::Valid,
                                now,
                                &opts.actor,
                            )?);
                        }
                        Ok::<_, Error>(())
                    })
                })
                .collect();
            let mut result = Ok(());
            for h in handles {
                let r = h
                    .join()
                    .map_err(|_| Error::internal("signing thread panicked"))
                    .and_then(|r| r);
                if result.is_ok() {
                    result = r;
                }
            }
            result
        })?;
        // In chunk order, which is line order; `append` leaves each part empty with its
        // allocation kept.
        for part in parts.iter_mut().take(parts_needed) {
            out.append(part);
        }
        Ok(out)
    };
    // Signing is CPU-bound: on a multi-threaded runtime, tell it this worker is busy.
    let rows: Result<Vec<LicenseRow>> = match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(sign_all)
        }
        _ => sign_all(),
    };
    let mut rows = rows?;
    if !rows.is_empty() {
        let first = lic
            .store()
            .reserve_status_indexes(rows.len() as i64)
            .await?;
        for (i, r) in rows.iter_mut().enumerate() {
            r.status_index = first + i as i64;
        }
    }
    Ok(Settled {
        rows,
        skipped,
        errors,
    })
}
