//! Token buckets: per device for ingest (charged only for envelopes whose signature
//! verifies, so nobody without the device's key can spend its budget), and per client
//! address for work that does not authenticate (envelopes and requests that fail
//! verification). Sustained rate plus a burst. Memory is bounded: idle buckets (full
//! again) are dropped when the map grows.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The TCP peer of a request, as the listener accepted it (a request extension).
pub type PeerAddr = axum::extract::ConnectInfo<SocketAddr>;

/// The bucket key of a client address: the IPv4 address, or the /64 prefix of an IPv6
/// one (a single host usually holds a whole /64, so a per-address key would let it
/// rotate through 2^64 buckets).
pub fn address_key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_ipv6_mapped().octets(),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                o
            }
        },
    }
}

/// The client's address: the TCP peer, or, when the peer is one of the `trusted`
/// proxies, the nearest address in `X-Forwarded-For` that is not (proxies append the
/// address they saw, so everything left of the last untrusted hop may be forged).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map_while(|h| h.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer)
}

const MAX_TRACKED: usize = 100_000;

/// The limiter.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<[u8; 16], (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate` tokens per second, at most `burst` saved up.
    pub fn new(rate: f64, burst: f64) -> Self {
        RateLimiter {
            rate: rate.max(0.001),
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `n` tokens for `device`; on refusal returns the seconds until they exist.
    pub fn take(&self, device: [u8; 16], n: f64, now: Instant) -> Result<(), u64> {
        let Ok(mut map) = self.buckets.lock() else {
            return Ok(());
        };
        let (entry, tokens) = self.refilled(&mut map, device, now);
        if tokens >= n {
            *entry = (tokens - n, now);
            Ok(())
        } else {
            *entry = (tokens, now);
            Err(((n.min(self.burst) - tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }

    /// Whether `key` has at least one token, without taking any; on refusal the seconds
    /// until it has.
    pub fn check(&self, key: [u8; 16], now: Instant) -> Result<(), u64> {
        let Ok(map) = self.buckets.lock() else {
            return Ok(());
        };
        let Some((tokens, at)) = map.get(&key) else {
            return Ok(());
        };
        let tokens = (tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(((1.0 - tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }

    /// Takes `n` tokens from `key` even when that leaves it in debt (down to minus one
    /// burst): for work already done, so that a large failing batch costs its sender as
    /// much as many small ones.
    pub fn charge(&self, key: [u8; 16], n: f64, now: Instant) {
        let Ok(mut map) = self.buckets.lock() else {
            return;
        };
        let (entry, tokens) = self.refilled(&mut map, key, now);
        *entry = ((tokens - n).max(-self.burst), now);
    }

    /// The bucket of `key` and its tokens refilled up to `now` (a new bucket is full).
    /// When the map is full, buckets that have refilled completely are dropped first.
    fn refilled<'a>(
        &self,
        map: &'a mut HashMap<[u8; 16], (f64, Instant)>,
        key: [u8; 16],
        now: Instant,
    ) -> (&'a mut (f64, Instant), f64) {
        if map.len() >= MAX_TRACKED {
            let (rate, burst) = (self.rate, self.burst);
            map.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let entry = map.entry(key).or_insert((self.burst, now));
        let tokens =
            (entry.0 + now.duration_since(entry.1).as_secs_f64() * self.rate).min(self.burst);
        (entry, tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let l = RateLimiter::new(10.0, 20.0);
        let t0 = Instant::now();
        let d = [1u8; 16];
        assert!(l.take(d, 20.0, t0).is_ok());
        let wait = l.take(d, 5.0, t0).unwrap_err();
        assert_eq!(wait, 1);
        assert!(l.take(d, 5.0, t0 + Duration::from_millis(600)).is_ok());
        assert!(
            l.take([2u8; 16], 20.0, t0).is_ok(),
            "buckets are per device"
        );
    }

    #[test]
    fn charge_goes_into_debt_and_check_waits_for_it() {
        let l = RateLimiter::new(10.0, 20.0);
        let t0 = Instant::now();
        let a = [3u8; 16];
        assert!(l.check(a, t0).is_ok());
        l.charge(a, 30.0, t0);
        assert_eq!(
            l.check(a, t0),
            Err(2),
            "10 in debt, 1 needed, 10 per second"
        );
        assert!(l.check(a, t0 + Duration::from_millis(1_100)).is_ok());
        l.charge(a, 1e9, t0);
        assert!(
            l.check(a, t0 + Duration::from_secs(5)).is_ok(),
            "debt is bounded by one burst"
        );
    }

    #[test]
    fn client_address_behind_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 1.2.3.4, 10.1.1.1".parse().unwrap(),
        );
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        let direct: IpAddr = "5.5.5.5".parse().unwrap();
        assert_eq!(
            client_ip(direct, &h, &trusted),
            direct,
            "untrusted peers set nothing"
        );
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b), "one /64, one bucket");
        let v4: IpAddr = "1.2.3.4".parse().unwrap();
        let mapped: IpAddr = "::ffff:1.2.3.4".parse().unwrap();
        assert_eq!(address_key(v4), address_key(mapped));
    }
}
