//! The store on PostgreSQL: several instances of one site share one queue.
#[derive(Clone)]
pub(super) struct Pg; // TEMP
