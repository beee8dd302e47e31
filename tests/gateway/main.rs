//! End-to-end tests: the real `smsgw` binary, real TCP, a real SQLite file.

mod address_table;
mod cli;
mod cluster;
mod compose_fixtures;
mod conversation;
mod data;
mod dsn;
mod durability;
mod edge;
mod faults;
mod full;
mod inbound;
mod link;
mod metrics;
mod modems;
mod pdu_crosscheck;
mod peer_status;
mod recipients;
mod routes;
mod security;
mod sim;
mod site;
mod store_copy;
mod support;
