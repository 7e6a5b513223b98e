//! Time as a parameter. Domain code never reads the wall clock itself: it asks a [`Clock`], which
//! tests replace with a [`FixedClock`] to reach expiry, validity windows and CRL updates.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> OffsetDateTime;

    /// Unix seconds.
    fn unix(&self) -> i64 {
        self.now().unix_timestamp()
    }

    /// Today's date in China Standard Time (UTC+8), where license dates are written.
    fn today(&self) -> time::Date {
        self.now().to_offset(CST).date()
    }
}

/// China Standard Time, UTC+8.
pub const CST: time::UtcOffset = time::macros::offset!(+8);

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that stays where it is set; for tests.
#[derive(Debug, Clone)]
pub struct FixedClock(Arc<AtomicI64>);

impl FixedClock {
    pub fn at(unix: i64) -> Self {
        FixedClock(Arc::new(AtomicI64::new(unix)))
    }

    pub fn set(&self, unix: i64) {
        self.0.store(unix, Ordering::SeqCst);
    }

    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.0.load(Ordering::SeqCst))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// A shareable clock.
pub type SharedClock = Arc<dyn Clock>;
