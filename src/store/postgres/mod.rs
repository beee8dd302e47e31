//! The store on PostgreSQL: several instances of one site share one queue.
