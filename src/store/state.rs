//! The names a request, a part and a DSN go by in the database, each once, as an enum:
//! queries bind them as parameters instead of spelling them in SQL. Numbers are read
//! back as [`E164`], so a row that is not one is an error, not a string passed on.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use tokio_postgres::types::private::BytesMut;
use tokio_postgres::types::{IsNull, Type as PgType};

use crate::e164::E164;

/// What a tokio-postgres conversion fails with.
type PgBoxError = Box<dyn std::error::Error + Sync + Send>;

/// Declares a state enum with its database names, `as_str`, `FromStr`, and the
/// conversions that let rusqlite and tokio-postgres bind and read it (as text).
macro_rules! names {
    ($(#[$doc:meta])* $name:ident ($noun:literal) { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in lifecycle order.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant,)+];

            /// The name stored in the database and shown to operators.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // `pad`, not `write_str`: tables print states in columns (`{:<10}`).
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str().eq_ignore_ascii_case(s))
                    .ok_or_else(|| {
                        let names: Vec<_> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        format!("unknown {} {s:?} (one of: {})", $noun, names.join(", "))
                    })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value.as_str()?.parse().map_err(|e: String| FromSqlError::Other(e.into()))
            }
        }
        impl tokio_postgres::types::ToSql for $name {
            fn to_sql(&self, ty: &PgType, out: &mut BytesMut) -> Result<IsNull, PgBoxError> {
                tokio_postgres::types::ToSql::to_sql(&self.as_str(), ty, out)
            }

            fn accepts(ty: &PgType) -> bool {
                <&str as tokio_postgres::types::ToSql>::accepts(ty)
            }

            tokio_postgres::types::to_sql_checked!();
        }

        impl<'a> tokio_postgres::types::FromSql<'a> for $name {
            fn from_sql(ty: &PgType, raw: &'a [u8]) -> Result<Self, PgBoxError> {
                Ok(<&str as tokio_postgres::types::FromSql<'_>>::from_sql(ty, raw)?.parse::<$name>()?)
            }

            fn accepts(ty: &PgType) -> bool {
                <&str as tokio_postgres::types::FromSql<'_>>::accepts(ty)
            }
        }
    };
}

impl ToSql for E164 {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for E164 {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        E164::parse(value.as_str()?).map_err(|e| FromSqlError::Other(e.into()))
    }
}

impl tokio_postgres::types::ToSql for E164 {
    fn to_sql(&self, ty: &PgType, out: &mut BytesMut) -> Result<IsNull, PgBoxError> {
        tokio_postgres::types::ToSql::to_sql(&self.as_str(), ty, out)
    }

    fn accepts(ty: &PgType) -> bool {
        <&str as tokio_postgres::types::ToSql>::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}

impl<'a> tokio_postgres::types::FromSql<'a> for E164 {
    fn from_sql(ty: &PgType, raw: &'a [u8]) -> Result<Self, PgBoxError> {
        Ok(E164::parse(<&str as tokio_postgres::types::FromSql<'_>>::from_sql(
            ty, raw,
        )?)?)
    }

    fn accepts(ty: &PgType) -> bool {
        <&str as tokio_postgres::types::FromSql<'_>>::accepts(ty)
    }
}

names! {
    /// The states of a request (ARCHITECTURE.md, "States").
    State ("state") {
        /// Accepted and committed; waiting for the routing stage.
        Received = "received",
        /// Reserved for a routing decision kept apart from its execution; unused today.
        Routed = "routed",
        /// Being handed to a peer instance over SMTP.
        Forwarding = "forwarding",
        /// A peer answered 250 for it: the peer owns it now.
        Forwarded = "forwarded",
        /// Waiting for one of this instance's modems.
        Queued = "queued",
        /// Claimed by a modem, which holds a lease on it.
        Sending = "sending",
        /// Every part reached the network; waiting for status reports.
        Sent = "sent",
        /// Every part was reported delivered.
        Delivered = "delivered",
        /// A part went to the modem and no answer came: maybe sent. Only an operator
        /// sends it again.
        Uncertain = "uncertain",
        /// Failed for good; the sender gets a DSN if they asked.
        Failed = "failed",
        /// Not sent within its validity.
        Expired = "expired",
    }
}

names! {
    /// Where one SMS part of a request stands.
    PartStatus ("part status") {
        /// Between `AT+CMGS` and its answer: a crash here makes the request uncertain.
        Submitting = "submitting",
        /// The network took it (`+CMGS: <mr>`).
        Sent = "sent",
        /// Its status report said delivered.
        Delivered = "delivered",
        /// Its status report said it failed.
        Failed = "failed",
    }
}

names! {
    /// Where one DSN owed to a sender stands.
    DsnState ("DSN state") {
        /// Waiting for its next delivery attempt.
        Pending = "pending",
        /// Accepted by the sender's server.
        Sent = "sent",
        /// Refused for good, or its lifetime ran out.
        Dropped = "dropped",
    }
}

names! {
    /// Where the mail an incoming SMS becomes stands.
    InboxState ("inbox state") {
        /// Waiting for its next delivery attempt.
        Pending = "pending",
        /// Accepted by the receiving server.
        Sent = "sent",
        /// Refused for good, or its lifetime ran out.
        Dropped = "dropped",
        /// Not mailed: no one to mail it to (`smsgw inbox show` says why).
        Kept = "kept",
    }
}

names! {
    /// What an incoming SMS says, for the opt-out list.
    InboxKind ("inbox kind") {
        /// A message like any other.
        Text = "text",
        /// One of `inbound.stop_words`: its number opted out.
        Stop = "stop",
        /// One of `inbound.start_words`: its number opted in again.
        Start = "start",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_known() {
        for state in State::ALL {
            assert_eq!(state.as_str().parse::<State>(), Ok(state));
        }
        assert_eq!("QUEUED".parse::<State>(), Ok(State::Queued));
        let error = "lost".parse::<State>().unwrap_err();
        assert!(error.contains("received, routed"), "{error}");
        assert_eq!("submitting".parse::<PartStatus>(), Ok(PartStatus::Submitting));
        assert_eq!("dropped".parse::<DsnState>(), Ok(DsnState::Dropped));
        assert_eq!(format!("[{:<8}]", State::Sent), "[sent    ]");
    }

    #[test]
    fn states_bind_and_read_back_through_sqlite() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let read: State = conn
            .query_row("SELECT ?1", [State::Uncertain], |row| row.get(0))
            .unwrap();
        assert_eq!(read, State::Uncertain);
        let bad = conn.query_row("SELECT 'nonsense'", [], |row| row.get::<_, State>(0));
        assert!(bad.is_err());
    }
}
