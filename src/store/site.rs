//! The site: on PostgreSQL, every instance records its modems, their tariffs and
//! whether each is ready, so that each instance routes and dispatches for the whole
//! site. On SQLite there is one instance, and no site to record.

use std::collections::BTreeMap;

use super::{Backend, Store, StoreError, in_transaction};

/// A modem of the site, as its instance last recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteModem {
    /// Its `[[modem]]` name, unique in the site.
    pub name: String,
    /// The instance whose modem it is.
    pub instance: String,
    /// Cost of one part by E.164 prefix.
    pub tariff: BTreeMap<String, f64>,
    /// Initialised and sending, as its instance said within the last seconds; false
    /// while its instance is dead.
    pub ready: bool,
}

/// What one sender (a user, a client address, an envelope sender: the abuse limits'
/// key) was let send lately, as one instance counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The key the limits count by.
    pub who: String,
    /// Requests in the last minute.
    pub minute: u32,
    /// Requests in the last day.
    pub day: u32,
    /// Different numbers in the last day.
    pub numbers: u32,
}

impl Store {
    /// Records this instance's modems, given as (name, tariff, ready), in the site and
    /// forgets those it no longer has. A modem name that a live instance of the site
    /// already has is [`StoreError::ModemInUse`]. Nothing on SQLite.
    pub async fn register_modems(&self, modems: Vec<(String, BTreeMap<String, f64>, bool)>) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(db) => in_transaction!(db, site::register_modems(&modems)),
        }
    }

    /// Every modem of the site, this instance's included, ready or not (a dead
    /// instance's may come back); `None` on SQLite (this instance's are the only ones).
    pub async fn site_modems(&self) -> Result<Option<Vec<SiteModem>>, StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(None),
            Backend::Postgres(db) => in_transaction!(db, site::site_modems()).map(Some),
        }
    }

    /// Shares this instance's abuse-limit counts with the site (PostgreSQL) and returns
    /// the sums of the other live instances' counts, so that a user's limits hold for
    /// the whole site; `None` on SQLite (one instance: its own counts are all).
    pub async fn share_usage(&self, here: Vec<Usage>) -> Result<Option<Vec<Usage>>, StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(None),
            Backend::Postgres(db) => in_transaction!(db, site::share_usage(&here)).map(Some),
        }
    }
}
