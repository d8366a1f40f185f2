//! Rate limits that hold across every instance of a service: the state lives in Redis and is
//! read and charged by one Lua script call (GCRA, the generic cell rate algorithm), so two
//! instances can never both spend the last unit of a budget.
//!
//! A [`Quota`] `N/S` lets `N` requests through at once from an idle state and then one every
//! `S/N` seconds; `off` disables a limit (no Redis call is made for it). A request may be charged
//! against several budgets at once ([`enforce`]): either every budget has room and all are
//! charged, or none is and the answer is 429 with `Retry-After`, so a refused request costs
//! nothing.
//!
//! Redis errors are returned to the caller, which answers 503: the limits fail closed (README,
//! "Rate limits").
//!
//! On a Redis Cluster the keys are named `{ratelimit}:<limit>:<subject>`: one script call reads
//! and charges every budget of a request, so they must share a slot, and a budget is shared by
//! requests of many callers, so no tag drawn from the request would do. Every limit then lives on
//! one shard; a limit check is one small script call, a small share of what a shard serves.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use domain::{ErrorBody, Origin};
use redis::Script;

/// Prefix of every key the limiter writes.
pub const KEY_PREFIX: &str = "ratelimit:";

/// A budget: `count` requests per `period`, all of them available at once; or none (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota(Option<(u32, Duration)>);

impl Quota {
    pub const OFF: Quota = Quota(None);

    pub fn new(count: u32, period: Duration) -> Self {
        if count == 0 || period.is_zero() {
            Quota::OFF
        } else {
            Quota(Some((count, period)))
        }
    }

    /// `count` requests per `secs` seconds (`off` when either is 0), for constant defaults.
    pub const fn per(count: u32, secs: u64) -> Self {
        if count == 0 || secs == 0 {
            Quota::OFF
        } else {
            Quota(Some((count, Duration::from_secs(secs))))
        }
    }

    pub fn is_off(self) -> bool {
        self.0.is_none()
    }

    /// GCRA's emission interval and burst tolerance, in milliseconds.
    fn gcra_ms(self) -> Option<(f64, f64)> {
        let (count, period) = self.0?;
        let period = period.as_secs_f64() * 1000.0;
        let interval = period / f64::from(count);
        Some((interval, period - interval))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a rate limit is `off` or `<count>/<seconds>` with both positive, not {0:?}")]
pub struct BadQuota(String);

impl FromStr for Quota {
    type Err = BadQuota;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("off") {
            return Ok(Quota::OFF);
        }
        let parsed = t
            .split_once('/')
            .and_then(|(n, secs)| Some((n.trim().parse::<u32>().ok()?, secs.trim().parse::<u32>().ok()?)));
        match parsed {
            Some((n, secs)) if n > 0 && secs > 0 => Ok(Quota::new(n, Duration::from_secs(u64::from(secs)))),
            _ => Err(BadQuota(s.to_owned())),
        }
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("off"),
            Some((n, period)) => write!(f, "{n}/{}", period.as_secs()),
        }
    }
}

/// One budget a request is charged against: the limit's name (it appears in the key and in the
/// 429 body) and whose budget it is (an address, a host app, a session, an identity).
#[derive(Debug, Clone)]
pub struct Check {
    pub limit: &'static str,
    pub subject: String,
    pub quota: Quota,
}

impl Check {
    pub fn new(limit: &'static str, subject: impl fmt::Display, quota: Quota) -> Self {
        Check { limit, subject: subject.to_string(), quota }
    }

    fn key(&self, keys: crate::redis::KeyScheme) -> String {
        match keys {
            crate::redis::KeyScheme::Single => format!("{KEY_PREFIX}{}:{}", self.limit, self.subject),
            crate::redis::KeyScheme::Cluster => format!("{{ratelimit}}:{}:{}", self.limit, self.subject),
        }
    }
}

/// GCRA over every key. `ARGV[2i-1]` and `ARGV[2i]` are the emission interval and the burst
/// tolerance of `KEYS[i]` in milliseconds; each key holds its theoretical arrival time. Redis's
/// own clock is used, so instances with skewed clocks share one notion of time. Returns
/// `{0, 0}` when every budget had room (all charged), else the milliseconds until the fullest
/// one has room and that key's position (1-based).
static GCRA: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local wait, fullest = 0, 0
local next_tat = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  if tat - tolerance - now > wait then
    wait, fullest = tat - tolerance - now, i
  end
  next_tat[i] = tat + interval
end
if wait > 0 then return {math.ceil(wait), fullest} end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%.3f', next_tat[i]), 'PX', math.ceil(next_tat[i] - now) + 1)
end
return {0, 0}
",
    )
});

/// A request refused by a limit: 429 with `Retry-After` and the §4 body
/// `{"code":"too_many_requests","origin":"not_defined","details":{"limit":"<name>"}}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit {limit} reached; retry in {retry_after_secs} s")]
pub struct Limited {
    pub limit: &'static str,
    pub retry_after_secs: u64,
}

impl Limited {
    pub fn body(&self) -> ErrorBody {
        ErrorBody::too_many_requests(Origin::NotDefined, "too many requests, retry later").with("limit", self.limit)
    }
}

impl ResponseError for Limited {
    fn status_code(&self) -> StatusCode {
        StatusCode::TOO_MANY_REQUESTS
    }

    fn error_response(&self) -> HttpResponse {
        tracing::info!(limit = self.limit, retry_after = self.retry_after_secs, "rate limited");
        HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", self.retry_after_secs.to_string()))
            .json(self.body())
    }
}

/// Why [`enforce`] refused.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error(transparent)]
    Limited(#[from] Limited),
    /// Redis could not be asked: the caller answers 503 (the limits fail closed).
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// Charges the request against every budget of `checks` that is not off, in one script call.
pub async fn enforce(redis: &crate::redis::Redis, checks: &[Check]) -> Result<(), LimitError> {
    let active: Vec<(&Check, (f64, f64))> = checks.iter().filter_map(|c| c.quota.gcra_ms().map(|g| (c, g))).collect();
    if active.is_empty() {
        return Ok(());
    }
    let mut call = GCRA.prepare_invoke();
    for (check, (interval, tolerance)) in &active {
        call.key(check.key(redis.keys())).arg(format!("{interval:.3}")).arg(format!("{tolerance:.3}"));
    }
    let (wait_ms, fullest): (u64, usize) = crate::redis::query(redis, &call).await?;
    if wait_ms == 0 {
        return Ok(());
    }
    let limit = active.get(fullest.saturating_sub(1)).map_or("", |(c, _)| c.limit);
    crate::metrics::ratelimit_refused(limit);
    Err(Limited { limit, retry_after_secs: wait_ms.div_ceil(1000).max(1) }.into())
}

/// The client's address for per-address limits: the TCP peer, or, behind `trusted_proxies`
/// proxies that each append to `X-Forwarded-For`, the entry the outermost of them appended
/// (entries further left are the client's own say and are ignored). An IPv6 address counts by
/// its /64, the block one subscriber usually holds.
pub fn client_address(req: &HttpRequest, trusted_proxies: usize) -> String {
    let forwarded = (trusted_proxies > 0)
        .then(|| {
            let entries: Vec<&str> = req
                .headers()
                .get_all("X-Forwarded-For")
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .collect();
            entries.len().checked_sub(trusted_proxies).and_then(|i| entries.get(i)?.parse::<IpAddr>().ok())
        })
        .flatten();
    match forwarded.or_else(|| req.peer_addr().map(|a| a.ip())) {
        Some(ip) => address_subject(ip),
        None => "unknown".to_owned(),
    }
}

fn address_subject(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse_and_print() {
        assert_eq!("300/60".parse(), Ok(Quota::new(300, Duration::from_secs(60))));
        assert_eq!(" off ".parse(), Ok(Quota::OFF));
        assert_eq!("OFF".parse::<Quota>().map(|q| q.is_off()), Ok(true));
        for bad in ["", "0/60", "5/0", "5", "a/b", "-1/60", "5/60/2"] {
            assert!(bad.parse::<Quota>().is_err(), "{bad}");
        }
        assert_eq!(Quota::new(30, Duration::from_secs(60)).to_string(), "30/60");
        assert_eq!(Quota::OFF.to_string(), "off");
        assert_eq!(Quota::new(4, Duration::from_secs(2)).gcra_ms(), Some((500.0, 1500.0)));
    }

    #[test]
    fn ipv6_counts_by_its_64_block() {
        let a = address_subject("2001:db8:1:2:aaaa::1".parse().unwrap_or(IpAddr::from([0u8; 4])));
        let b = address_subject("2001:db8:1:2:bbbb::9".parse().unwrap_or(IpAddr::from([0u8; 4])));
        assert_eq!(a, b);
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(address_subject("::ffff:10.0.0.1".parse().unwrap_or(IpAddr::from([0u8; 4]))), "10.0.0.1");
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        use actix_web::test::TestRequest;
        let peer: std::net::SocketAddr = "192.0.2.9:5000".parse().unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
        let req = |xff: Option<&str>| {
            let r = TestRequest::default().peer_addr(peer);
            match xff {
                Some(v) => r.insert_header(("X-Forwarded-For", v)).to_http_request(),
                None => r.to_http_request(),
            }
        };
        // No trusted proxy: the header is the client's own claim.
        assert_eq!(client_address(&req(Some("203.0.113.1")), 0), "192.0.2.9");
        // One proxy: the entry it appended, not what the client put before it.
        assert_eq!(client_address(&req(Some("6.6.6.6, 203.0.113.1")), 1), "203.0.113.1");
        assert_eq!(client_address(&req(Some("6.6.6.6, 203.0.113.1, 198.51.100.2")), 2), "203.0.113.1");
        // Missing or unreadable: the peer.
        assert_eq!(client_address(&req(None), 1), "192.0.2.9");
        assert_eq!(client_address(&req(Some("203.0.113.1")), 2), "192.0.2.9");
        assert_eq!(client_address(&req(Some("not-an-ip")), 1), "192.0.2.9");
    }
}
