//! Who gets a session: `smtp.max_connections` in all, `smtp.max_connections_per_client`
//! from one address (trusted networks exempt), and whether the gateway is under stress
//! (open sessions past [`STRESS_PERCENT`] of the maximum, until they are below
//! [`CALM_PERCENT`]), which shortens every session's deadlines (see
//! [`Clock`](super::deadline::Clock)). An IPv6 client is counted by its /64.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::reply::Reply;

/// Open sessions, in percent of `smtp.max_connections`, past which the gateway is under
/// stress (as Postfix's stress mode, when a service's process limit is nearly used up).
pub(super) const STRESS_PERCENT: usize = 80;

/// Open sessions, in percent of `smtp.max_connections`, below which the stress ends. Lower
/// than [`STRESS_PERCENT`]: otherwise at the threshold each connect and close would
/// switch it, waking every session, and each switch on would close those idle 10 s.
pub(super) const CALM_PERCENT: usize = 70;

/// The sessions open, in all and per client address.
pub(super) struct Load {
    max: usize,
    per_client: usize,
    slots: Arc<Semaphore>,
    clients: Mutex<HashMap<IpAddr, usize>>,
    stress: watch::Sender<bool>,
}

/// One admitted session: it gives its slot back when dropped.
pub(super) struct Seat {
    load: Arc<Load>,
    client: Option<IpAddr>,
    permit: Option<OwnedSemaphorePermit>,
}

/// What the per-address limits count a client by: its IPv4 address, or the /64 of its
/// IPv6 address (a host is usually given a whole /64, and could take a new address of
/// it for each connection).
pub(super) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 64) - 1))),
        },
    }
}

impl Load {
    /// `max` sessions in all, `per_client` from one address (0: no cap).
    pub(super) fn new(max: usize, per_client: usize) -> Load {
        Load {
            max,
            per_client,
            slots: Arc::new(Semaphore::new(max)),
            clients: Mutex::default(),
            stress: watch::Sender::new(false),
        }
    }

    /// A seat for a session from `ip`, or the `421` that refuses it. `exempt` (a trusted
    /// network) is not held to the per-address cap: a smart host may open many.
    pub(super) fn admit(self: &Arc<Load>, ip: IpAddr, exempt: bool) -> Result<Seat, Reply> {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return Err(Reply::new(421, "4.7.0", "Too many connections, try again later"));
        };
        let mut seat = Seat {
            load: self.clone(),
            client: None,
            permit: Some(permit),
        };
        if !exempt && self.per_client > 0 {
            let key = client_key(ip);
            let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            let open = clients.entry(key).or_default();
            if *open >= self.per_client {
                drop(clients);
                let text = format!(
                    "Too many connections from your address {ip}: at most {} at once, try again later",
                    self.per_client
                );
                return Err(Reply::new(421, "4.7.0", text));
            }
            *open += 1;
            drop(clients);
            seat.client = Some(key);
        }
        self.update_stress();
        Ok(seat)
    }

    /// Told to every session's clock when the stress begins or ends.
    pub(super) fn stress(&self) -> watch::Receiver<bool> {
        self.stress.subscribe()
    }

    fn update_stress(&self) {
        // Counted inside the channel's lock: two sessions that admit and drop at once
        // on two threads cannot publish their conclusions in the wrong order.
        self.stress.send_if_modified(|stressed| {
            let open = self.max.saturating_sub(self.slots.available_permits());
            // In u128: `max * 100` cannot overflow whatever the config says.
            let (open, max) = ((open as u128) * 100, self.max as u128);
            let now = match *stressed {
                false => open > max * STRESS_PERCENT as u128,
                true => open >= max * CALM_PERCENT as u128,
            };
            std::mem::replace(stressed, now) != now
        });
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        if let Some(ip) = self.client {
            let mut clients = self.load.clients.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(open) = clients.get_mut(&ip) {
                *open -= 1;
                if *open == 0 {
                    clients.remove(&ip);
                }
            }
            drop(clients);
        }
        drop(self.permit.take());
        self.load.update_stress();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_gets_its_cap_trusted_ones_are_exempt_and_stress_follows_the_count() {
        let load = Arc::new(Load::new(10, 2));
        let stress = load.stress();
        let remote: IpAddr = "192.0.2.1".parse().unwrap();
        let first = load.admit(remote, false).unwrap();
        let _second = load.admit(remote, false).unwrap();
        let refused = load.admit(remote, false).err().unwrap();
        assert_eq!((refused.code, refused.status), (421, "4.7.0"));
        assert!(
            refused.text.contains("from your address 192.0.2.1: at most 2"),
            "{}",
            refused.text
        );
        drop(first);
        let _again = load.admit(remote, false).unwrap();
        let trusted: Vec<Seat> = (0..6)
            .map(|_| load.admit("127.0.0.1".parse().unwrap(), true).unwrap())
            .collect();
        assert!(!*stress.borrow(), "8 of 10 open: not past 80%");
        let ninth = load.admit("192.0.2.2".parse().unwrap(), false).unwrap();
        assert!(*stress.borrow(), "9 of 10");
        let _tenth = load.admit("192.0.2.3".parse().unwrap(), false).unwrap();
        let full = load.admit("192.0.2.4".parse().unwrap(), false).err().unwrap();
        assert_eq!(full.text, "Too many connections, try again later");
        drop(ninth);
        drop(trusted);
        assert!(!*stress.borrow());
    }

    #[test]
    fn the_stress_begins_past_80_percent_and_ends_below_70() {
        let load = Arc::new(Load::new(10, 0));
        let stress = load.stress();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut seats: Vec<Seat> = (0..8).map(|_| load.admit(ip, false).unwrap()).collect();
        assert!(!*stress.borrow(), "8 of 10");
        seats.push(load.admit(ip, false).unwrap());
        assert!(*stress.borrow(), "9 of 10");
        // Down to 8 and up to 9 again: no flapping.
        seats.pop();
        assert!(*stress.borrow(), "8 of 10, after 9");
        seats.pop();
        assert!(*stress.borrow(), "7 of 10: not below 70%");
        seats.pop();
        assert!(!*stress.borrow(), "6 of 10");
        seats.push(load.admit(ip, false).unwrap());
        seats.push(load.admit(ip, false).unwrap());
        assert!(!*stress.borrow(), "8 of 10, after 6");
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let load = Arc::new(Load::new(10, 2));
        let _a = load.admit("2001:db8:1:2::1".parse().unwrap(), false).unwrap();
        let _b = load.admit("2001:db8:1:2:ffff::2".parse().unwrap(), false).unwrap();
        assert!(load.admit("2001:db8:1:2::3".parse().unwrap(), false).is_err());
        assert!(load.admit("2001:db8:1:3::1".parse().unwrap(), false).is_ok());
        let mapped = client_key("::ffff:192.0.2.1".parse().unwrap());
        assert_eq!(mapped, "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
